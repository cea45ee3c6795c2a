//! A minimal HTTP/1.1 origin on 127.0.0.1:0 that the proxied traffic goes to.
//! `GET /bytes/N` answers N bytes; a `POST` of any path reads its body and
//! answers how many bytes it got. Every response closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX_HEAD: usize = 16 * 1024;
const CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct Counters {
    body_bytes_served: AtomicU64,
    body_bytes_received: AtomicU64,
    requests: AtomicU64,
}

pub struct TestHttpServer {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl TestHttpServer {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &c).await {
                        eprintln!("[http-origin] connection error: {e:#}");
                    }
                });
            }
        });
        Ok(Self {
            addr,
            counters,
            task,
        })
    }

    /// Response body bytes written so far (`GET /bytes/N`).
    pub fn body_bytes_served(&self) -> u64 {
        self.counters.body_bytes_served.load(Ordering::SeqCst)
    }

    /// Request body bytes read so far (`POST`).
    pub fn body_bytes_received(&self) -> u64 {
        self.counters.body_bytes_received.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The byte at offset `i` of every `/bytes/N` body (a recognizable pattern).
pub fn pattern_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

async fn serve(mut stream: TcpStream, counters: &Counters) -> Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            bail!("request head too large");
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(()); // a probe connect
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    counters.requests.fetch_add(1, Ordering::SeqCst);
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let content_length: u64 = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse())
        .transpose()
        .context("bad content-length")?
        .unwrap_or(0);

    match (method.as_str(), path.strip_prefix("/bytes/")) {
        ("GET", Some(n)) => {
            let n: usize = n.parse().context("bad /bytes/N")?;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let mut sent = 0;
            let mut chunk = vec![0u8; CHUNK];
            while sent < n {
                let len = CHUNK.min(n - sent);
                for (i, b) in chunk[..len].iter_mut().enumerate() {
                    *b = pattern_byte(sent + i);
                }
                stream.write_all(&chunk[..len]).await?;
                sent += len;
                counters
                    .body_bytes_served
                    .fetch_add(len as u64, Ordering::SeqCst);
            }
        }
        ("POST", _) => {
            let mut got = (buf.len() - head_end) as u64;
            let mut chunk = vec![0u8; CHUNK];
            while got < content_length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("client closed after {got} of {content_length} body bytes");
                }
                got += n as u64;
            }
            counters
                .body_bytes_received
                .fetch_add(got, Ordering::SeqCst);
            let body = got.to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
        }
        _ => {
            stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await?;
        }
    }
    stream.shutdown().await?;
    Ok(())
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
