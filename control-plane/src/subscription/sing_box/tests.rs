//! Tests of the sing-box renderer (`super`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::*;

const VMESS_ID: &str = "0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a";
const VLESS_ID: &str = "7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";

fn vmess() -> Credentials {
    Credentials::Vmess {
        id: VMESS_ID.into(),
    }
}

fn vless(flow: &str) -> Credentials {
    Credentials::Vless {
        id: VLESS_ID.into(),
        flow: flow.into(),
    }
}

fn trojan() -> Credentials {
    Credentials::Trojan {
        password: "p@ss word".into(),
    }
}

fn shadowsocks(method: &str) -> Credentials {
    Credentials::Shadowsocks {
        method: method.into(),
        password: "sspw".into(),
    }
}

fn ep(remark: &str, credentials: Credentials, network: &str, security: &str) -> Endpoint {
    Endpoint {
        network: network.into(),
        security: security.into(),
        ..Endpoint::new(remark, "203.0.113.7", 443, credentials)
    }
}

fn config(endpoints: &[Endpoint]) -> Value {
    serde_json::from_str(&render(endpoints)).unwrap()
}

/// The outbound tagged `tag`.
fn outbound<'a>(config: &'a Value, tag: &str) -> &'a Value {
    config["outbounds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["tag"] == tag)
        .unwrap_or_else(|| panic!("no outbound {tag:?} in {config:#}"))
}

