//! Managing nodes end to end with the real binaries and a real V2Ray core:
//! per-node core configs judged by the node's own core, live core logs over
//! WebSocket, certificate rotation without downtime, offline enrollment.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use nexpoint_tests::agent_state::live_core;
use nexpoint_tests::control_plane::{ControlPlane, send};
use nexpoint_tests::links::Protocol;
use nexpoint_tests::node::Node;
use nexpoint_tests::paths::{nexpoint_bin, node_bin, v2ray_bin};
use nexpoint_tests::process::ChildProcess;
use nexpoint_tests::steps::{CONVERGE, client, connected_node, link_to, links_of, wait_reachable};
use nexpoint_tests::{TestHttpServer, free_port, wait_until};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Debian's V2Ray ships no geoip.dat, so a geoip rule fails its config check.
fn rejected_by_v2ray(mut template: Value) -> Value {
    template["routing"]["rules"] = json!([
        {"type": "field", "ip": ["geoip:private"], "outboundTag": "BLOCK"}
    ]);
    template
}

async fn template_of(cp: &ControlPlane, path: &str) -> Result<(String, Value)> {
    let response = cp.api(Method::GET, path).send().await?;
    ensure!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    let source = response
        .headers()
        .get("x-nexpoint-core-config")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((source, response.json().await?))
}

