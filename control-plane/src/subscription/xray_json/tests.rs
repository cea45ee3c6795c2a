//! Tests of the xray-json renderer (`super`).

use std::path::PathBuf;
use std::process::Command;

use super::*;

const UUID: &str = "7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";

fn endpoint(credentials: Credentials) -> Endpoint {
    Endpoint {
        alpn: vec![],
        ..Endpoint::new("n1 (alice) [tcp]", "203.0.113.7", 443, credentials)
    }
}

fn vmess() -> Credentials {
    Credentials::Vmess { id: UUID.into() }
}

fn vless(flow: &str) -> Credentials {
    Credentials::Vless {
        id: UUID.into(),
        flow: flow.into(),
    }
}

fn trojan() -> Credentials {
    Credentials::Trojan {
        password: "p@ss word".into(),
    }
}

fn shadowsocks() -> Credentials {
    Credentials::Shadowsocks {
        method: "aes-128-gcm".into(),
        password: "sspw".into(),
    }
}

fn rendered(endpoints: &[Endpoint]) -> Vec<Value> {
    match serde_json::from_str(&render(endpoints)).unwrap() {
        Value::Array(configs) => configs,
        other => panic!("not an array: {other}"),
    }
}

fn one(e: Endpoint) -> Value {
    let mut configs = rendered(&[e]);
    assert_eq!(configs.len(), 1);
    configs.remove(0)
}

fn outbound<'a>(config: &'a Value, tag: &str) -> &'a Value {
    config["outbounds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["tag"] == tag)
        .unwrap_or_else(|| panic!("no outbound {tag} in {config:#}"))
}

fn proxy_stream(e: Endpoint) -> Value {
    outbound(&one(e), "proxy")["streamSettings"].clone()
}

#[test]
fn empty_input_gives_an_empty_array() {
    assert_eq!(render(&[]), "[]");
}

#[test]
fn every_config_is_complete_and_keeps_its_remark() {
    let mut a = endpoint(vmess());
    a.remark = "🇩🇪 Frankfurt \"1\"".into();
    let mut b = endpoint(trojan());
    b.remark = "b".into();
    let configs = rendered(&[a, b]);
    assert_eq!(configs.len(), 2);
    assert_eq!(configs[0]["remarks"], "🇩🇪 Frankfurt \"1\"");
    assert_eq!(configs[1]["remarks"], "b");
    for c in &configs {
        assert_eq!(c["log"], json!({"loglevel": "warning"}));
        let inbounds = c["inbounds"].as_array().unwrap();
        assert_eq!(inbounds.len(), 2);
        assert_eq!(inbounds[0]["tag"], "socks");
        assert_eq!(inbounds[0]["protocol"], "socks");
        assert_eq!(inbounds[0]["listen"], "127.0.0.1");
        assert_eq!(inbounds[0]["port"], 10808);
        assert_eq!(inbounds[0]["settings"]["udp"], true);
        assert_eq!(inbounds[1]["tag"], "http");
        assert_eq!(inbounds[1]["protocol"], "http");
        assert_eq!(inbounds[1]["listen"], "127.0.0.1");
        assert_eq!(inbounds[1]["port"], 10809);

        let outbounds = c["outbounds"].as_array().unwrap();
        let tags: Vec<&str> = outbounds
            .iter()
            .map(|o| o["tag"].as_str().unwrap())
            .collect();
        assert_eq!(tags, ["proxy", "direct", "block"]);
        assert_eq!(outbound(c, "direct")["protocol"], "freedom");
        assert_eq!(outbound(c, "block")["protocol"], "blackhole");

        assert_eq!(c["routing"]["domainStrategy"], "AsIs");
        let text = c["routing"].to_string();
        assert!(!text.contains("geoip:") && !text.contains("geosite:"));
        let rules = c["routing"]["rules"].as_array().unwrap();
        assert_eq!(rules[0]["type"], "field");
        assert_eq!(rules[0]["outboundTag"], "direct");
        assert!(
            rules[0]["ip"]
                .as_array()
                .unwrap()
                .contains(&json!("127.0.0.0/8"))
        );
    }
    assert!(render(&[endpoint(vmess())]).contains("\n  {\n"), "pretty");
}