/// The tags of the proxy outbounds, in order.
fn proxy_tags(config: &Value) -> Vec<String> {
    config["outbounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| !matches!(o["type"].as_str(), Some("selector" | "urltest" | "direct")))
        .map(|o| o["tag"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn each_protocol_has_its_fields() {
    let c = config(&[
        ep("vm", vmess(), "tcp", "none"),
        ep("vl", vless(""), "tcp", "none"),
        ep("tr", trojan(), "tcp", "none"),
        ep("ss", shadowsocks("aes-128-gcm"), "tcp", "none"),
    ]);
    assert_eq!(
        outbound(&c, "vm"),
        &json!({"type": "vmess", "tag": "vm", "server": "203.0.113.7", "server_port": 443,
                    "uuid": VMESS_ID, "security": "auto", "alter_id": 0})
    );
    assert_eq!(
        outbound(&c, "vl"),
        &json!({"type": "vless", "tag": "vl", "server": "203.0.113.7", "server_port": 443,
                    "uuid": VLESS_ID, "packet_encoding": "xudp"})
    );
    assert_eq!(
        outbound(&c, "tr"),
        &json!({"type": "trojan", "tag": "tr", "server": "203.0.113.7", "server_port": 443,
                    "password": "p@ss word"})
    );
    assert_eq!(
        outbound(&c, "ss"),
        &json!({"type": "shadowsocks", "tag": "ss", "server": "203.0.113.7", "server_port": 443,
                    "method": "aes-128-gcm", "password": "sspw"})
    );
}

#[test]
fn groups_inbound_dns_and_route_use_the_current_schema() {
    let c = config(&[
        ep("a", vmess(), "tcp", "none"),
        ep("b", trojan(), "tcp", "tls"),
    ]);
    let outbounds = c["outbounds"].as_array().unwrap();
    let types: Vec<&str> = outbounds
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["selector", "urltest", "vmess", "trojan", "direct"]);
    assert_eq!(
        outbound(&c, "proxy"),
        &json!({"type": "selector", "tag": "proxy", "outbounds": ["auto", "a", "b"], "default": "a"})
    );
    let auto = outbound(&c, "auto");
    assert_eq!(auto["type"], "urltest");
    assert_eq!(auto["outbounds"], json!(["a", "b"]));
    assert_eq!(
        outbound(&c, "direct"),
        &json!({"type": "direct", "tag": "direct"})
    );
    // Nothing 1.13+ rejects.
    for o in outbounds {
        assert!(!matches!(o["type"].as_str(), Some("dns" | "block")), "{o}");
    }

    assert_eq!(
        c["inbounds"],
        json!([{"type": "mixed", "tag": "mixed-in", "listen": "127.0.0.1", "listen_port": 2080}])
    );
    for server in c["dns"]["servers"].as_array().unwrap() {
        assert!(server["type"].is_string(), "typed DNS server: {server}");
        assert!(
            server.get("address").is_none(),
            "legacy DNS address: {server}"
        );
    }
    assert_eq!(
        c["dns"]["servers"][1],
        json!({"type": "local", "tag": "local"})
    );
    assert_eq!(c["dns"]["final"], "remote");

    let route = &c["route"];
    assert_eq!(route["rules"][0], json!({"action": "sniff"}));
    assert_eq!(
        route["rules"][1],
        json!({"protocol": "dns", "action": "hijack-dns"})
    );
    assert_eq!(route["final"], "proxy");
    assert_eq!(route["auto_detect_interface"], false);
    assert_eq!(route["default_domain_resolver"], "local");
}

#[test]
fn no_endpoints_still_make_a_config() {
    let c = config(&[]);
    assert_eq!(
        c["outbounds"],
        json!([
            {"type": "selector", "tag": "proxy", "outbounds": ["direct"], "default": "direct"},
            {"type": "direct", "tag": "direct"}
        ])
    );
    assert_eq!(c["route"]["final"], "proxy");
    // Endpoints sing-box cannot speak count as none.
    let mut obfuscated = ep("x", vmess(), "tcp", "none");
    obfuscated.header_type = "http".into();
    assert_eq!(config(&[obfuscated]), c);
}

#[test]
fn tls_fields() {
    let mut e = ep("t", trojan(), "tcp", "tls");
    e.sni = "sni.example".into();
    e.alpn = vec!["h2".into(), "http/1.1".into()];
    e.fingerprint = "chrome".into();
    e.allow_insecure = true;
    assert_eq!(
        outbound(&config(&[e.clone()]), "t")["tls"],
        json!({"enabled": true, "server_name": "sni.example", "insecure": true,
                   "alpn": ["h2", "http/1.1"], "utls": {"enabled": true, "fingerprint": "chrome"}})
    );

    // Defaults leave the optional fields out.
    let plain = ep("t", trojan(), "tcp", "tls");
    assert_eq!(
        outbound(&config(&[plain]), "t")["tls"],
        json!({"enabled": true, "insecure": false})
    );
    // An unknown fingerprint would fail the whole file: dropped.
    e.fingerprint = "chrome_pq_psk_v9".into();
    assert!(outbound(&config(&[e]), "t")["tls"].get("utls").is_none());
    // No TLS object without TLS.
    assert!(
        outbound(&config(&[ep("n", vmess(), "tcp", "none")]), "n")
            .get("tls")
            .is_none()
    );
}

#[test]
fn transports() {
    let mut ws = ep("ws", vmess(), "ws", "tls");
    ws.host = "cdn.example".into();
    ws.path = "/ws".into();
    let mut grpc = ep("grpc", vless(""), "grpc", "tls");
    grpc.path = "svc".into();
    let mut http = ep("http", trojan(), "http", "tls");
    http.host = "h2.example".into();
    http.path = "/h2".into();
    let mut upgrade = ep("up", vless(""), "httpupgrade", "none");
    upgrade.host = "up.example".into();
    upgrade.path = "/up".into();
    let mut early = ep("early", vmess(), "ws", "none");
    early.path = "/ws?ed=2048".into();
    let bare = ep("bare", trojan(), "ws", "none");
    let c = config(&[ws, grpc, http, upgrade, early, bare]);

    assert_eq!(
        outbound(&c, "ws")["transport"],
        json!({"type": "ws", "path": "/ws", "headers": {"Host": "cdn.example"}})
    );
    assert_eq!(
        outbound(&c, "grpc")["transport"],
        json!({"type": "grpc", "service_name": "svc"})
    );
    assert_eq!(
        outbound(&c, "http")["transport"],
        json!({"type": "http", "host": ["h2.example"], "path": "/h2"})
    );
    assert_eq!(
        outbound(&c, "up")["transport"],
        json!({"type": "httpupgrade", "host": "up.example", "path": "/up"})
    );
    assert_eq!(
        outbound(&c, "early")["transport"],
        json!({"type": "ws", "path": "/ws", "max_early_data": 2048,
                   "early_data_header_name": "Sec-WebSocket-Protocol"})
    );
    assert_eq!(outbound(&c, "bare")["transport"], json!({"type": "ws"}));
    assert!(
        outbound(&config(&[ep("tcp", vmess(), "tcp", "none")]), "tcp")
            .get("transport")
            .is_none()
    );
}

#[test]
fn early_data_keeps_other_query_parameters() {
    assert_eq!(
        split_early_data("/a?x=1&ed=640&y=2"),
        ("/a?x=1&y=2".into(), Some(640))
    );
    assert_eq!(split_early_data("/a?ed=oops"), ("/a?ed=oops".into(), None));
    assert_eq!(split_early_data("/a"), ("/a".into(), None));
}

#[test]
fn what_sing_box_cannot_speak_is_left_out() {
    let mut header = ep("header", vmess(), "tcp", "none");
    header.header_type = "http".into();
    let reality = ep("reality", vless(VISION), "tcp", "reality");
    let kcp = ep("kcp", vmess(), "kcp", "none");
    let xhttp = ep("xhttp", vless(""), "xhttp", "tls");
    let ss_ws = ep("ss-ws", shadowsocks("aes-128-gcm"), "ws", "none");
    let ss_tls = ep("ss-tls", shadowsocks("aes-128-gcm"), "tcp", "tls");
    let mut header_ws = ep("header-ws", vmess(), "ws", "none");
    header_ws.header_type = "http".into(); // only raw TCP has the header
    let c = config(&[
        header,
        ep("kept", trojan(), "tcp", "none"),
        reality,
        kcp,
        xhttp,
        ss_ws,
        ss_tls,
        header_ws,
    ]);
    assert_eq!(proxy_tags(&c), ["kept", "header-ws"]);
    assert_eq!(
        outbound(&c, "proxy")["outbounds"],
        json!(["auto", "kept", "header-ws"])
    );
}

#[test]
fn mux_is_never_rendered() {
    let mut e = ep("m", vmess(), "ws", "tls");
    e.mux = true;
    assert!(outbound(&config(&[e]), "m").get("multiplex").is_none());
}

#[test]
fn remarks_become_unique_tags() {
    let c = config(&[
        ep("node", vmess(), "tcp", "none"),
        ep("node", vless(""), "tcp", "none"),
        ep("node 2", trojan(), "tcp", "none"),
        ep("node", trojan(), "ws", "none"),
        ep("proxy", vmess(), "ws", "none"),
        ep("direct", vmess(), "ws", "none"),
        ep(" ", vmess(), "ws", "none"),
    ]);
    assert_eq!(
        proxy_tags(&c),
        [
            "node", "node 2", "node 2 2", "node 3", "proxy 2", "direct 2", "vmess"
        ]
    );
    assert_eq!(outbound(&c, "proxy")["type"], "selector");
    assert_eq!(outbound(&c, "direct")["type"], "direct");
    assert_eq!(outbound(&c, "proxy")["default"], "node");
}

#[test]
fn vision_flow_only_on_raw_tcp_with_tls() {
    let flow_of = |e: Endpoint| outbound(&config(&[e]), "v").get("flow").cloned();
    assert_eq!(
        flow_of(ep("v", vless(VISION), "tcp", "tls")),
        Some(json!(VISION))
    );
    assert_eq!(
        flow_of(ep("v", vless("xtls-rprx-vision-udp443"), "tcp", "tls")),
        Some(json!(VISION))
    );
    assert_eq!(flow_of(ep("v", vless(VISION), "tcp", "none")), None);
    assert_eq!(flow_of(ep("v", vless(VISION), "ws", "tls")), None);
    assert_eq!(flow_of(ep("v", vless(VISION), "grpc", "tls")), None);
    assert_eq!(flow_of(ep("v", vless(""), "tcp", "tls")), None);
}

#[test]
fn addresses_and_methods_in_sing_box_spelling() {
    let mut e = ep("s", shadowsocks("chacha20-poly1305"), "tcp", "none");
    e.address = "[2001:db8::1]".into();
    let c = config(&[e]);
    assert_eq!(outbound(&c, "s")["server"], "2001:db8::1");
    assert_eq!(outbound(&c, "s")["method"], "chacha20-ietf-poly1305");
}

// --- the real sing-box ------------------------------------------------

/// The sing-box binary: `NEXPOINT_SING_BOX_BIN` (from `.tools/env`). In
/// CI a missing variable fails; elsewhere the binary is looked up where
/// scripts/install-test-tools.sh puts it. Never skipped.
fn sing_box_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NEXPOINT_SING_BOX_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "NEXPOINT_SING_BOX_BIN={} is not a file (re-run scripts/install-test-tools.sh)",
            bin.display()
        );
        return bin;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !ci,
        "NEXPOINT_SING_BOX_BIN is not set in CI: run scripts/install-test-tools.sh and \
             `. .tools/env` before cargo test"
    );
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv");
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let mut candidates = vec![venv.join("bin/sing-box")];
    if let Ok(libs) = std::fs::read_dir(venv.join("lib")) {
        let mut libs: Vec<PathBuf> = libs.flatten().map(|d| d.path()).collect();
        libs.sort();
        candidates.extend(libs.into_iter().map(|lib| {
            lib.join("site-packages/sing_box_bin/bin")
                .join(format!("sing-box-linux-{arch}"))
        }));
    }
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no sing-box binary: NEXPOINT_SING_BOX_BIN is not set and none of {candidates:?} \
                     exists; run scripts/install-test-tools.sh and `. .tools/env`"
            )
        })
}

