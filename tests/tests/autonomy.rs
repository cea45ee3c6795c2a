//! Nodes are autonomous: with the control plane gone they keep serving
//! every user they last applied, an agent restarted without a control plane
//! brings its core back with those users, a crashed core is restarted by its
//! agent, and usage counted meanwhile reaches the control plane once it is
//! back, byte for byte.
//!
//! Real binaries throughout: `nexpoint`, `nexpoint-node` driving V2Ray 4.34,
//! sing-box clients built from the users' subscription links, traffic on
//! loopback only.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use nexpoint_tests::agent_state::{CoreRunRecord, is_alive, live_core, port_moving_core};
use nexpoint_tests::control_plane::ControlPlane;
use nexpoint_tests::control_plane_restart::restart_control_plane;
use nexpoint_tests::core_stats::{traffic_of, user_counters};
use nexpoint_tests::links::Protocol;
use nexpoint_tests::node::Node;
use nexpoint_tests::paths::v2ray_bin;
use nexpoint_tests::socks::download;
use nexpoint_tests::steps::{
    CONVERGE, TRANSFER_TIMEOUT, client, connected_node, core_traffic, link_to, links_of,
    wait_billed_exactly, wait_first_response_at, wait_reachable,
};
use nexpoint_tests::{CoreTemplate, SingBoxClient, TestHttpServer, wait_until};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long the control plane stays down in the outage test: 60 of its
/// node sync intervals (250 ms in tests), 30 of the agents' usage intervals
/// (500 ms), long enough for any periodic work on either side to run many
/// times.
const OUTAGE: Duration = Duration::from_secs(15);
/// How often the cores and agents are looked at during the outage.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Transfers each client must complete during the outage (each takes about
/// a second: V2Ray holds a connection about 1 s after its response).
const MIN_TRANSFERS: u32 = 5;
/// The control plane's node sync interval in these tests (the harness default).
const NODE_SYNC_INTERVAL_MS: u64 = 250;

/// The control plane's subscription links point at both nodes: node 1 on the
/// template's ports, node 2 on its moved ones.
async fn host_both_nodes(cp: &ControlPlane, node2_ports: &CoreTemplate) {
    let mut body = serde_json::Map::new();
    for tag in ["VMESS_TCP", "VLESS_TCP", "TROJAN_TCP", "SS_TCP"] {
        body.insert(
            tag.into(),
            json!([
                {"remark": "n1", "address": "127.0.0.1"},
                {"remark": "n2", "address": "127.0.0.1", "port": node2_ports.port_of(tag)},
            ]),
        );
    }
    nexpoint_tests::control_plane::expect_success(
        cp.api(Method::PUT, "/api/hosts").json(&Value::Object(body)),
        "PUT /api/hosts",
    )
    .await
    .unwrap();
}

/// A second node for `cp` on this host: its core's inbounds move to ports of their own.
async fn second_node(cp: &ControlPlane, name: &str) -> (Node, CoreTemplate, tempfile::TempDir) {
    let moved = CoreTemplate::with_free_ports();
    let dir = tempfile::Builder::new()
        .prefix("nexpoint-core2")
        .tempdir()
        .unwrap();
    let moves: Vec<(u16, u16)> = ["VMESS_TCP", "VLESS_TCP", "TROJAN_TCP", "SS_TCP"]
        .iter()
        .map(|t| (cp.core.port_of(t).unwrap(), moved.port_of(t).unwrap()))
        .collect();
    let core = port_moving_core(dir.path(), &v2ray_bin(), &moves).unwrap();
    let node = connected_node(cp, name, &core).await;
    (node, moved, dir)
}

fn same_core(node: &Node, before: &CoreRunRecord) -> anyhow::Result<()> {
    let now = live_core(node)?;
    ensure!(
        now == *before,
        "the core was restarted: it was {before:?}, now {now:?}"
    );
    Ok(())
}