fn inbound_port(config: &Value, tag: &str) -> Option<u64> {
    config["inbounds"]
        .as_array()?
        .iter()
        .find(|i| i["tag"] == tag)?["port"]
        .as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_nodes_core_rejects_is_refused_with_its_error_and_the_old_one_stays() {
    let cp = ControlPlane::start().await.unwrap();
    let node = connected_node(&cp, "n-config", &v2ray_bin()).await;
    let core_before = live_core(&node).unwrap();
    let (source, default) = template_of(&cp, &format!("/api/node/{}/core/config", node.id()))
        .await
        .unwrap();
    assert_eq!(source, "default", "a new node runs the default template");

    // Refused by the node's core, for the node and as the default alike.
    for path in [
        format!("/api/node/{}/core/config", node.id()),
        "/api/core/config".into(),
    ] {
        let (status, body) = send(
            cp.api(Method::PUT, &path)
                .json(&rejected_by_v2ray(default.clone())),
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "PUT {path}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("n-config") && detail.contains("geoip"),
            "PUT {path} names the node and quotes V2Ray's own error: {detail}"
        );
    }
    let (source, kept) = template_of(&cp, &format!("/api/node/{}/core/config", node.id()))
        .await
        .unwrap();
    assert_eq!(
        (source.as_str(), &kept),
        ("default", &default),
        "the previous template stays"
    );
    let (_, kept_default) = template_of(&cp, "/api/core/config").await.unwrap();
    assert_eq!(kept_default, default);
    assert_eq!(
        live_core(&node).unwrap().pid,
        core_before.pid,
        "the core never restarted"
    );
    assert_eq!(cp.node(node.id()).await.unwrap()["status"], "connected");

    // A config the core accepts becomes the node's own and reaches its core.
    let moved = free_port();
    let mut own = default.clone();
    for inbound in own["inbounds"].as_array_mut().unwrap() {
        if inbound["tag"] == "VMESS_TCP" {
            inbound["port"] = json!(moved);
        }
    }
    let (status, body) = send(
        cp.api(Method::PUT, &format!("/api/node/{}/core/config", node.id()))
            .json(&own),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (source, _) = template_of(&cp, &format!("/api/node/{}/core/config", node.id()))
        .await
        .unwrap();
    assert_eq!(source, "own");
    assert_eq!(cp.node(node.id()).await.unwrap()["own_core_config"], true);
    wait_until(
        CONVERGE,
        "the node's core to run its own template",
        || async {
            let (_, config) = node.core_config()?;
            match inbound_port(&config, "VMESS_TCP") {
                Some(port) if port == u64::from(moved) => Ok(()),
                other => bail!("VMESS_TCP port {other:?}"),
            }
        },
    )
    .await
    .unwrap();

    // Back to the default.
    let (status, body) = send(cp.api(
        Method::DELETE,
        &format!("/api/node/{}/core/config", node.id()),
    ))
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let original = inbound_port(&default, "VMESS_TCP").unwrap();
    wait_until(
        CONVERGE,
        "the node's core to run the default again",
        || async {
            let (_, config) = node.core_config()?;
            match inbound_port(&config, "VMESS_TCP") {
                Some(port) if port == original => Ok(()),
                other => bail!("VMESS_TCP port {other:?}"),
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(cp.node(node.id()).await.unwrap()["own_core_config"], false);
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(cp: &ControlPlane, path_and_query: &str, bearer: Option<&str>) -> Socket {
    let url = format!(
        "{}{path_and_query}",
        cp.base_url.replacen("http://", "ws://", 1)
    );
    let mut request = url.as_str().into_client_request().unwrap();
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("WebSocket {path_and_query}: {e}"));
    socket
}

async fn next_text(socket: &mut Socket, what: &str) -> Result<String> {
    loop {
        let message = tokio::time::timeout(MESSAGE_TIMEOUT, socket.next())
            .await
            .with_context(|| format!("no message on {what} within {MESSAGE_TIMEOUT:?}"))?
            .with_context(|| format!("{what} ended"))??;
        match message {
            Message::Text(text) => return Ok(text.to_string()),
            Message::Close(frame) => bail!("{what} closed: {frame:?}"),
            _ => {}
        }
    }
}

async fn close_code(cp: &ControlPlane, path_and_query: &str) -> Result<(u16, String)> {
    let mut socket = open_socket(cp, path_and_query, None).await;
    loop {
        let message = tokio::time::timeout(MESSAGE_TIMEOUT, socket.next())
            .await
            .context("no close frame")?
            .context("ended without a close frame")??;
        if let Message::Close(Some(frame)) = message {
            return Ok((u16::from(frame.code), frame.reason.to_string()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_logs_stream_over_websocket_with_the_recent_lines_first() {
    let cp = ControlPlane::start().await.unwrap();
    let node = connected_node(&cp, "n-logs", &v2ray_bin()).await;

    // One node: the agent's recent buffer holds V2Ray's start-up lines.
    let mut socket = open_socket(
        &cp,
        &format!("/api/node/{}/logs?token={}", node.id(), cp.token),
        None,
    )
    .await;
    let first = next_text(&mut socket, "node logs").await.unwrap();
    assert!(!first.is_empty());
    let mut seen = vec![first];
    while !seen
        .iter()
        .any(|l| l.contains("V2Ray") || l.contains("started"))
    {
        seen.push(next_text(&mut socket, "node logs").await.unwrap());
    }
    socket.close(None).await.unwrap();

    // Every node's core, each line named by its node; token in a header.
    let mut socket = open_socket(&cp, "/api/core/logs", Some(&cp.token)).await;
    let line = next_text(&mut socket, "core logs").await.unwrap();
    assert!(line.starts_with("[n-logs] "), "{line:?}");
    socket.close(None).await.unwrap();

    // Batched: several lines per message.
    let mut socket = open_socket(
        &cp,
        &format!("/api/core/logs?interval=0.5&token={}", cp.token),
        None,
    )
    .await;
    let batch = next_text(&mut socket, "batched core logs").await.unwrap();
    assert!(
        batch.lines().all(|l| l.starts_with("[n-logs] ")),
        "{batch:?}"
    );
    socket.close(None).await.unwrap();

    // Refusals, with Marzban's close codes.
    assert_eq!(close_code(&cp, "/api/core/logs").await.unwrap().0, 4401);
    assert_eq!(
        close_code(&cp, "/api/core/logs?token=forged")
            .await
            .unwrap()
            .0,
        4401
    );
    let (code, reason) = close_code(
        &cp,
        &format!("/api/core/logs?interval=60&token={}", cp.token),
    )
    .await
    .unwrap();
    assert_eq!((code, reason.as_str()), (4400, "Invalid interval value"));
    assert_eq!(
        close_code(&cp, &format!("/api/node/9999/logs?token={}", cp.token))
            .await
            .unwrap()
            .0,
        4404
    );
    let (status, body) = send(cp.api(Method::POST, "/api/admin").json(&json!({
        "username": "helper", "password": "helper-password", "is_sudo": false
    })))
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let helper = nexpoint_tests::control_plane::login(
        &cp.anonymous,
        &cp.base_url,
        "helper",
        "helper-password",
    )
    .await
    .unwrap();
    assert_eq!(
        close_code(&cp, &format!("/api/core/logs?token={helper}"))
            .await
            .unwrap()
            .0,
        u16::from(CloseCode::Library(4403))
    );

    // Without an upgrade, a JSON error like any endpoint.
    let (status, body) = send(cp.api(Method::GET, "/api/core/logs")).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("WebSocket"),
        "{body}"
    );
}

fn fingerprint_of(path: &Path) -> String {
    nexpoint_certs::fingerprint_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_keeps_the_node_serving_and_the_old_one_is_refused() {
    let cp = ControlPlane::start().await.unwrap();
    let mut node = connected_node(&cp, "n-rotate", &v2ray_bin()).await;
    let cert = node.state_dir.path().join("node.pem");
    let key = node.state_dir.path().join("node.key");
    let old = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    let old_fingerprint = fingerprint_of(&cert);
    assert_eq!(
        cp.node(node.id()).await.unwrap()["certificate_fingerprint"],
        old_fingerprint
    );
    let core = live_core(&node).unwrap();

    let (status, body) = send(cp.api(
        Method::POST,
        &format!("/api/node/{}/certificate/rotate", node.id()),
    ))
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_fingerprint = body["certificate_fingerprint"].as_str().unwrap().to_owned();
    assert_ne!(new_fingerprint, old_fingerprint);
    assert_eq!(
        fingerprint_of(&cert),
        new_fingerprint,
        "the agent keeps its new certificate"
    );
    assert_eq!(
        cp.node(node.id()).await.unwrap()["certificate_fingerprint"],
        new_fingerprint
    );
    assert_eq!(
        live_core(&node).unwrap().pid,
        core.pid,
        "rotation never touches the core"
    );

    // Users keep flowing to the node, over a fresh connection too.
    let (status, body) = send(cp.api(Method::POST, &format!("/api/node/{}/reconnect", node.id())))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let user = cp
        .create_simple_user("after-rotation", &["vmess"])
        .await
        .unwrap();
    let origin = TestHttpServer::start().await.unwrap();
    let link = link_to(
        &links_of(&cp, &user).await,
        Protocol::Vmess,
        cp.core.vmess_port,
    );
    let sing_box = client(&link).await;
    wait_reachable(&sing_box, &origin, "after-rotation", CONVERGE)
        .await
        .unwrap();
    node.wait_connected(&cp, CONVERGE).await.unwrap();

    // The old certificate, even with its key, is no longer trusted.
    node.stop_agent().await.unwrap();
    let new = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    std::fs::write(&cert, &old.0).unwrap();
    std::fs::write(&key, &old.1).unwrap();
    node.restart_agent().await.unwrap();
    let id = node.id();
    wait_until(
        CONVERGE,
        "the control plane to refuse the old certificate",
        || async {
            let n = cp.node(id).await?;
            if n["status"] == "error" {
                Ok(())
            } else {
                bail!("status {} message {}", n["status"], n["message"])
            }
        },
    )
    .await
    .unwrap();
    node.stop_agent().await.unwrap();
    std::fs::write(&cert, &new.0).unwrap();
    std::fs::write(&key, &new.1).unwrap();
    node.restart_agent().await.unwrap();
    node.wait_connected(&cp, CONVERGE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_bundle_enrolls_a_node_that_never_reached_the_control_plane() {
    let cp = ControlPlane::start().await.unwrap();
    let agent_port = free_port();
    let created = cp.create_node("n-offline", agent_port).await.unwrap();
    let data_dir = cp.data_dir().display().to_string();

    let mut bundle_cmd = ChildProcess::spawn(
        "nexpoint node bundle",
        nexpoint_bin(),
        ["node", "bundle", "N-OFFLINE", "--data-dir", &data_dir],
        &[("NO_COLOR", "1")],
    )
    .unwrap();
    let status = bundle_cmd.wait_exit(Duration::from_secs(60)).await.unwrap();
    let output = bundle_cmd.output_text();
    assert!(status.success(), "nexpoint node bundle: {output}");
    let bundle = output
        .lines()
        .filter_map(|l| l.split_once("nexpoint-bundle-v1:").map(|(_, b)| b))
        .next()
        .map(|b| format!("nexpoint-bundle-v1:{}", b.trim()))
        .unwrap_or_else(|| panic!("no bundle in {output}"));

    // A damaged bundle is refused with a message naming the problem.
    let state_dir = tempfile::Builder::new()
        .prefix("nexpoint-node")
        .tempdir()
        .unwrap();
    let state = state_dir.path().display().to_string();
    let damaged = format!("{}{}", &bundle[..bundle.len() - 40], "!!!!");
    let mut enroll = ChildProcess::spawn(
        "nexpoint-node enroll (damaged)",
        node_bin(),
        ["enroll", "--bundle", &damaged, "--state-dir", &state],
        &[("NO_COLOR", "1")],
    )
    .unwrap();
    let status = enroll.wait_exit(Duration::from_secs(60)).await.unwrap();
    assert!(!status.success());
    assert!(
        enroll.output_text().contains("bundle"),
        "{}",
        enroll.output_text()
    );

    let mut enroll = ChildProcess::spawn(
        "nexpoint-node enroll --bundle",
        node_bin(),
        ["enroll", "--bundle", &bundle, "--state-dir", &state],
        &[("NO_COLOR", "1")],
    )
    .unwrap();
    let status = enroll.wait_exit(Duration::from_secs(60)).await.unwrap();
    assert!(status.success(), "{}", enroll.output_text());
    let node = Node::start_enrolled(created, state_dir, agent_port, &v2ray_bin())
        .await
        .unwrap();
    let shown = node.wait_connected(&cp, CONVERGE).await.unwrap();
    assert_eq!(shown["enrolled"], true);
}
