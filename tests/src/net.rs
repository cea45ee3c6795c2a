//! Ports, bounded polling and TCP readiness.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::time::Instant;

/// How often [`wait_until`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A port on 127.0.0.1 that is free now and that nothing else will be handed.
///
/// Ports come from below the kernel's ephemeral range, so no `bind(0)` of
/// any process (an agent picking its core's API port, a client's outgoing
/// connection) can take one between our check and the child's bind; a
/// process-wide counter keeps this process's tests apart. Both TCP and UDP
/// must be free, since shadowsocks inbounds bind both.
pub fn free_port() -> u16 {
    let (low, high) = reserved_range();
    let span = u32::from(high - low);
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let offset = (start + NEXT_PORT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = low + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {low}..{high}");
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// `[20000, first ephemeral port)`, or a fixed window when the ephemeral
/// range starts too low to leave room below it.
fn reserved_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low >= 22000 {
        (20000, ephemeral_low)
    } else {
        (10000, ephemeral_low.max(12000))
    }
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
