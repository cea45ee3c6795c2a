//! One server, one service: `nexpoint serve --local-node` enrolls and runs
//! its own agent (with a real V2Ray) over the usual mutual TLS, and a
//! subscriber's traffic goes through it.

use nexpoint_tests::control_plane::{ControlPlane, ControlPlaneOptions};
use nexpoint_tests::links::Protocol;
use nexpoint_tests::net::free_port;
use nexpoint_tests::paths::{node_bin, v2ray_bin};
use nexpoint_tests::process::kill_processes_mentioning;
use nexpoint_tests::steps::{CONVERGE, client, link_to, links_of, wait_reachable};
use nexpoint_tests::{TestHttpServer, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_with_a_local_node_carries_a_subscribers_traffic() {
    let port = free_port();
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        extra_args: vec![
            "--local-node".into(),
            "--local-node-port".into(),
            port.to_string(),
            "--local-node-bin".into(),
            node_bin().display().to_string(),
        ],
        extra_env: vec![
            (
                "NEXPOINT_NODE_CORE_BIN".into(),
                v2ray_bin().display().to_string(),
            ),
            ("NEXPOINT_NODE_METRICS_LISTEN".into(), "127.0.0.1:0".into()),
            ("NEXPOINT_NODE_USAGE_INTERVAL_MS".into(), "250".into()),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let result = async {
        wait_until(CONVERGE, "the local node to be connected", || async {
            let nodes = cp.nodes().await?;
            let local = nodes
                .iter()
                .find(|n| n["name"] == "local")
                .ok_or_else(|| anyhow::anyhow!("no node named local: {nodes:?}"))?;
            anyhow::ensure!(local["status"] == "connected", "{local}");
            Ok(())
        })
        .await?;
        let user = cp.create_simple_user("solo", &["vmess"]).await?;
        let links = links_of(&cp, &user).await;
        let link = link_to(&links, Protocol::Vmess, cp.core.vmess_port);
        let origin = TestHttpServer::start().await?;
        let client = client(&link).await;
        wait_reachable(&client, &origin, "solo", CONVERGE).await
    }
    .await;
    // The agent leaves its core running by design: stop both with the test.
    kill_processes_mentioning(cp.dir.path());
    result.unwrap();
}
