//! The walking skeleton, end to end with the real binaries: a control plane, a
//! node agent driving a real V2Ray, a subscriber's real sing-box client built
//! from the subscription, bytes through it, exact billing, and revocation.

use std::time::Duration;

use anyhow::{Context, ensure};
use nexpoint_tests::control_plane::{ControlPlane, ControlPlaneOptions, send};
use nexpoint_tests::core_stats::{traffic_of, user_counters};
use nexpoint_tests::links::{Protocol, ShareLink, decode_subscription};
use nexpoint_tests::node::{Node, enroll};
use nexpoint_tests::paths::v2ray_bin;
use nexpoint_tests::postgres::TestDatabase;
use nexpoint_tests::socks::{download, upload};
use nexpoint_tests::{SingBoxClient, TestHttpServer, wait_until};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DOWNLOAD: usize = 1_000_000;
const UPLOAD: usize = 300_000;
const PROBE: usize = 1_000;
const SMALL: usize = 10_000;
/// For one transfer through the proxy.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(20);
/// For asynchronous effects: a node connecting, a user reaching the core,
/// usage reaching the control plane, a deleted user leaving the core.
const CONVERGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_moves_bytes_through_a_real_node_and_is_billed_exactly() {
    let cp = ControlPlane::start_with(ControlPlaneOptions::default())
        .await
        .expect("control plane starts");
    walking_skeleton(&cp).await;
}

