//! A SOCKS5 client (no auth, CONNECT) and plain HTTP/1.1 requests through it:
//! the application traffic a subscriber's device would send through its client.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http_server::{find, pattern_byte};

/// Opens a tunnel to `target` through the SOCKS5 proxy at `proxy`.
pub async fn socks5_connect(proxy: SocketAddr, target: SocketAddr) -> Result<TcpStream> {
    let mut s = TcpStream::connect(proxy)
        .await
        .with_context(|| format!("connecting to the SOCKS5 proxy {proxy}"))?;
    s.set_nodelay(true)?;
    s.write_all(&[5, 1, 0]).await?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.context("SOCKS5 greeting")?;
    ensure!(reply == [5, 0], "SOCKS5 proxy refused no-auth: {reply:?}");

    let mut req = vec![5, 1, 0];
    match target.ip() {
        IpAddr::V4(ip) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
    }
    req.extend_from_slice(&target.port().to_be_bytes());
    s.write_all(&req).await?;

    let mut head = [0u8; 4];
    s.read_exact(&mut head)
        .await
        .context("SOCKS5 CONNECT reply")?;
    ensure!(head[0] == 5, "not a SOCKS5 reply: {head:?}");
    ensure!(
        head[1] == 0,
        "SOCKS5 CONNECT failed with reply code {}",
        head[1]
    );
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await?;
            len[0] as usize
        }
        other => bail!("bad SOCKS5 address type {other}"),
    };
    let mut rest = vec![0u8; addr_len + 2];
    s.read_exact(&mut rest).await?;
    Ok(s)
}

/// Sends one HTTP/1.1 request over the tunnel and reads the response to EOF
/// (the origin closes every connection). Returns (status, body).
async fn exchange(
    proxy: SocketAddr,
    target: SocketAddr,
    head: String,
    body_len: usize,
) -> Result<(u16, Vec<u8>)> {
    let mut s = socks5_connect(proxy, target).await?;
    s.write_all(head.as_bytes()).await?;
    let chunk = vec![b'u'; 64 * 1024];
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        s.write_all(&chunk[..n]).await?;
        sent += n;
    }
    let mut response = Vec::new();
    s.read_to_end(&mut response)
        .await
        .context("reading the response")?;
    let head_end = find(&response, b"\r\n\r\n").with_context(|| {
        format!(
            "no HTTP response through the proxy (got {} bytes)",
            response.len()
        )
    })?;
    let head = String::from_utf8_lossy(&response[..head_end]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    let content_length: Option<usize> = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok());
    let body = response[head_end + 4..].to_vec();
    if let Some(len) = content_length {
        ensure!(
            body.len() == len,
            "truncated response: {} of {len} body bytes",
            body.len()
        );
    }
    Ok((status, body))
}

/// `GET /bytes/{n}` on `target` through the proxy; checks the status, the
/// length and the content. Bounded by `timeout`.
pub async fn download(
    proxy: SocketAddr,
    target: SocketAddr,
    n: usize,
    timeout: Duration,
) -> Result<()> {
    let head = format!("GET /bytes/{n} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    let (status, body) = tokio::time::timeout(timeout, exchange(proxy, target, head, 0))
        .await
        .with_context(|| format!("download of {n} bytes timed out after {timeout:?}"))??;
    ensure!(status == 200, "GET /bytes/{n} answered {status}");
    ensure!(body.len() == n, "got {} of {n} bytes", body.len());
    ensure!(
        body.iter().enumerate().all(|(i, b)| *b == pattern_byte(i)),
        "downloaded bytes differ from what the origin sent"
    );
    Ok(())
}

/// `POST /upload` with an `n`-byte body through the proxy; checks the origin
/// received all of it. Bounded by `timeout`.
pub async fn upload(
    proxy: SocketAddr,
    target: SocketAddr,
    n: usize,
    timeout: Duration,
) -> Result<()> {
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = tokio::time::timeout(timeout, exchange(proxy, target, head, n))
        .await
        .with_context(|| format!("upload of {n} bytes timed out after {timeout:?}"))??;
    ensure!(status == 200, "POST /upload answered {status}");
    let got: usize = String::from_utf8_lossy(&body).trim().parse()?;
    ensure!(got == n, "origin received {got} of {n} bytes");
    Ok(())
}