fn agent_running(node: &mut Node) -> anyhow::Result<()> {
    if let Some(status) = node.process.try_status() {
        anyhow::bail!(
            "agent {} exited ({status}):\n{}",
            node.created.name,
            node.process.tail(40)
        );
    }
    Ok(())
}

/// 1. Two nodes, two users on both; the control plane dies. For OUTAGE
///    every user's client keeps getting new connections through on every
///    node, checked round after round, and neither core is ever restarted.
///    Then the control plane comes back and bills exactly what both cores
///    counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_keep_serving_every_user_while_the_control_plane_is_down() {
    let mut cp = ControlPlane::start().await.expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let mut n1 = connected_node(&cp, "n1", &v2ray_bin()).await;
    let (mut n2, n2_ports, _core2_dir) = second_node(&cp, "n2").await;
    host_both_nodes(&cp, &n2_ports).await;

    let alice = cp.create_simple_user("alice", &["vmess"]).await.unwrap();
    let bob = cp.create_simple_user("bob", &["trojan"]).await.unwrap();
    let alice_links = links_of(&cp, &alice).await;
    let bob_links = links_of(&cp, &bob).await;
    let clients: Vec<(String, SingBoxClient)> = vec![
        (
            "alice@n1".into(),
            client(&link_to(&alice_links, Protocol::Vmess, cp.core.vmess_port)).await,
        ),
        (
            "alice@n2".into(),
            client(&link_to(&alice_links, Protocol::Vmess, n2_ports.vmess_port)).await,
        ),
        (
            "bob@n1".into(),
            client(&link_to(&bob_links, Protocol::Trojan, cp.core.trojan_port)).await,
        ),
        (
            "bob@n2".into(),
            client(&link_to(&bob_links, Protocol::Trojan, n2_ports.trojan_port)).await,
        ),
    ];
    for (who, c) in &clients {
        wait_reachable(c, &origin, who, CONVERGE).await.unwrap();
    }
    let core1 = live_core(&n1).expect("node 1 runs a core");
    let core2 = live_core(&n2).expect("node 2 runs a core");
    assert_ne!(core1.pid, core2.pid);

    // The control plane dies, as a crash or a lost host would take it.
    let status = cp.process.kill().await.expect("control plane killed");
    eprintln!("control plane gone ({status}); outage of {OUTAGE:?}");
    let http_addr = cp.base_url.trim_start_matches("http://").to_string();
    assert!(
        tokio::net::TcpStream::connect(&http_addr).await.is_err(),
        "the control plane still accepts connections on {http_addr}"
    );

    // Every client transfers over and over, all at once (a V2Ray connection
    // lingers about a second after its response: one client alone would
    // check too rarely); meanwhile both cores and agents are watched.
    const CHUNK: usize = 50_000;
    let started = Instant::now();
    let mut transfers = JoinSet::new();
    for (who, c) in &clients {
        let (who, socks, origin) = (who.clone(), c.socks, origin.addr);
        transfers.spawn(async move {
            let mut done = 0u32;
            while started.elapsed() < OUTAGE {
                download(socks, origin, CHUNK, TRANSFER_TIMEOUT)
                    .await
                    .with_context(|| {
                        format!(
                            "{who}: a new connection failed {:?} into the outage, after {done} that got through",
                            started.elapsed()
                        )
                    })?;
                done += 1;
            }
            anyhow::Ok((who, done))
        });
    }
    let mut checks = 0u32;
    while started.elapsed() < OUTAGE {
        for (name, node, core) in [("n1", &mut n1, &core1), ("n2", &mut n2, &core2)] {
            agent_running(node).unwrap();
            same_core(node, core).unwrap_or_else(|e| {
                panic!("{name}, {:?} into the outage: {e:#}", started.elapsed())
            });
        }
        checks += 1;
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
    let mut moved = BTreeMap::new();
    while let Some(result) = transfers.join_next().await {
        let (who, done) = result.unwrap().unwrap_or_else(|e| panic!("{e:#}"));
        moved.insert(who, done);
    }
    eprintln!(
        "outage of {:?}: transfers of {CHUNK} bytes that got through {moved:?}; cores {} and {} checked {checks} times, never restarted",
        started.elapsed(),
        core1.pid,
        core2.pid
    );
    for (who, done) in &moved {
        assert!(
            *done >= MIN_TRANSFERS,
            "{who}: only {done} transfers in {OUTAGE:?}: the outage was not checked repeatedly"
        );
    }
    let alice_moved = (moved["alice@n1"] + moved["alice@n2"]) as i64 * CHUNK as i64;
    let bob_moved = (moved["bob@n1"] + moved["bob@n2"]) as i64 * CHUNK as i64;

    // Back: both nodes reconnect, and billing equals what both cores counted.
    restart_control_plane(&mut cp, NODE_SYNC_INTERVAL_MS)
        .await
        .expect("control plane starts again on its data dir");
    n1.wait_connected(&cp, CONVERGE).await.unwrap();
    n2.wait_connected(&cp, CONVERGE).await.unwrap();
    for user in ["alice", "bob"] {
        let counted = core_traffic(core1.api_port, user).await.unwrap()
            + core_traffic(core2.api_port, user).await.unwrap();
        assert!(
            counted
                >= if user == "alice" {
                    alice_moved
                } else {
                    bob_moved
                },
            "{user}: the cores counted only {counted} bytes"
        );
        wait_billed_exactly(&cp, user, counted, CONVERGE)
            .await
            .unwrap();
        eprintln!("{user}: used_traffic {counted} = what both cores counted");
    }
    same_core(&n1, &core1).unwrap();
    same_core(&n2, &core2).unwrap();
}

