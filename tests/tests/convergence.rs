//! Nodes converge on the desired users without disturbing anyone: a mass of
//! live changes never drops another user's connection or restarts the core,
//! and a user created while a node was unreachable works on it soon after
//! its agent is back.
//!
//! Real binaries throughout: `nexpoint`, `nexpoint-node` driving V2Ray 4.34,
//! sing-box clients built from the users' subscription links, traffic on
//! loopback only.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use nexpoint_tests::agent_state::live_core;
use nexpoint_tests::control_plane::{ControlPlane, expect_success, send};
use nexpoint_tests::core_stats::user_counters;
use nexpoint_tests::core_users::CoreUsers;
use nexpoint_tests::echo::{ContinuousStream, EchoServer};
use nexpoint_tests::links::{Protocol, build};
use nexpoint_tests::net::free_ports;
use nexpoint_tests::paths::v2ray_bin;
use nexpoint_tests::steps::{
    CONVERGE, REFUSED_PROBE_TIMEOUT, client, connected_node, core_traffic, link_to, links_of,
    wait_billed_exactly, wait_cut_off_at, wait_first_response_at, wait_reachable,
    wait_reachable_at,
};
use nexpoint_tests::v2ray::{V2rayServer, server_config};
use nexpoint_tests::{SingBoxClient, TestHttpServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Users added, changed and removed around the one whose connection must hold.
const CHURN_USERS: usize = 1_000;
/// REST calls in flight at once during the churn.
const CONCURRENCY: usize = 8;
/// The kept-alive stream: bytes per echoed round, and the pause between rounds.
const STREAM_CHUNK: usize = 16 * 1024;
const STREAM_PAUSE: Duration = Duration::from_millis(20);
/// Churn users watched through real clients: the first of each protocol and the last.
const SAMPLES: [usize; 4] = [0, 1, 2, CHURN_USERS - 1];

fn churn_name(i: usize) -> String {
    format!("churn{i:04}")
}

fn churn_protocol(i: usize) -> Protocol {
    match i % 3 {
        0 => Protocol::Vmess,
        1 => Protocol::Vless,
        _ => Protocol::Trojan,
    }
}

fn protocol_key(p: Protocol) -> &'static str {
    match p {
        Protocol::Vmess => "vmess",
        Protocol::Vless => "vless",
        Protocol::Trojan => "trojan",
        Protocol::Shadowsocks => "shadowsocks",
    }
}

fn inbound_tag(p: Protocol) -> &'static str {
    match p {
        Protocol::Vmess => "VMESS_TCP",
        Protocol::Vless => "VLESS_TCP",
        Protocol::Trojan => "TROJAN_TCP",
        Protocol::Shadowsocks => "SS_TCP",
    }
}

fn inbound_port(cp: &ControlPlane, p: Protocol) -> u16 {
    cp.core.port_of(inbound_tag(p)).unwrap()
}

/// Runs `request(i)` for every i in 0..n, `CONCURRENCY` at a time, and the
/// last one alone once all others were answered: its change carries the
/// highest revision, so a node that shows it has applied all of them. Every
/// answer must be a success.
async fn for_each_user(
    cp: &ControlPlane,
    what: &str,
    n: usize,
    request: impl Fn(&reqwest::Client, &str, usize) -> reqwest::RequestBuilder,
) -> Duration {
    let started = Instant::now();
    let mut in_flight = JoinSet::new();
    for i in 0..n - 1 {
        if in_flight.len() >= CONCURRENCY {
            in_flight.join_next().await.unwrap().unwrap();
        }
        let req = request(&cp.http, &cp.base_url, i);
        let what = format!("{what} {}", churn_name(i));
        in_flight.spawn(async move {
            expect_success(req, &what)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
        });
    }
    while let Some(done) = in_flight.join_next().await {
        done.unwrap();
    }
    let what = format!("{what} {}", churn_name(n - 1));
    expect_success(request(&cp.http, &cp.base_url, n - 1), &what)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    started.elapsed()
}