#[test]
fn vmess_shape() {
    let c = one(endpoint(vmess()));
    let p = outbound(&c, "proxy");
    assert_eq!(p["protocol"], "vmess");
    assert_eq!(
        p["settings"],
        json!({"vnext": [{
            "address": "203.0.113.7",
            "port": 443,
            "users": [{"id": UUID, "alterId": 0, "security": "auto"}],
        }]})
    );
    assert_eq!(
        p["streamSettings"],
        json!({"network": "tcp", "security": "none"})
    );
    assert!(p.get("mux").is_none());
}

#[test]
fn vless_flow_only_on_plain_tcp_with_tls() {
    let vision = "xtls-rprx-vision";
    let user = |e: Endpoint| outbound(&one(e), "proxy")["settings"]["vnext"][0]["users"][0].clone();

    let mut e = endpoint(vless(vision));
    e.security = "tls".into();
    assert_eq!(
        user(e.clone()),
        json!({"id": UUID, "encryption": "none", "flow": vision})
    );
    e.security = "reality".into();
    assert_eq!(user(e.clone())["flow"], vision);

    let mut none = e.clone();
    none.security = "none".into();
    let mut ws = e.clone();
    ws.network = "ws".into();
    let mut http_header = e.clone();
    http_header.header_type = "http".into();
    for e in [none, ws, http_header] {
        assert_eq!(user(e), json!({"id": UUID, "encryption": "none"}));
    }
    let mut no_flow = endpoint(vless(""));
    no_flow.security = "tls".into();
    assert_eq!(user(no_flow), json!({"id": UUID, "encryption": "none"}));
}

#[test]
fn trojan_and_shadowsocks_use_servers() {
    let c = one(endpoint(trojan()));
    let p = outbound(&c, "proxy");
    assert_eq!(p["protocol"], "trojan");
    assert_eq!(
        p["settings"],
        json!({"servers": [{"address": "203.0.113.7", "port": 443, "password": "p@ss word"}]})
    );

    let c = one(endpoint(shadowsocks()));
    let p = outbound(&c, "proxy");
    assert_eq!(p["protocol"], "shadowsocks");
    assert_eq!(
        p["settings"],
        json!({"servers": [{
            "address": "203.0.113.7",
            "port": 443,
            "method": "aes-128-gcm",
            "password": "sspw",
        }]})
    );
}

#[test]
fn tls_settings() {
    let mut e = endpoint(trojan());
    e.security = "tls".into();
    e.sni = "sni.example".into();
    e.alpn = vec!["h2".into(), "http/1.1".into()];
    e.fingerprint = "chrome".into();
    e.allow_insecure = true;
    let s = proxy_stream(e.clone());
    assert_eq!(s["security"], "tls");
    assert_eq!(
        s["tlsSettings"],
        json!({
            "serverName": "sni.example",
            "allowInsecure": true,
            "alpn": ["h2", "http/1.1"],
            "fingerprint": "chrome",
        })
    );

    // Empty fields stay out: the client defaults to the address.
    let mut bare = endpoint(trojan());
    bare.security = "tls".into();
    let s = proxy_stream(bare);
    assert_eq!(s["tlsSettings"], json!({"allowInsecure": false}));

    // No TLS: no tlsSettings, whatever the host's SNI says.
    e.security = "none".into();
    let s = proxy_stream(e.clone());
    assert_eq!(s["security"], "none");
    assert!(s.get("tlsSettings").is_none());

    // Unknown values (an inbound without TLS) are none.
    e.security = String::new();
    let s = proxy_stream(e);
    assert_eq!(s["security"], "none");
}

#[test]
fn reality_settings() {
    let mut e = endpoint(vless("xtls-rprx-vision"));
    e.security = "reality".into();
    e.sni = "www.example.com".into();
    let s = proxy_stream(e.clone());
    assert_eq!(s["security"], "reality");
    assert!(s.get("tlsSettings").is_none());
    assert_eq!(
        s["realitySettings"],
        json!({"serverName": "www.example.com", "fingerprint": "chrome"})
    );
    e.fingerprint = "firefox".into();
    let s = proxy_stream(e);
    assert_eq!(s["realitySettings"]["fingerprint"], "firefox");
}

