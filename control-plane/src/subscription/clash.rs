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
mod tests;