/// username -> id, read from the control plane's SQLite database: the core
/// knows a user by the email `{id}.{username}`.
async fn user_ids(cp: &ControlPlane) -> Result<BTreeMap<String, i64>> {
    use sqlx::Connection;
    let path = cp.data_dir().join("nexpoint.db");
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, username FROM users")
        .fetch_all(&mut db)
        .await?;
    db.close().await?;
    Ok(rows.into_iter().map(|(id, name)| (name, id)).collect())
}

/// Starts a client for each sampled churn user, from her current subscription.
async fn sample_clients(cp: &ControlPlane) -> Vec<(String, SingBoxClient)> {
    let mut clients = Vec::new();
    for i in SAMPLES {
        let name = churn_name(i);
        let user = cp.get_user(&name).await.unwrap();
        let p = churn_protocol(i);
        let link = link_to(&links_of(cp, &user).await, p, inbound_port(cp, p));
        clients.push((name, client(&link).await));
    }
    clients
}

/// Waits, for all clients at once, until each gets through (or is refused).
async fn wait_all(
    clients: &[(String, SingBoxClient)],
    origin: &TestHttpServer,
    through: bool,
) -> Duration {
    let started = Instant::now();
    let mut waits = JoinSet::new();
    for (who, c) in clients {
        let (who, socks, origin) = (who.clone(), c.socks, origin.addr);
        waits.spawn(async move {
            let result = if through {
                wait_reachable_at(socks, origin, &who, CONVERGE).await
            } else {
                wait_cut_off_at(socks, origin, &who, CONVERGE).await
            };
            result.unwrap_or_else(|e| panic!("{e:#}"));
        });
    }
    while let Some(done) = waits.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

fn check_stream(stream: &ContinuousStream, phase: &str, rounds_before: u64) -> u64 {
    assert!(
        !stream.has_ended(),
        "the kept-alive stream ended during {phase}"
    );
    let rounds = stream.rounds();
    assert!(
        rounds > rounds_before,
        "the kept-alive stream carried nothing during {phase} ({rounds} rounds in all)"
    );
    rounds
}

/// 4. While one user's connection carries traffic without a pause, 1,000
///    other users are added, changed (new credentials and data limit) and
///    removed through the REST API on the same node. The connection never
///    breaks or stalls, the core is never restarted, and at the end the
///    core holds none of the removed users: their clients are refused and
///    the core itself says they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_live_user_changes_never_drop_a_connection() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let echo = EchoServer::start().await.unwrap();
    let node = connected_node(&cp, "n-churn", &v2ray_bin()).await;
    let core = live_core(&node).unwrap();

    let streamer = cp.create_simple_user("streamer", &["vmess"]).await.unwrap();
    let streamer_client = client(&link_to(
        &links_of(&cp, &streamer).await,
        Protocol::Vmess,
        cp.core.vmess_port,
    ))
    .await;
    wait_reachable(&streamer_client, &origin, "streamer", CONVERGE)
        .await
        .unwrap();
    let stream =
        ContinuousStream::start(streamer_client.socks, echo.addr, STREAM_CHUNK, STREAM_PAUSE)
            .await
            .expect("the kept-alive stream starts");
    let mut rounds = stream.rounds();

    // Add.
    let took = for_each_user(&cp, "POST /api/user", CHURN_USERS, |http, base, i| {
        http.post(format!("{base}/api/user")).json(&json!({
            "username": churn_name(i),
            "proxies": {protocol_key(churn_protocol(i)): {}},
            "data_limit": 0,
            "expire": null,
            "status": "active",
        }))
    })
    .await;
    eprintln!("added {CHURN_USERS} users in {took:?}");
    let old_clients = sample_clients(&cp).await;
    let converged = wait_all(&old_clients, &origin, true).await;
    eprintln!("sampled added users get through {converged:?} after the last POST answered");
    rounds = check_stream(&stream, "the additions", rounds);
    let ids = user_ids(&cp).await.unwrap();
    let email = |i: usize| {
        let name = churn_name(i);
        let id = ids
            .get(&name)
            .unwrap_or_else(|| panic!("{name} is not in the users table"));
        format!("{id}.{name}")
    };
    let mut probe = CoreUsers::connect(core.api_port).await.unwrap();
    // Every added user is on the core (churn0999, whose client got through,
    // was added last).
    let mut missing = Vec::new();
    for i in 0..CHURN_USERS {
        let p = churn_protocol(i);
        if !probe.holds(inbound_tag(p), p, &email(i)).await.unwrap() {
            missing.push(email(i));
        }
    }
    assert!(
        missing.is_empty(),
        "the core lacks {} of the {CHURN_USERS} added users (the probe added them itself): {missing:?}",
        missing.len()
    );

    // Change: new credentials and a data limit for everyone.
    let took = for_each_user(&cp, "PUT /api/user", CHURN_USERS, |http, base, i| {
        let credential = match churn_protocol(i) {
            Protocol::Trojan => json!({"password": uuid::Uuid::new_v4().simple().to_string()}),
            _ => json!({"id": uuid::Uuid::new_v4().to_string()}),
        };
        http.put(format!("{base}/api/user/{}", churn_name(i)))
            .json(&json!({
                "proxies": {protocol_key(churn_protocol(i)): credential},
                "data_limit": 10_000_000_000_i64 + i as i64,
            }))
    })
    .await;
    eprintln!("changed {CHURN_USERS} users in {took:?}");
    let last = cp.get_user(&churn_name(CHURN_USERS - 1)).await.unwrap();
    assert_eq!(
        last["data_limit"],
        10_000_000_000_i64 + (CHURN_USERS - 1) as i64,
        "{last}"
    );
    let cut = wait_all(&old_clients, &origin, false).await;
    eprintln!(
        "sampled old credentials refused {cut:?} after the last PUT answered \
         (a refused probe itself takes up to {REFUSED_PROBE_TIMEOUT:?})"
    );
    drop(old_clients);
    let new_clients = sample_clients(&cp).await;
    wait_all(&new_clients, &origin, true).await;
    rounds = check_stream(&stream, "the changes", rounds);

    // Remove.
    let took = for_each_user(&cp, "DELETE /api/user", CHURN_USERS, |http, base, i| {
        http.delete(format!("{base}/api/user/{}", churn_name(i)))
    })
    .await;
    eprintln!("removed {CHURN_USERS} users in {took:?}");
    let cut = wait_all(&new_clients, &origin, false).await;
    eprintln!(
        "sampled removed users refused {cut:?} after the last DELETE answered \
         (a refused probe itself takes up to {REFUSED_PROBE_TIMEOUT:?})"
    );
    check_stream(&stream, "the removals", rounds);
    // A user added after the last removal was answered: once she gets
    // through, the node has applied every removal (lower revisions).
    let latecomer = cp
        .create_simple_user("latecomer", &["vmess"])
        .await
        .unwrap();
    let latecomer_client = client(&link_to(
        &links_of(&cp, &latecomer).await,
        Protocol::Vmess,
        cp.core.vmess_port,
    ))
    .await;
    wait_reachable(&latecomer_client, &origin, "latecomer", CONVERGE)
        .await
        .unwrap();

    // The core holds none of them any more.
    let mut left = Vec::new();
    for i in 0..CHURN_USERS {
        if !probe
            .lacks(inbound_tag(churn_protocol(i)), &email(i))
            .await
            .unwrap()
        {
            left.push(email(i));
        }
    }
    assert!(
        left.is_empty(),
        "the core still held {} of the {CHURN_USERS} removed users (the probe removed them itself): {left:?}",
        left.len()
    );
    let (status, body) = send(cp.api(Method::GET, &format!("/api/user/{}", churn_name(0))))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let list = expect_success(cp.api(Method::GET, "/api/users"), "GET /api/users")
        .await
        .unwrap();
    let mut left_names: Vec<&str> = list["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users array: {list}"))
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    left_names.sort();
    assert_eq!(left_names, ["latecomer", "streamer"], "{list}");
    assert_eq!(list["total"], 2, "{list}");

    // The stream held from start to end, on the same core.
    let report = stream
        .finish()
        .await
        .expect("the kept-alive stream never broke");
    eprintln!(
        "kept-alive stream: {} rounds, {} bytes each way in {:?}, longest gap between rounds {:?}",
        report.rounds, report.bytes, report.duration, report.max_gap
    );
    let now = live_core(&node).unwrap();
    assert_eq!(now, core, "the core was restarted during the churn");

    // Billing for streamer equals what the core counted (the stream both ways).
    let counted = core_traffic(core.api_port, "streamer").await.unwrap();
    assert!(
        counted >= 2 * report.bytes as i64,
        "the core counted {counted} bytes for streamer, the stream echoed {} each way",
        report.bytes
    );
    wait_billed_exactly(&cp, "streamer", counted, CONVERGE)
        .await
        .unwrap();
    // The core counts her under the email the control plane gave her.
    let counters = user_counters(core.api_port).await.unwrap();
    let streamer_email = format!("{}.streamer", ids["streamer"]);
    for direction in ["uplink", "downlink"] {
        let name = format!("user>>>{streamer_email}>>>traffic>>>{direction}");
        assert!(counters.contains_key(&name), "no {name} in {counters:?}");
    }
}

