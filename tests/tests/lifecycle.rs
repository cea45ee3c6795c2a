//! User lifecycle and node resilience, end to end with the real binaries:
//! quota enforcement on the core, and a node that was down catching up
//! without losing or double-counting usage.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use nexpoint_tests::control_plane::ControlPlane;
use nexpoint_tests::core_stats::{traffic_of, user_counters};
use nexpoint_tests::links::{Protocol, link_of};
use nexpoint_tests::node::Node;
use nexpoint_tests::paths::v2ray_bin;
use nexpoint_tests::socks::download;
use nexpoint_tests::{SingBoxClient, TestHttpServer, wait_until};
use serde_json::json;

const TRANSFER_TIMEOUT: Duration = Duration::from_secs(20);
const CONVERGE: Duration = Duration::from_secs(60);
const PROBE: usize = 1_000;
/// A generous bound on what HTTP heads add per request.
const OVERHEAD_PER_REQUEST: i64 = 1_024;

async fn connected_node(cp: &ControlPlane, name: &str) -> Node {
    let node = Node::start(cp, name, &v2ray_bin())
        .await
        .expect("node enrolls and runs");
    node.wait_connected(cp, CONVERGE)
        .await
        .expect("GET /api/nodes shows the node connected");
    node
}

async fn vmess_client(cp: &ControlPlane, user: &serde_json::Value) -> SingBoxClient {
    let links = cp
        .subscription_links(user)
        .await
        .expect("subscription links");
    let vmess = link_of(&links, Protocol::Vmess).unwrap();
    SingBoxClient::start(&vmess)
        .await
        .expect("sing-box client runs")
}

/// Retries a small download until the user has reached the core (bounded).
async fn wait_reachable(client: &SingBoxClient, origin: &TestHttpServer, who: &str) {
    wait_until(CONVERGE, &format!("{who}'s first connection"), || {
        download(client.socks, origin.addr, PROBE, TRANSFER_TIMEOUT)
    })
    .await
    .unwrap();
}

/// Waits until a new connection through `client` fails (bounded).
async fn wait_cut_off(client: &SingBoxClient, origin: &TestHttpServer, who: &str) {
    wait_until(CONVERGE, &format!("{who} to be cut off"), || async {
        match download(client.socks, origin.addr, PROBE, Duration::from_secs(5)).await {
            Ok(()) => bail!("{who} still gets through"),
            Err(_) => Ok(()),
        }
    })
    .await
    .unwrap();
}

async fn used_traffic(cp: &ControlPlane, username: &str) -> anyhow::Result<i64> {
    let user = cp.get_user(username).await?;
    user["used_traffic"]
        .as_i64()
        .with_context(|| format!("used_traffic is not an integer: {user}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_over_quota_is_limited_and_leaves_the_core() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let _node = connected_node(&cp, "n-quota").await;

    const LIMIT: i64 = 200_000;
    let carol = cp
        .create_user(&json!({
            "username": "carol",
            "proxies": {"vmess": {}},
            "data_limit": LIMIT,
            "expire": null,
            "status": "active",
        }))
        .await
        .expect("POST /api/user");
    assert_eq!(carol["data_limit"], LIMIT, "{carol}");
    let client = vmess_client(&cp, &carol).await;
    wait_reachable(&client, &origin, "carol").await;
    // One transfer past her limit: the core cannot stop it midway, but the
    // next collection must make her `limited` and take her off the core.
    download(client.socks, origin.addr, 500_000, TRANSFER_TIMEOUT)
        .await
        .expect("500,000 bytes down");

    let user = wait_until(CONVERGE, "carol to become limited", || async {
        let user = cp.get_user("carol").await?;
        ensure!(
            user["status"] == "limited",
            "status {} used_traffic {}",
            user["status"],
            user["used_traffic"]
        );
        Ok(user)
    })
    .await
    .unwrap();
    assert!(
        user["used_traffic"].as_i64().unwrap_or_default() >= 500_000,
        "{user}"
    );
    wait_cut_off(&client, &origin, "limited carol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_agent_stopped_catches_up_without_losing_usage() {
    catch_up(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_agent_crashed_catches_up_without_losing_usage() {
    catch_up(true).await;
}

async fn catch_up(crash: bool) {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let name = if crash { "n-crash" } else { "n-stop" };
    let mut node = connected_node(&cp, name).await;

    let dave = cp
        .create_simple_user("dave", &["vmess"])
        .await
        .expect("POST /api/user dave");
    let dave_client = vmess_client(&cp, &dave).await;
    wait_reachable(&dave_client, &origin, "dave").await;
    download(dave_client.socks, origin.addr, 300_000, TRANSFER_TIMEOUT)
        .await
        .expect("300,000 bytes down for dave");
    let mut requests = 2_i64;
    let mut moved = (PROBE + 300_000) as i64;

    // Billing has caught up with the core before the outage.
    let api_port = node.core_api_port(CONVERGE).await.unwrap();
    wait_until(
        CONVERGE,
        "dave's used_traffic == the core's counters",
        || async {
            let (up, down) = traffic_of(&user_counters(api_port).await?, ".dave>>>");
            let used = used_traffic(&cp, "dave").await?;
            ensure!(
                used >= moved && used == up + down,
                "used {used}, core {up}+{down}"
            );
            Ok(())
        },
    )
    .await
    .unwrap();

    // The agent goes away; a user is created meanwhile; the agent comes back.
    let status = if crash {
        node.kill_agent().await.expect("agent killed")
    } else {
        node.stop_agent().await.expect("agent stops")
    };
    eprintln!("agent gone ({status})");
    let erin = cp
        .create_simple_user("erin", &["vmess"])
        .await
        .expect("POST /api/user erin while the node is down");
    node.restart_agent().await.expect("agent restarts");
    node.wait_connected(&cp, CONVERGE)
        .await
        .expect("the node reconnects");

    // The node caught up: erin works, and dave still does.
    let erin_client = vmess_client(&cp, &erin).await;
    wait_reachable(&erin_client, &origin, "erin").await;
    wait_until(CONVERGE, "dave after the restart", || {
        download(dave_client.socks, origin.addr, 200_000, TRANSFER_TIMEOUT)
    })
    .await
    .unwrap();
    // A failed attempt moves no payload, so count the one that succeeded.
    requests += 1;
    moved += 200_000;

    // No byte lost, none counted twice.
    let used = wait_until(CONVERGE, "dave's usage after the restart", || async {
        let used = used_traffic(&cp, "dave").await?;
        ensure!(used >= moved, "used {used} < moved {moved}");
        Ok(used)
    })
    .await
    .unwrap();
    eprintln!("dave: used_traffic {used} for {moved} payload bytes in {requests} requests");
    assert!(
        used <= moved + requests * OVERHEAD_PER_REQUEST,
        "dave's used_traffic {used} exceeds the {moved} payload bytes of {requests} requests: counted twice?"
    );
}
