//! One long-lived connection through a proxy, kept busy: a TCP echo origin
//! on 127.0.0.1:0 and a client that sends numbered chunks through SOCKS5 and
//! checks every byte that comes back, until it is told to stop. If the proxy
//! drops, resets or stalls the connection at any moment, the stream reports
//! when and how.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::socks::socks5_connect;

/// Echoes every connection's bytes back until the client closes it.
pub struct EchoServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EchoServer {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    if let Err(e) = tokio::io::copy(&mut r, &mut w).await {
                        eprintln!("[echo-origin] connection error: {e}");
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the stream went.
#[derive(Clone, Debug)]
pub struct StreamReport {
    pub rounds: u64,
    /// Bytes sent and received back (each direction).
    pub bytes: u64,
    pub duration: Duration,
    /// The longest time between two completed rounds.
    pub max_gap: Duration,
}

/// A connection through a SOCKS5 proxy to an [`EchoServer`], carrying
/// `chunk`-byte rounds with `pause` between them.
pub struct ContinuousStream {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    task: JoinHandle<Result<StreamReport>>,
}

/// A round that takes longer than this counts as a stalled connection.
pub const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

fn chunk_byte(round: u64, i: usize) -> u8 {
    (round as usize).wrapping_mul(31).wrapping_add(i) as u8
}

impl ContinuousStream {
    /// Opens the connection and completes a first round before returning,
    /// so the stream is known to work from the start.
    pub async fn start(
        socks: SocketAddr,
        echo: SocketAddr,
        chunk: usize,
        pause: Duration,
    ) -> Result<Self> {
        let mut stream = socks5_connect(socks, echo).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let mut out = vec![0u8; chunk];
        let mut back = vec![0u8; chunk];
        let started = Instant::now();
        round(&mut stream, 0, &mut out, &mut back)
            .await
            .context("the stream's first round")?;
        rounds.store(1, Ordering::SeqCst);

        let (s, r) = (stop.clone(), rounds.clone());
        let task = tokio::spawn(async move {
            let mut last = Instant::now();
            let mut max_gap = Duration::ZERO;
            let mut n = 1u64;
            while !s.load(Ordering::SeqCst) {
                // Pacing, not waiting for anything: keeps the stream steady
                // without taking the CPU from the rest of the test.
                tokio::time::sleep(pause).await;
                if let Err(e) = round(&mut stream, n, &mut out, &mut back).await {
                    bail!(
                        "the stream broke in round {n}, {:?} after it started ({} bytes echoed before): {e:#}",
                        started.elapsed(),
                        n * chunk as u64
                    );
                }
                n += 1;
                r.store(n, Ordering::SeqCst);
                max_gap = max_gap.max(last.elapsed());
                last = Instant::now();
            }
            stream.shutdown().await.context("closing the stream")?;
            Ok(StreamReport {
                rounds: n,
                bytes: n * chunk as u64,
                duration: started.elapsed(),
                max_gap,
            })
        });
        Ok(Self { stop, rounds, task })
    }

    /// Rounds completed so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::SeqCst)
    }

    /// Whether the stream has ended (it only ends by itself when it broke).
    pub fn has_ended(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops after the current round and reports; Err if the stream broke.
    pub async fn finish(self) -> Result<StreamReport> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.context("the stream task panicked")?
    }
}

async fn round(
    stream: &mut tokio::net::TcpStream,
    n: u64,
    out: &mut [u8],
    back: &mut [u8],
) -> Result<()> {
    for (i, b) in out.iter_mut().enumerate() {
        *b = chunk_byte(n, i);
    }
    let len = out.len();
    let exchange = async {
        // Write and read concurrently: a chunk larger than the buffers on
        // the way must not deadlock.
        let (mut r, mut w) = stream.split();
        let write = async {
            w.write_all(out).await.context("writing")?;
            w.flush().await.context("flushing")
        };
        let read = async {
            r.read_exact(back)
                .await
                .with_context(|| format!("reading {len} echoed bytes"))
        };
        tokio::try_join!(write, read)?;
        anyhow::Ok(())
    };
    tokio::time::timeout(ROUND_TIMEOUT, exchange)
        .await
        .with_context(|| format!("no echo of {len} bytes within {ROUND_TIMEOUT:?}: stalled"))??;
    if let Some(i) = out.iter().zip(back.iter()).position(|(a, b)| a != b) {
        bail!("echoed byte {i} differs from what was sent");
    }
    Ok(())
}