/// 5. A user created while the node's agent is stopped works on that node
///    soon after the agent is back: the time from starting the agent to her
///    first successful transfer is measured and printed (the bound is only
///    the poll's time-out).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_created_while_the_node_is_down_works_soon_after_it_returns() {
    user_created_while_the_node_is_down(Duration::ZERO).await;
}

/// 5b. The same after the node was unreachable for a while: the control
///    plane has failed to reach it several times by then. The agent stays
///    stopped for 15 s, a deliberate pause that is the scenario.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_created_during_a_15_s_node_outage_works_soon_after_it_returns() {
    user_created_while_the_node_is_down(Duration::from_secs(15)).await;
}

async fn user_created_while_the_node_is_down(down_for: Duration) {
    const USABLE_WITHIN: Duration = Duration::from_secs(30);
    let cp = ControlPlane::start().await.expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let mut node = connected_node(&cp, "n-away", &v2ray_bin()).await;
    let gina = cp.create_simple_user("gina", &["vmess"]).await.unwrap();
    let gina_client = client(&link_to(
        &links_of(&cp, &gina).await,
        Protocol::Vmess,
        cp.core.vmess_port,
    ))
    .await;
    wait_reachable(&gina_client, &origin, "gina", CONVERGE)
        .await
        .unwrap();

    let status = node.stop_agent().await.expect("agent stops");
    let stopped = Instant::now();
    eprintln!("agent stopped ({status})");
    let hugo = cp
        .create_simple_user("hugo", &["vless", "trojan"])
        .await
        .expect("POST /api/user while the node is down");
    let links = links_of(&cp, &hugo).await;
    let hugo_vless = client(&link_to(&links, Protocol::Vless, cp.core.vless_port)).await;
    let hugo_trojan = client(&link_to(&links, Protocol::Trojan, cp.core.trojan_port)).await;
    // The outage itself (zero for an agent that comes straight back).
    tokio::time::sleep(down_for.saturating_sub(stopped.elapsed())).await;
    let node_seen = cp.node(node.id()).await.unwrap();
    eprintln!(
        "agent down for {:?}; the control plane shows the node {} ({})",
        stopped.elapsed(),
        node_seen["status"],
        node_seen["message"]
    );

    let started = Instant::now();
    node.restart_agent().await.expect("agent starts");
    let listening = started.elapsed();
    wait_first_response_at(hugo_vless.socks, origin.addr, "hugo (vless)", USABLE_WITHIN)
        .await
        .unwrap();
    let usable = started.elapsed();
    wait_first_response_at(
        hugo_trojan.socks,
        origin.addr,
        "hugo (trojan)",
        USABLE_WITHIN,
    )
    .await
    .unwrap();
    let both = started.elapsed();
    // Whole transfers too, both protocols.
    wait_reachable(&hugo_vless, &origin, "hugo (vless)", CONVERGE)
        .await
        .unwrap();
    wait_reachable(&hugo_trojan, &origin, "hugo (trojan)", CONVERGE)
        .await
        .unwrap();
    let connected = node.wait_connected(&cp, CONVERGE).await.unwrap();
    eprintln!(
        "agent back after {:?} down: listening after {listening:?}; hugo's first response \
         through after {usable:?} (vless), {both:?} (both protocols); node {}",
        started.duration_since(stopped),
        connected["status"]
    );
    wait_reachable(
        &gina_client,
        &origin,
        "gina after the agent's return",
        CONVERGE,
    )
    .await
    .unwrap();
}

