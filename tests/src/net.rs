//! Ports, bounded polling and TCP readiness.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::time::Instant;

/// How often [`wait_until`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A port that was free a moment ago on 127.0.0.1 (bind :0, read, drop).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `n` distinct free ports (all bound at once, so they differ).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Ok`, for at most
/// `timeout`. `Err` means "not yet"; the last one is reported on time-out.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        if Instant::now() + POLL_INTERVAL > deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {what}; last: {last:#}"
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until a TCP connect to `addr` succeeds.
pub async fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> Result<()> {
    wait_until(timeout, &format!("a listener on {addr}"), || async move {
        tokio::net::TcpStream::connect(addr).await?;
        Ok(())
    })
    .await
}
