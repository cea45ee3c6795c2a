//! Steps the resilience suites share: a connected node, a subscriber's
//! client from her subscription, "her traffic works" / "she is cut off"
//! polls, and billing read from both sides.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::control_plane::ControlPlane;
use crate::core_stats::{traffic_of, user_counters};
use crate::links::{Protocol, ShareLink};
use crate::node::Node;
use crate::socks::download;
use crate::{SingBoxClient, TestHttpServer, wait_until};

/// For one transfer through the proxy.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(20);
/// For asynchronous effects: a node connecting, a user reaching or leaving
/// the core, usage reaching the control plane.
pub const CONVERGE: Duration = Duration::from_secs(60);
/// A small download that proves a new connection gets through.
pub const PROBE: usize = 1_000;
/// How long one probe of a client that should be refused may take.
pub const REFUSED_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates, enrolls and runs a node with `core_bin`; waits until it is `connected`.
pub async fn connected_node(cp: &ControlPlane, name: &str, core_bin: &Path) -> Node {
    let node = Node::start(cp, name, core_bin)
        .await
        .unwrap_or_else(|e| panic!("node {name} enrolls and runs: {e:#}"));
    node.wait_connected(cp, CONVERGE)
        .await
        .unwrap_or_else(|e| panic!("GET /api/nodes shows {name} connected: {e:#}"));
    node
}

/// The user's share links, from her subscription URL.
pub async fn links_of(cp: &ControlPlane, user: &Value) -> Vec<ShareLink> {
    cp.subscription_links(user)
        .await
        .unwrap_or_else(|e| panic!("subscription links of {}: {e:#}", user["username"]))
}

/// The user's `protocol` link that points at 127.0.0.1:`port`.
pub fn link_to(links: &[ShareLink], protocol: Protocol, port: u16) -> ShareLink {
    links
        .iter()
        .find(|l| l.protocol == protocol && l.host == "127.0.0.1" && l.port == port)
        .cloned()
        .unwrap_or_else(|| panic!("no {protocol:?} link to 127.0.0.1:{port} among {links:#?}"))
}

/// A sing-box client for `link`.
pub async fn client(link: &ShareLink) -> SingBoxClient {
    SingBoxClient::start(link)
        .await
        .unwrap_or_else(|e| panic!("sing-box client for {link:?}: {e:#}"))
}

/// Waits (bounded) until a new connection through `client` gets through.
pub async fn wait_reachable(
    client: &SingBoxClient,
    origin: &TestHttpServer,
    who: &str,
    timeout: Duration,
) -> Result<()> {
    wait_reachable_at(client.socks, origin.addr, who, timeout).await
}

/// Waits (bounded) until a new connection through `client` fails.
pub async fn wait_cut_off(
    client: &SingBoxClient,
    origin: &TestHttpServer,
    who: &str,
    timeout: Duration,
) -> Result<()> {
    wait_cut_off_at(client.socks, origin.addr, who, timeout).await
}

/// [`wait_reachable`] for the client whose SOCKS port is `socks`.
pub async fn wait_reachable_at(
    socks: SocketAddr,
    origin: SocketAddr,
    who: &str,
    timeout: Duration,
) -> Result<()> {
    wait_until(timeout, &format!("{who}'s traffic to get through"), || {
        download(socks, origin, PROBE, TRANSFER_TIMEOUT)
    })
    .await
}

/// [`wait_cut_off`] for the client whose SOCKS port is `socks`.
pub async fn wait_cut_off_at(
    socks: SocketAddr,
    origin: SocketAddr,
    who: &str,
    timeout: Duration,
) -> Result<()> {
    wait_until(timeout, &format!("{who} to be refused"), || async {
        match download(socks, origin, PROBE, REFUSED_PROBE_TIMEOUT).await {
            Ok(()) => bail!("{who} still gets through"),
            Err(_) => Ok(()),
        }
    })
    .await
}

/// Waits (bounded) until a request through the client's SOCKS port `socks`
/// gets the origin's response head back: the moment a user is served,
/// without the second or so V2Ray keeps a finished connection open (which a
/// full [`download`] waits out). Returns how long it took.
pub async fn wait_first_response_at(
    socks: SocketAddr,
    origin: SocketAddr,
    who: &str,
    timeout: Duration,
) -> Result<Duration> {
    let started = tokio::time::Instant::now();
    wait_until(timeout, &format!("{who}'s first response"), || async {
        tokio::time::timeout(TRANSFER_TIMEOUT, response_head(socks, origin))
            .await
            .context("no response head in time")?
    })
    .await?;
    Ok(started.elapsed())
}

/// One request through the SOCKS port `socks` whose response head comes
/// back `200`: the user is served (not bounded; callers add a timeout).
pub async fn response_head(socks: SocketAddr, origin: SocketAddr) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = crate::socks::socks5_connect(socks, origin).await?;
    s.write_all(
        format!("GET /bytes/{PROBE} HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await?;
        ensure!(n > 0, "connection closed after {} bytes", head.len());
        head.extend_from_slice(&buf[..n]);
    }
    ensure!(
        head.starts_with(b"HTTP/1.1 200"),
        "response {:?}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}

/// The control plane's `used_traffic` of `username`.
pub async fn used_traffic(cp: &ControlPlane, username: &str) -> Result<i64> {
    let user = cp.get_user(username).await?;
    user["used_traffic"]
        .as_i64()
        .with_context(|| format!("used_traffic is not an integer: {user}"))
}

/// uplink + downlink the core on `api_port` counted for `username`.
pub async fn core_traffic(api_port: u16, username: &str) -> Result<i64> {
    let (up, down) = traffic_of(&user_counters(api_port).await?, &format!(".{username}>>>"));
    Ok(up + down)
}

/// Waits (bounded) until `username`'s `used_traffic` reaches `expected`,
/// then requires it to be exactly that: nothing lost, nothing counted twice.
pub async fn wait_billed_exactly(
    cp: &ControlPlane,
    username: &str,
    expected: i64,
    timeout: Duration,
) -> Result<()> {
    let used = wait_until(
        timeout,
        &format!("{username}'s used_traffic to reach {expected}"),
        || async {
            let used = used_traffic(cp, username).await?;
            ensure!(used >= expected, "used_traffic {used} < {expected}");
            Ok(used)
        },
    )
    .await?;
    ensure!(
        used == expected,
        "{username}'s used_traffic is {used}, the cores counted {expected}: {} bytes counted twice",
        used - expected
    );
    Ok(())
}