/// `sing-box check` of `config`: Ok, or Err with its output.
fn sing_box_check(bin: &Path, config: &str) -> Result<String, String> {
    let mut file = tempfile::Builder::new()
        .prefix("nexpoint-sing-box-")
        .suffix(".json")
        .tempfile()
        .unwrap();
    std::io::Write::write_all(&mut file, config.as_bytes()).unwrap();
    let out = Command::new(bin)
        .arg("check")
        .arg("-c")
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(output)
    } else {
        Err(format!("{}\n{output}", out.status))
    }
}

#[test]
fn sing_box_checks_every_rendered_config() {
    let bin = sing_box_bin();
    let mut endpoints = Vec::new();
    for (name, credentials) in [
        ("vmess", vmess()),
        ("vless", vless(VISION)),
        ("trojan", trojan()),
    ] {
        for network in ["tcp", "ws"] {
            for security in ["none", "tls"] {
                let mut e = ep(
                    &format!("{name} {network} {security}"),
                    credentials.clone(),
                    network,
                    security,
                );
                if network == "ws" {
                    e.host = "cdn.example".into();
                    e.path = "/ws?ed=2048".into();
                }
                if security == "tls" {
                    e.sni = "sni.example".into();
                    e.alpn = vec!["http/1.1".into()];
                }
                endpoints.push(e);
            }
        }
    }
    endpoints.push(ep(
        "ss",
        shadowsocks("chacha20-ietf-poly1305"),
        "tcp",
        "none",
    ));
    // Beyond the matrix: the other transports, duplicate remarks, an
    // IPv6 address, insecure TLS, a 2022 cipher and mux.
    let mut grpc = ep("vless grpc", vless(""), "grpc", "tls");
    grpc.path = "svc".into();
    let mut http = ep("trojan http", trojan(), "http", "tls");
    http.host = "h2.example".into();
    http.path = "/h2".into();
    http.allow_insecure = true;
    let mut upgrade = ep("vmess httpupgrade", vmess(), "httpupgrade", "none");
    upgrade.host = "up.example".into();
    upgrade.path = "/up".into();
    upgrade.mux = true;
    let mut v6 = ep("ss", shadowsocks("2022-blake3-aes-128-gcm"), "tcp", "none");
    v6.address = "[2001:db8::1]".into();
    v6.credentials = Credentials::Shadowsocks {
        method: "2022-blake3-aes-128-gcm".into(),
        password: "AAECAwQFBgcICQoLDA0ODw==".into(),
    };
    endpoints.extend([grpc, http, upgrade, v6]);

    let config = render(&endpoints);
    assert_eq!(
        proxy_tags(&serde_json::from_str(&config).unwrap()).len(),
        17
    );
    for (what, config) in [("every endpoint", config), ("no endpoint", render(&[]))] {
        match sing_box_check(&bin, &config) {
            Ok(output) => assert!(
                !output.to_lowercase().contains("deprecated"),
                "sing-box warns about {what}:\n{output}\n{config}"
            ),
            Err(output) => panic!("sing-box check failed for {what}: {output}\n{config}"),
        }
    }

    // uTLS: the PyPI build lacks `with_utls`, so it may refuse to start
    // a uTLS client; decoding (strict, unknown fields fail) comes first,
    // so reaching that error still proves the schema.
    let utls: Vec<Endpoint> = UTLS_FINGERPRINTS
        .iter()
        .map(|fp| {
            let mut e = ep(&format!("utls {fp}"), vless(VISION), "tcp", "tls");
            e.fingerprint = (*fp).into();
            e
        })
        .collect();
    let config = render(&utls);
    if let Err(output) = sing_box_check(&bin, &config) {
        assert!(
            output.contains("uTLS is not included in this build"),
            "sing-box check failed for uTLS: {output}\n{config}"
        );
    }
}