/// 2a. The agent is stopped (SIGTERM) and started again while the control plane is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_agent_restores_its_users_without_the_control_plane() {
    agent_restart_during_outage(false).await;
}

/// 2b. The agent is killed (SIGKILL) and started again while the control plane is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_agent_restores_its_users_without_the_control_plane() {
    agent_restart_during_outage(true).await;
}

/// 2. Control plane down, then the agent restarts: its core comes back with
///    the last applied users, no control plane needed. The control plane
///    comes back on the same data dir: the node is `connected` again and the
///    usage of both core runs, counted during the outage, is billed exactly.
async fn agent_restart_during_outage(crash: bool) {
    let mut cp = ControlPlane::start().await.expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let name = if crash { "n-killed" } else { "n-stopped" };
    let mut node = connected_node(&cp, name, &v2ray_bin()).await;
    let dave = cp.create_simple_user("dave", &["vmess"]).await.unwrap();
    let erin = cp.create_simple_user("erin", &["vless"]).await.unwrap();
    let dave_client = client(&link_to(
        &links_of(&cp, &dave).await,
        Protocol::Vmess,
        cp.core.vmess_port,
    ))
    .await;
    let erin_client = client(&link_to(
        &links_of(&cp, &erin).await,
        Protocol::Vless,
        cp.core.vless_port,
    ))
    .await;
    wait_reachable(&dave_client, &origin, "dave", CONVERGE)
        .await
        .unwrap();
    wait_reachable(&erin_client, &origin, "erin", CONVERGE)
        .await
        .unwrap();
    download(dave_client.socks, origin.addr, 300_000, TRANSFER_TIMEOUT)
        .await
        .unwrap();
    let run1 = live_core(&node).unwrap();
    // Billing has caught up before the outage: the first run counted it all.
    let before = core_traffic(run1.api_port, "dave").await.unwrap();
    wait_billed_exactly(&cp, "dave", before, CONVERGE)
        .await
        .unwrap();

    cp.stop().await.expect("control plane stops");
    eprintln!("control plane stopped");
    download(dave_client.socks, origin.addr, 200_000, TRANSFER_TIMEOUT)
        .await
        .expect("dave's traffic while the control plane is down");
    download(erin_client.socks, origin.addr, 100_000, TRANSFER_TIMEOUT)
        .await
        .expect("erin's traffic while the control plane is down");
    let counters = user_counters(run1.api_port).await.unwrap();
    let (up, down) = traffic_of(&counters, ".dave>>>");
    let dave_run1 = up + down;
    let erin_run1 = {
        let (u, d) = traffic_of(&counters, ".erin>>>");
        u + d
    };
    assert!(dave_run1 >= before + 200_000, "{counters:?}");

    if crash {
        // No wait for the agent to journal run 1's last bytes: its core
        // outlives it and the next agent adopts it, counters and all.
        let status = node.kill_agent().await.expect("agent killed");
        eprintln!("agent killed ({status})");
    } else {
        let status = node.stop_agent().await.expect("agent stops");
        eprintln!("agent stopped ({status})");
    }

    // Agent back, control plane still down: the last applied users work again.
    let restarted = Instant::now();
    node.restart_agent().await.expect("agent starts again");
    assert!(
        cp.process.try_status().is_some(),
        "the control plane must still be down"
    );
    wait_first_response_at(
        dave_client.socks,
        origin.addr,
        "dave after the agent restart",
        CONVERGE,
    )
    .await
    .unwrap();
    let usable = restarted.elapsed();
    wait_reachable(
        &dave_client,
        &origin,
        "dave after the agent restart",
        CONVERGE,
    )
    .await
    .unwrap();
    wait_reachable(
        &erin_client,
        &origin,
        "erin after the agent restart",
        CONVERGE,
    )
    .await
    .unwrap();
    eprintln!(
        "agent restart without control plane: users served again (first response) {usable:?} after the restart began"
    );
    let run2 = live_core(&node).unwrap();
    if crash {
        // The killed agent's core kept serving; the new agent adopted it.
        assert_eq!(
            run2, run1,
            "a crashed agent's core is adopted, not replaced"
        );
    } else {
        assert_ne!(
            run2.instance, run1.instance,
            "the agent stopped in order, and its core with it"
        );
        assert!(
            !is_alive(run1.pid),
            "the first core (pid {}) still runs next to the second",
            run1.pid
        );
    }
    download(dave_client.socks, origin.addr, 150_000, TRANSFER_TIMEOUT)
        .await
        .unwrap();

    // The control plane comes back.
    restart_control_plane(&mut cp, NODE_SYNC_INTERVAL_MS)
        .await
        .expect("control plane starts again on its data dir");
    node.wait_connected(&cp, CONVERGE)
        .await
        .expect("the node is connected again");
    let mut dave_run2 = core_traffic(run2.api_port, "dave").await.unwrap();
    let mut erin_run2 = core_traffic(run2.api_port, "erin").await.unwrap();
    if crash {
        // One run all along: its counters include run 1's bytes.
        dave_run2 -= dave_run1;
        erin_run2 -= erin_run1;
    }
    assert!(dave_run2 >= 150_000, "run 2 counted {dave_run2} for dave");
    wait_billed_exactly(&cp, "dave", dave_run1 + dave_run2, CONVERGE)
        .await
        .unwrap();
    wait_billed_exactly(&cp, "erin", erin_run1 + erin_run2, CONVERGE)
        .await
        .unwrap();
    eprintln!(
        "dave billed {} = run 1 {dave_run1} + run 2 {dave_run2}; erin {} = {erin_run1} + {erin_run2}",
        dave_run1 + dave_run2,
        erin_run1 + erin_run2
    );
    // And the node still serves, on the same core: the control plane's
    // return restarted nothing.
    wait_reachable(&dave_client, &origin, "dave at the end", CONVERGE)
        .await
        .unwrap();
    assert_eq!(
        live_core(&node).unwrap(),
        run2,
        "the core was restarted when the control plane came back"
    );
}

