//! Tests of the end-to-end harness itself, against the real tools and without
//! the Nexpoint binaries: a hand-written V2Ray server, sing-box clients built
//! from share links, the origin server, the SOCKS client and the stats reader.

use std::time::Duration;

use nexpoint_tests::core_stats::{traffic_of, user_counters};
use nexpoint_tests::links::{ShareLink, build};
use nexpoint_tests::net::{free_port, free_ports};
use nexpoint_tests::paths::{mihomo_bin, sing_box_bin, v2ray_bin};
use nexpoint_tests::process::{ChildProcess, Stream};
use nexpoint_tests::sing_box::{self, SingBoxClient};
use nexpoint_tests::socks::{download, upload};
use nexpoint_tests::v2ray::{V2rayServer, server_config};
use nexpoint_tests::{TestHttpServer, wait_until};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

async fn first_line(name: &str, bin: std::path::PathBuf, args: &[&str]) -> String {
    let mut p = ChildProcess::spawn(name, bin, args, &[]).unwrap();
    let status = p.wait_exit(TIMEOUT).await.unwrap();
    assert!(status.success(), "{name} {args:?}: {status}");
    p.output_text()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_test_tools_are_installed_and_run() {
    let v = first_line("v2ray", v2ray_bin(), &["-version"]).await;
    assert!(v.starts_with("V2Ray 4."), "{v}");
    let s = first_line("sing-box", sing_box_bin(), &["version"]).await;
    assert!(s.starts_with("sing-box version 1."), "{s}");
    let m = first_line("mihomo", mihomo_bin(), &["-v"]).await;
    assert!(m.contains("Mihomo"), "{m}");
}

#[tokio::test]
async fn child_process_reads_readiness_and_reports_early_exit() {
    let mut p = ChildProcess::spawn(
        "sh",
        "sh",
        [
            "-c",
            "echo starting >&2; echo 'listening on http://127.0.0.1:1'; exec sleep 30",
        ],
        &[],
    )
    .unwrap();
    let line = p
        .wait_for_line(Some(Stream::Stdout), TIMEOUT, |l| {
            l.starts_with("listening on ")
        })
        .await
        .unwrap();
    assert_eq!(line, "listening on http://127.0.0.1:1");
    let status = p.terminate(Duration::from_secs(5)).await.unwrap();
    assert!(!status.success());

    let mut dead = ChildProcess::spawn("sh", "sh", ["-c", "echo boom >&2; exit 3"], &[]).unwrap();
    let err = dead
        .wait_for_line(None, TIMEOUT, |l| l.contains("never"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("boom"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");
}

#[tokio::test]
async fn sing_box_accepts_the_generated_client_configs() {
    let uuid = "b831381d-6324-4d53-ad4f-8cda48b30811";
    let links = [
        build::vmess("vmess", "127.0.0.1", 1001, uuid),
        build::vless("vless", "127.0.0.1", 1002, uuid),
        build::trojan("trojan", "127.0.0.1", 1003, "pass word"),
        build::shadowsocks("ss", "127.0.0.1", 1004, "chacha20-ietf-poly1305", "pw"),
        format!(
            "vmess://{}",
            base64_encode(
                json!({"v": "2", "ps": "ws-tls", "add": "example.com", "port": "443",
                "id": uuid, "aid": "0", "scy": "auto", "net": "ws", "type": "none",
                "host": "cdn.example.com", "path": "/ws", "tls": "tls", "sni": "example.com",
                "alpn": "h2,http/1.1", "fp": "chrome"})
            )
        ),
        // (REALITY needs uTLS, which the PyPI sing-box build lacks.)
        format!(
            "vless://{uuid}@example.com:443?security=tls&encryption=none&type=tcp&flow=xtls-rprx-vision&sni=www.example.com&fp=chrome#vision"
        ),
        "trojan://pw@example.com:443?security=tls&type=grpc&serviceName=svc&sni=example.com#grpc"
            .to_string(),
        format!(
            "vless://{uuid}@example.com:80?security=none&encryption=none&type=httpupgrade&path=%2Fup&host=example.com#hu"
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, link) in links.iter().enumerate() {
        let parsed = ShareLink::parse(link).unwrap();
        let config = sing_box::client_config(&parsed, free_port()).unwrap();
        let path = dir.path().join(format!("client-{i}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        sing_box::check(&path)
            .await
            .unwrap_or_else(|e| panic!("{link}: {e:#}\n{config:#}"));
    }
}

fn base64_encode(v: serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}

/// V2Ray as the server with one user per protocol, sing-box as the client:
/// bytes go through, the origin sees them, and the core counts them per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2ray_and_sing_box_carry_and_count_traffic_for_every_protocol() {
    let origin = TestHttpServer::start().await.unwrap();
    let ports = free_ports(5);
    let (api, vmess, vless, trojan, ss) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
    let uuid = uuid::Uuid::new_v4().to_string();
    let password = "harness-secret";
    let inbounds = vec![
        json!({"tag": "VMESS_TCP", "listen": "127.0.0.1", "port": vmess, "protocol": "vmess",
               "settings": {"clients": [{"id": uuid, "alterId": 0, "email": "1.vm", "level": 0}]}}),
        json!({"tag": "VLESS_TCP", "listen": "127.0.0.1", "port": vless, "protocol": "vless",
               "settings": {"clients": [{"id": uuid, "email": "2.vl", "level": 0}], "decryption": "none"}}),
        json!({"tag": "TROJAN_TCP", "listen": "127.0.0.1", "port": trojan, "protocol": "trojan",
               "settings": {"clients": [{"password": password, "email": "3.tr", "level": 0}]}}),
        json!({"tag": "SS_TCP", "listen": "127.0.0.1", "port": ss, "protocol": "shadowsocks",
               "settings": {"method": "chacha20-ietf-poly1305", "password": password,
                            "email": "4.ss", "level": 0, "network": "tcp"}}),
    ];
    let config = server_config(inbounds, api);
    let _server = V2rayServer::start(&config, &[api, vmess, vless, trojan, ss])
        .await
        .unwrap();

    let cases = [
        ("1.vm", build::vmess("vm", "127.0.0.1", vmess, &uuid)),
        ("2.vl", build::vless("vl", "127.0.0.1", vless, &uuid)),
        ("3.tr", build::trojan("tr", "127.0.0.1", trojan, password)),
        (
            "4.ss",
            build::shadowsocks("ss", "127.0.0.1", ss, "chacha20-ietf-poly1305", password),
        ),
    ];
    const DOWN: usize = 200_000;
    const UP: usize = 50_000;
    for (email, link) in cases {
        let parsed = ShareLink::parse(&link).unwrap();
        let client = SingBoxClient::start(&parsed).await.unwrap();
        download(client.socks, origin.addr, DOWN, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{email}: {e:#}"));
        upload(client.socks, origin.addr, UP, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{email}: {e:#}"));

        // The core updates counters as the connection closes: poll, bounded.
        let needle = format!("{email}>>>");
        let (up, down) = wait_until(TIMEOUT, &format!("{email}'s counters"), || {
            let needle = needle.clone();
            async move {
                let (up, down) = traffic_of(&user_counters(api).await?, &needle);
                anyhow::ensure!(
                    up >= UP as i64 && down >= DOWN as i64,
                    "uplink {up} downlink {down}"
                );
                Ok((up, down))
            }
        })
        .await
        .unwrap();
        eprintln!("{email}: uplink {up} downlink {down}");
        // Payload plus HTTP heads, not the whole protocol overhead.
        assert!(up < (UP + 4096) as i64 && down < (DOWN + 4096) as i64);
    }
    assert_eq!(origin.body_bytes_served(), 4 * DOWN as u64);
    assert_eq!(origin.body_bytes_received(), 4 * UP as u64);
}

/// What the end-to-end test relies on to see a deleted user: a client with
/// credentials the core does not know cannot open a new connection.
#[tokio::test]
async fn unknown_credentials_fail_through_sing_box() {
    let origin = TestHttpServer::start().await.unwrap();
    let ports = free_ports(2);
    let (api, vmess) = (ports[0], ports[1]);
    let known = uuid::Uuid::new_v4().to_string();
    let inbounds = vec![json!({
        "tag": "VMESS_TCP", "listen": "127.0.0.1", "port": vmess, "protocol": "vmess",
        "settings": {"clients": [{"id": known, "alterId": 0, "email": "1.known", "level": 0}]}})];
    let _server = V2rayServer::start(&server_config(inbounds, api), &[api, vmess])
        .await
        .unwrap();
    let stranger = uuid::Uuid::new_v4().to_string();
    let link = ShareLink::parse(&build::vmess("x", "127.0.0.1", vmess, &stranger)).unwrap();
    let client = SingBoxClient::start(&link).await.unwrap();
    let result = download(client.socks, origin.addr, 1000, Duration::from_secs(5)).await;
    assert!(result.is_err(), "an unknown vmess id got through");
    assert_eq!(origin.requests(), 0);
}