#[test]
fn transports() {
    let stream = |network: &str, header: &str, host: &str, path: &str| {
        let mut e = endpoint(vmess());
        e.network = network.into();
        e.header_type = header.into();
        e.host = host.into();
        e.path = path.into();
        outbound(&one(e), "proxy")["streamSettings"].clone()
    };

    let ws = stream("ws", "none", "cdn.example", "/ws?ed=2048");
    assert_eq!(ws["network"], "ws");
    assert_eq!(
        ws["wsSettings"],
        json!({"path": "/ws?ed=2048", "headers": {"Host": "cdn.example"}})
    );
    assert_eq!(stream("ws", "", "", "")["wsSettings"], json!({"path": "/"}));

    let grpc = stream("grpc", "", "", "svc");
    assert_eq!(grpc["network"], "grpc");
    assert_eq!(
        grpc["grpcSettings"],
        json!({"serviceName": "svc", "multiMode": false})
    );

    let tcp_http = stream("tcp", "http", "h.example", "/p");
    assert_eq!(
        tcp_http["tcpSettings"],
        json!({"header": {"type": "http", "request": {
            "version": "1.1",
            "method": "GET",
            "path": ["/p"],
            "headers": {"Host": ["h.example"]},
        }}})
    );
    assert_eq!(
        stream("tcp", "http", "", "")["tcpSettings"]["header"]["request"],
        json!({"version": "1.1", "method": "GET", "path": ["/"]})
    );
    assert!(
        stream("tcp", "none", "h.example", "/p")
            .get("tcpSettings")
            .is_none()
    );

    let h2 = stream("http", "", "h.example", "/h2");
    assert_eq!(h2["network"], "http");
    assert_eq!(
        h2["httpSettings"],
        json!({"path": "/h2", "host": ["h.example"]})
    );

    let hu = stream("httpupgrade", "", "h.example", "/up");
    assert_eq!(
        hu["httpupgradeSettings"],
        json!({"path": "/up", "host": "h.example"})
    );

    assert_eq!(
        stream("kcp", "", "", ""),
        json!({"network": "kcp", "security": "none"})
    );
}

#[test]
fn mux_when_the_host_enables_it() {
    let mut e = endpoint(vless(""));
    e.mux = true;
    let c = one(e);
    assert_eq!(
        outbound(&c, "proxy")["mux"],
        json!({"enabled": true, "concurrency": 8})
    );
    assert!(outbound(&c, "direct").get("mux").is_none());
}