/// `core_restarts` of GET /api/node/{id}, if the field is there.
async fn core_restarts(cp: &ControlPlane, id: i64) -> anyhow::Result<Option<i64>> {
    let node = nexpoint_tests::control_plane::expect_success(
        cp.api(Method::GET, &format!("/api/node/{id}")),
        "GET /api/node/{id}",
    )
    .await?;
    Ok(node.get("core_restarts").and_then(Value::as_i64))
}

/// 3. The core is SIGKILLed (twice): each time the agent starts it again
///    (with backoff), the users get through again, the control plane reports
///    the restarts in `core_restarts`, and billing stays exact across runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_core_is_restarted_and_reported() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let node = connected_node(&cp, "n-corekill", &v2ray_bin()).await;
    let frank = cp
        .create_simple_user("frank", &["vmess", "trojan"])
        .await
        .unwrap();
    let links = links_of(&cp, &frank).await;
    let vmess = client(&link_to(&links, Protocol::Vmess, cp.core.vmess_port)).await;
    let trojan = client(&link_to(&links, Protocol::Trojan, cp.core.trojan_port)).await;
    wait_reachable(&vmess, &origin, "frank (vmess)", CONVERGE)
        .await
        .unwrap();
    wait_reachable(&trojan, &origin, "frank (trojan)", CONVERGE)
        .await
        .unwrap();
    let restarts_before = core_restarts(&cp, node.id()).await.unwrap();
    eprintln!("core_restarts before: {restarts_before:?}");

    let mut billed = 0i64;
    let mut run = live_core(&node).unwrap();
    for kill in 1..=2 {
        download(vmess.socks, origin.addr, 200_000, TRANSFER_TIMEOUT)
            .await
            .unwrap();
        // Everything this run counted is billed before it dies (what a core
        // counted after the agent's last reading dies with it, by design).
        let counted = core_traffic(run.api_port, "frank").await.unwrap();
        wait_billed_exactly(&cp, "frank", billed + counted, CONVERGE)
            .await
            .unwrap();
        billed += counted;

        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(run.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("SIGKILL the core");
        let killed = Instant::now();
        let next = wait_until(CONVERGE, "the agent to start a new core", || async {
            let next = live_core(&node)?;
            ensure!(next.pid != run.pid, "still the killed core {}", run.pid);
            Ok(next)
        })
        .await
        .unwrap();
        wait_first_response_at(
            vmess.socks,
            origin.addr,
            "frank (vmess) after the core died",
            CONVERGE,
        )
        .await
        .unwrap();
        let usable = killed.elapsed();
        wait_reachable(
            &vmess,
            &origin,
            "frank (vmess) after the core died",
            CONVERGE,
        )
        .await
        .unwrap();
        wait_reachable(
            &trojan,
            &origin,
            "frank (trojan) after the core died",
            CONVERGE,
        )
        .await
        .unwrap();
        eprintln!(
            "core kill {kill}: pid {} -> {}, users served again (first response) after {usable:?}",
            run.pid, next.pid
        );
        run = next;
    }
    node.wait_connected(&cp, CONVERGE).await.unwrap();
    let counted = core_traffic(run.api_port, "frank").await.unwrap();
    wait_billed_exactly(&cp, "frank", billed + counted, CONVERGE)
        .await
        .unwrap();

    // The control plane reports the restarts (the agent counted 2).
    let reported = wait_until(
        CONVERGE,
        "GET /api/node/{id} to report core_restarts >= 2",
        || async {
            let node = nexpoint_tests::control_plane::expect_success(
                cp.api(Method::GET, &format!("/api/node/{}", node.id())),
                "GET /api/node/{id}",
            )
            .await?;
            let restarts = node["core_restarts"]
                .as_i64()
                .with_context(|| format!("no integer core_restarts in {node}"))?;
            ensure!(
                restarts >= restarts_before.unwrap_or(0) + 2,
                "core_restarts {restarts}, before the kills {restarts_before:?}"
            );
            Ok(restarts)
        },
    )
    .await
    .unwrap();
    eprintln!("core_restarts reported: {reported}");
}