/// The core-user probe itself, against a V2Ray the test configures by hand:
/// it tells a held user from an absent one for every protocol it is used with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_user_probe_tells_held_users_from_absent_ones() {
    let ports = free_ports(4);
    let (api, vmess, vless, trojan) = (ports[0], ports[1], ports[2], ports[3]);
    let uuid = uuid::Uuid::new_v4().to_string();
    let inbounds = vec![
        json!({"tag": "VMESS_TCP", "listen": "127.0.0.1", "port": vmess, "protocol": "vmess",
               "settings": {"clients": [{"id": uuid, "alterId": 0, "email": "1.vm", "level": 0}]}}),
        json!({"tag": "VLESS_TCP", "listen": "127.0.0.1", "port": vless, "protocol": "vless",
               "settings": {"clients": [{"id": uuid, "email": "2.vl", "level": 0}], "decryption": "none"}}),
        json!({"tag": "TROJAN_TCP", "listen": "127.0.0.1", "port": trojan, "protocol": "trojan",
               "settings": {"clients": [{"password": "pw", "email": "3.tr", "level": 0}]}}),
    ];
    let _server = V2rayServer::start(&server_config(inbounds, api), &[api, vmess, vless, trojan])
        .await
        .unwrap();
    let origin = TestHttpServer::start().await.unwrap();
    let mut probe = CoreUsers::connect(api).await.unwrap();
    for (tag, p, held) in [
        ("VMESS_TCP", Protocol::Vmess, "1.vm"),
        ("VLESS_TCP", Protocol::Vless, "2.vl"),
        ("TROJAN_TCP", Protocol::Trojan, "3.tr"),
    ] {
        assert!(probe.holds(tag, p, held).await.unwrap(), "{held} is held");
        assert!(
            probe.lacks(tag, "9.nobody").await.unwrap(),
            "9.nobody is absent"
        );
        // An absent user is reported as such, and the probe added it…
        assert!(
            !probe.holds(tag, p, "8.new").await.unwrap(),
            "8.new was absent"
        );
        assert!(
            probe.holds(tag, p, "8.new").await.unwrap(),
            "8.new added by the probe"
        );
        // …and a held user is removed by `lacks`, which reports it.
        assert!(!probe.lacks(tag, "8.new").await.unwrap(), "8.new was held");
        assert!(probe.lacks(tag, "8.new").await.unwrap(), "8.new is gone");
    }
    // The held users still work: the probes changed nothing else.
    let link =
        nexpoint_tests::links::ShareLink::parse(&build::vmess("vm", "127.0.0.1", vmess, &uuid))
            .unwrap();
    let c = client(&link).await;
    wait_reachable(&c, &origin, "1.vm", Duration::from_secs(20))
        .await
        .unwrap();
}