/// The same, with the control plane on PostgreSQL (a fresh database).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_walking_skeleton_on_postgresql() {
    let db = TestDatabase::create()
        .await
        .expect("a PostgreSQL test database");
    let mut cp = ControlPlane::start_with(ControlPlaneOptions {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await
    .expect("control plane starts on PostgreSQL");
    walking_skeleton(&cp).await;
    cp.stop().await.expect("control plane stops");
    db.drop_database().await.expect("drop the test database");
}

async fn walking_skeleton(cp: &ControlPlane) {
    let origin = TestHttpServer::start().await.unwrap();

    // A node with the real core, enrolled with a one-time token.
    let node = Node::start(cp, "n1", &v2ray_bin())
        .await
        .expect("node enrolls and runs");
    let listed = node
        .wait_connected(cp, CONVERGE)
        .await
        .expect("GET /api/nodes shows the node connected");
    let version = listed["xray_version"].as_str().unwrap_or_default();
    assert!(
        version.contains("4.34"),
        "connected node reports xray_version {:?}, want V2Ray 4.34's: {listed}",
        listed["xray_version"]
    );

    // A subscriber.
    let alice = cp
        .create_simple_user("alice", &["vmess", "vless", "trojan"])
        .await
        .expect("POST /api/user");
    assert_eq!(alice["username"], "alice", "{alice}");
    assert_eq!(alice["used_traffic"], 0, "{alice}");
    let sub_url = alice["subscription_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no subscription_url in {alice}"))
        .to_string();
    assert!(sub_url.contains("/sub/"), "subscription_url {sub_url:?}");

    // Her subscription, as a client fetches it: base64 of share links.
    let body = cp
        .fetch_subscription(&sub_url)
        .await
        .expect("GET subscription");
    let raw_links = decode_subscription(&body).expect("base64 subscription");
    let links: Vec<ShareLink> = raw_links
        .iter()
        .map(|l| ShareLink::parse(l).unwrap_or_else(|e| panic!("{e:#}")))
        .collect();
    let link_of = |p: Protocol| {
        links
            .iter()
            .find(|l| l.protocol == p)
            .unwrap_or_else(|| panic!("no {p:?} link in the subscription: {raw_links:#?}"))
            .clone()
    };
    let vmess = link_of(Protocol::Vmess);
    assert_eq!(
        (vmess.host.as_str(), vmess.port),
        ("127.0.0.1", cp.core.vmess_port),
        "vmess link must point at the node's VMESS_TCP inbound: {vmess:?}"
    );

    // The real client, built from her vmess link.
    let client = SingBoxClient::start(&vmess)
        .await
        .expect("sing-box client runs");

    // She reaches the core asynchronously: retry the first request, bounded.
    wait_until(
        CONVERGE,
        "alice's first connection through the node",
        || download(client.socks, origin.addr, PROBE, TRANSFER_TIMEOUT),
    )
    .await
    .unwrap();
    download(client.socks, origin.addr, DOWNLOAD, TRANSFER_TIMEOUT)
        .await
        .expect("1,000,000 bytes down through vmess");
    upload(client.socks, origin.addr, UPLOAD, TRANSFER_TIMEOUT)
        .await
        .expect("300,000 bytes up through vmess");

    // Her other protocols work too.
    for p in [Protocol::Vless, Protocol::Trojan] {
        let link = link_of(p);
        let c = SingBoxClient::start(&link)
            .await
            .unwrap_or_else(|e| panic!("{p:?} client: {e:#}"));
        wait_until(CONVERGE, &format!("a download through {p:?}"), || {
            download(c.socks, origin.addr, SMALL, TRANSFER_TIMEOUT)
        })
        .await
        .unwrap();
    }
    let moved = (PROBE + DOWNLOAD + UPLOAD + 2 * SMALL) as i64;
    assert_eq!(
        origin.body_bytes_served() + origin.body_bytes_received(),
        moved as u64
    );

    // Billing: the control plane's used_traffic equals the core's own counters.
    let api_port = node
        .core_api_port(CONVERGE)
        .await
        .expect("the agent's core config names the nexpoint-api inbound");
    let (used, core_up, core_down) = wait_until(
        CONVERGE,
        "used_traffic == the core's uplink+downlink for alice",
        || async {
            let counters = user_counters(api_port).await?;
            let (up, down) = traffic_of(&counters, ".alice>>>");
            let user = cp.get_user("alice").await?;
            let used = user["used_traffic"]
                .as_i64()
                .with_context(|| format!("used_traffic is not an integer: {user}"))?;
            ensure!(
                used >= moved && used == up + down,
                "used_traffic {used}, core uplink {up} + downlink {down} = {}, moved {moved}; counters {counters:?}",
                up + down
            );
            Ok((used, up, down))
        },
    )
    .await
    .unwrap();
    eprintln!("alice: used_traffic {used} = uplink {core_up} + downlink {core_down}");
    // The core knows her by the Marzban email `{id}.alice`.
    let counters = user_counters(api_port).await.unwrap();
    let emails: Vec<&str> = counters
        .keys()
        .filter_map(|k| k.strip_prefix("user>>>")?.split(">>>").next())
        .filter(|e| e.ends_with(".alice"))
        .collect();
    assert!(
        !emails.is_empty()
            && emails.iter().all(|e| {
                let id = e.trim_end_matches(".alice");
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
            }),
        "core counters are not for an email `{{id}}.alice`: {counters:?}"
    );

    // Revocation: after DELETE, a new connection fails.
    cp.delete_user("alice")
        .await
        .expect("DELETE /api/user/alice");
    let (status, body) = send(cp.api(Method::GET, "/api/user/alice")).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let probe_timeout = Duration::from_secs(5);
    wait_until(
        CONVERGE,
        "a new connection of deleted alice to fail",
        || async {
            match download(client.socks, origin.addr, PROBE, probe_timeout).await {
                Ok(()) => anyhow::bail!("deleted alice still gets through"),
                Err(_) => Ok(()),
            }
        },
    )
    .await
    .unwrap();
}