#[test]
fn fragment_and_noise_go_through_one_freedom_outbound() {
    let mut e = endpoint(vless(""));
    e.security = "tls".into();
    e.fragment =
        Some(r#"{"packets": "tlshello", "length": "100-200", "interval": "10-20"}"#.into());
    e.noise = Some(r#"[{"type": "rand", "packet": "10-20", "delay": "10-16"}]"#.into());
    let c = one(e);
    let tags: Vec<&str> = c["outbounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["proxy", "fragment", "direct", "block"]);
    assert_eq!(
        outbound(&c, "proxy")["streamSettings"]["sockopt"],
        json!({"dialerProxy": "fragment"})
    );
    assert_eq!(
        *outbound(&c, "fragment"),
        json!({
            "tag": "fragment",
            "protocol": "freedom",
            "settings": {
                "fragment": {"packets": "tlshello", "length": "100-200", "interval": "10-20"},
                "noises": [{"type": "rand", "packet": "10-20", "delay": "10-16"}],
            },
        })
    );
}

#[test]
fn fragment_or_noise_alone() {
    let mut e = endpoint(trojan());
    e.fragment = Some(r#"{"packets": "1-3", "length": "100", "interval": "5"}"#.into());
    let c = one(e);
    let settings = &outbound(&c, "fragment")["settings"];
    assert_eq!(settings["fragment"]["packets"], "1-3");
    assert!(settings.get("noises").is_none());

    let mut e = endpoint(trojan());
    e.noise = Some(r#"{"type": "str", "packet": "hello"}"#.into());
    let c = one(e);
    let settings = &outbound(&c, "fragment")["settings"];
    assert_eq!(
        settings["noises"],
        json!([{"type": "str", "packet": "hello"}])
    );
    assert!(settings.get("fragment").is_none());
    assert_eq!(
        outbound(&c, "proxy")["streamSettings"]["sockopt"]["dialerProxy"],
        "fragment"
    );
}

#[test]
fn marzban_compact_settings_are_understood() {
    let mut e = endpoint(vmess());
    e.fragment = Some("100-200,10-20,tlshello".into());
    e.noise = Some("rand:10-20,10-16&str:hello,world&base64:aGk=,5&hex:00ff".into());
    let c = one(e);
    assert_eq!(
        outbound(&c, "fragment")["settings"],
        json!({
            "fragment": {"packets": "tlshello", "length": "100-200", "interval": "10-20"},
            "noises": [
                {"type": "rand", "packet": "10-20", "delay": "10-16"},
                {"type": "str", "packet": "hello,world"},
                {"type": "base64", "packet": "aGk=", "delay": "5"},
                {"type": "hex", "packet": "00ff"},
            ],
        })
    );
}

#[test]
fn invalid_fragment_or_noise_is_ignored() {
    for (fragment, noise) in [
        (Some("{not json"), None),
        (None, Some("[{\"type\": ")),
        (Some("[1, 2]"), Some("42")),
        (Some("1,2"), Some("noise:1")),
        (Some("   "), Some("rand:x-y")),
        (Some(""), Some("[]")),
    ] {
        let mut e = endpoint(vmess());
        e.fragment = fragment.map(str::to_owned);
        e.noise = noise.map(str::to_owned);
        let c = one(e);
        let tags: Vec<&str> = c["outbounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["tag"].as_str().unwrap())
            .collect();
        assert_eq!(tags, ["proxy", "direct", "block"], "{fragment:?} {noise:?}");
        assert!(
            outbound(&c, "proxy")["streamSettings"]
                .get("sockopt")
                .is_none(),
            "{fragment:?} {noise:?}"
        );
    }

    // One bad setting does not take the good one with it.
    let mut e = endpoint(vmess());
    e.fragment = Some("{oops".into());
    e.noise = Some("rand:10-20".into());
    let c = one(e);
    assert_eq!(
        outbound(&c, "fragment")["settings"],
        json!({"noises": [{"type": "rand", "packet": "10-20"}]})
    );
}

/// The V2Ray binary: `NEXPOINT_V2RAY_BIN` (scripts/install-test-tools.sh
/// writes it to .tools/env). In CI it must be set; elsewhere
/// /usr/bin/v2ray is the fallback. Never skipped.
fn v2ray_bin() -> PathBuf {
    let from_env = std::env::var_os("NEXPOINT_V2RAY_BIN").filter(|v| !v.is_empty());
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let bin = match from_env {
        Some(bin) => PathBuf::from(bin),
        None if in_ci => panic!(
            "NEXPOINT_V2RAY_BIN is not set in CI: run scripts/install-test-tools.sh \
                 and `. .tools/env` before cargo test"
        ),
        None => PathBuf::from("/usr/bin/v2ray"),
    };
    assert!(
        bin.is_file(),
        "V2Ray binary {} not found: run scripts/install-test-tools.sh and `. .tools/env` \
             (or set NEXPOINT_V2RAY_BIN)",
        bin.display()
    );
    bin
}

/// Every protocol × {tcp, ws} × {none, tls} (Shadowsocks: tcp, none).
fn v2ray_matrix() -> Vec<Endpoint> {
    let mut out = Vec::new();
    for credentials in [vmess(), vless("xtls-rprx-vision"), trojan()] {
        for network in ["tcp", "ws"] {
            for security in ["none", "tls"] {
                let mut e = endpoint(credentials.clone());
                e.remark = format!("{:?} {network} {security}", credentials.protocol());
                e.network = network.into();
                e.security = security.into();
                if network == "ws" {
                    e.host = "cdn.example".into();
                    e.path = "/ws".into();
                }
                if security == "tls" {
                    e.sni = "sni.example".into();
                    e.alpn = vec!["h2".into(), "http/1.1".into()];
                    e.fingerprint = "chrome".into();
                    e.allow_insecure = true;
                }
                out.push(e);
            }
        }
    }
    out.push(endpoint(shadowsocks()));
    // The remaining knobs V2Ray 4.34 knows: mux and the HTTP TCP header.
    let mut e = endpoint(vmess());
    e.mux = true;
    e.header_type = "http".into();
    e.host = "h.example".into();
    e.path = "/p".into();
    out.push(e);
    out
}

#[test]
fn v2ray_accepts_every_rendered_config() {
    let bin = v2ray_bin();
    let endpoints = v2ray_matrix();
    let configs = rendered(&endpoints);
    assert_eq!(configs.len(), endpoints.len());
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let path = dir.path().join(format!("config-{i}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
        let out = Command::new(&bin)
            .arg("-test")
            .arg("-config")
            .arg(&path)
            .output()
            .unwrap_or_else(|err| panic!("running {}: {err}", bin.display()));
        if !out.status.success() {
            failures.push(format!(
                "{} ({}): {}\nstdout:\n{}\nstderr:\n{}\nconfig:\n{config:#}",
                config["remarks"],
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "V2Ray rejected {} of {} configs:\n\n{}",
        failures.len(),
        configs.len(),
        failures.join("\n\n")
    );
}