fn assert_detail(status: StatusCode, body: &Value, what: &str) {
    assert!(
        body.get("detail").is_some_and(|d| !d.is_null()),
        "{what}: answered {status} without a JSON `detail`: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_with_json_errors() {
    let cp = ControlPlane::start().await.expect("control plane starts");

    // Malformed JSON.
    let (status, body) = send(
        cp.api(Method::POST, "/api/user")
            .header("content-type", "application/json")
            .body("{\"username\": \"bob\", "),
    )
    .await
    .unwrap();
    assert!(status.is_client_error(), "malformed JSON answered {status}");
    assert_detail(status, &body, "malformed JSON");

    // A wrong-typed field.
    let (status, body) = send(cp.api(Method::POST, "/api/user").json(&json!({
        "username": "bob", "proxies": {"vmess": {}}, "data_limit": "lots",
    })))
    .await
    .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_detail(status, &body, "wrong-typed data_limit");

    // An unknown user.
    let (status, body) = send(cp.api(Method::GET, "/api/user/nobody")).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_detail(status, &body, "unknown user");

    // No credentials.
    let (status, body) = send(cp.anonymous.get(cp.url("/api/user/nobody")))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_detail(status, &body, "no token");

    // An unknown node.
    let (status, body) = send(cp.api(Method::DELETE, "/api/node/999")).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_detail(status, &body, "unknown node");

    // A bad enrollment token, through the agent…
    let created = cp
        .create_node("n-bad", nexpoint_tests::free_port())
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let (status, output) = enroll(
        &cp.base_url,
        "not-the-token",
        &created.ca_fingerprint,
        state.path(),
    )
    .await
    .unwrap();
    assert!(
        !status.success(),
        "enroll with a bad token succeeded:\n{output}"
    );
    assert!(
        output.to_lowercase().contains("token"),
        "enroll with a bad token must name the token as the problem:\n{output}"
    );

    // …and at the endpoint the agent calls.
    let (_key, csr) = nexpoint_certs::node_key_and_csr("n-bad").unwrap();
    let (status, body) = send(
        cp.anonymous
            .post(cp.url("/api/node/enroll"))
            .json(&json!({"token": "not-the-token", "csr": csr})),
    )
    .await
    .unwrap();
    assert!(status.is_client_error(), "bad token answered {status}");
    assert_detail(status, &body, "bad enrollment token");
    let node = cp.node(created.id).await.unwrap();
    assert_ne!(node["status"], "connected", "{node}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_core_binary_is_reported_on_the_node() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    let missing = tempfile::tempdir().unwrap().path().join("no-such-v2ray");
    let node = Node::start(&cp, "n-nocore", &missing)
        .await
        .expect("the agent serves even without its core");
    let missing_name = missing.display().to_string();
    let reported = wait_until(CONVERGE, "the node to report its missing core", || async {
        let n = cp.node(node.id()).await?;
        let message = n["message"].as_str().unwrap_or_default().to_string();
        let lower = message.to_lowercase();
        ensure!(
            (n["status"] == "error" || !message.is_empty())
                && (message.contains(&missing_name)
                    || message.contains("no-such-v2ray")
                    || lower.contains("no such file")
                    || lower.contains("not found")),
            "status {} message {:?}",
            n["status"],
            message
        );
        Ok(n)
    })
    .await
    .unwrap();
    eprintln!("reported: {reported}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_core_rejects_is_reported_with_the_cores_own_error() {
    // Debian's V2Ray ships no geoip.dat, so any geoip rule fails its config check.
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        edit_core_config: Some(|config| {
            config["routing"]["rules"] = json!([
                {"type": "field", "ip": ["geoip:private"], "outboundTag": "BLOCK"}
            ]);
        }),
        ..Default::default()
    })
    .await
    .expect("control plane starts");
    let node = Node::start(&cp, "n-badconfig", &v2ray_bin())
        .await
        .expect("the agent serves even when its core cannot start");
    let reported = wait_until(CONVERGE, "the node to report the core's error", || async {
        let n = cp.node(node.id()).await?;
        let message = n["message"].as_str().unwrap_or_default().to_string();
        ensure!(
            n["status"] == "error" && message.contains("geoip"),
            "status {} message {:?}",
            n["status"],
            message
        );
        Ok(n)
    })
    .await
    .unwrap();
    eprintln!("reported: {reported}");
}
