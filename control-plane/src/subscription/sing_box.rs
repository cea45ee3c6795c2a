//! The `sing-box` format: a complete sing-box client config (1.12–1.14
//! schema) with one outbound per endpoint, a `proxy` selector, an `auto`
//! URL test and a local mixed (SOCKS/HTTP) inbound on 127.0.0.1:2080.
//!
//! Only the current schema is written: DNS servers are typed objects, the
//! route uses rule actions (`sniff`, `hijack-dns`) and
//! `default_domain_resolver`; nothing 1.13+ rejects (no `dns`/`block`
//! outbounds, no inbound `sniff` fields, no DNS address strings).
//!
//! Endpoints sing-box cannot speak are left out rather than rendered wrong,
//! because one invalid outbound makes sing-box refuse the whole file:
//! - raw TCP with an HTTP header (`header_type` "http"): sing-box has no TCP
//!   header obfuscation;
//! - REALITY: sing-box needs the server's public key and short id, which the
//!   [`Endpoint`] model does not carry (plain TLS to a REALITY server only
//!   reaches its camouflage site);
//! - transports sing-box lacks (kcp, quic, xhttp, ...);
//! - Shadowsocks behind a transport or TLS (sing-box's shadowsocks outbound
//!   is raw only).
//!
//! `mux` is not rendered: sing-box multiplex (sing-mux) is a different
//! protocol from the Mux.Cool that Xray and V2Ray servers speak, so enabling
//! it breaks the connection, while a Mux.Cool server serves non-mux clients.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::endpoints::{Credentials, Endpoint, split_early_data};

/// The selector clients switch proxies with; everything routes to it.
const PROXY_TAG: &str = "proxy";
/// The latency test over every proxy.
const AUTO_TAG: &str = "auto";
const DIRECT_TAG: &str = "direct";
const URL_TEST_URL: &str = "https://www.gstatic.com/generate_204";
const VISION: &str = "xtls-rprx-vision";
/// Every fingerprint sing-box's uTLS accepts; any other value fails the
/// whole config, so it is dropped instead.
const UTLS_FINGERPRINTS: [&str; 10] = [
    "chrome",
    "firefox",
    "edge",
    "safari",
    "360",
    "qq",
    "ios",
    "android",
    "random",
    "randomized",
];

#[derive(Serialize)]
struct Config {
    log: Log,
    dns: Dns,
    inbounds: Vec<Inbound>,
    outbounds: Vec<Outbound>,
    route: Route,
}

#[derive(Serialize)]
struct Log {
    level: &'static str,
    timestamp: bool,
}

#[derive(Serialize)]
struct Dns {
    servers: Vec<DnsServer>,
    #[serde(rename = "final")]
    final_server: &'static str,
}

/// A 1.12+ DNS server object (no legacy `address` strings).
#[derive(Serialize)]
struct DnsServer {
    #[serde(rename = "type")]
    kind: &'static str,
    tag: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detour: Option<&'static str>,
}

#[derive(Serialize)]
struct Inbound {
    #[serde(rename = "type")]
    kind: &'static str,
    tag: &'static str,
    listen: &'static str,
    listen_port: u16,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Outbound {
    Group(Group),
    Proxy(Proxy),
    Direct(Direct),
}

/// A `selector` or `urltest` outbound.
#[derive(Serialize)]
struct Group {
    #[serde(rename = "type")]
    kind: &'static str,
    tag: &'static str,
    outbounds: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<&'static str>,
}

#[derive(Serialize)]
struct Direct {
    #[serde(rename = "type")]
    kind: &'static str,
    tag: &'static str,
}

#[derive(Serialize)]
struct Proxy {
    #[serde(rename = "type")]
    kind: &'static str,
    tag: String,
    server: String,
    server_port: u16,
    #[serde(flatten)]
    auth: Auth,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<Transport>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Auth {
    Vmess {
        uuid: String,
        security: &'static str,
        alter_id: u8,
    },
    Vless {
        uuid: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        flow: Option<&'static str>,
        packet_encoding: &'static str,
    },
    Trojan {
        password: String,
    },
    Shadowsocks {
        method: String,
        password: String,
    },
}

#[derive(Serialize)]
struct Tls {
    enabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    server_name: String,
    insecure: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alpn: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    utls: Option<Utls>,
}

#[derive(Serialize)]
struct Utls {
    enabled: bool,
    fingerprint: String,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Transport {
    Ws {
        #[serde(skip_serializing_if = "String::is_empty")]
        path: String,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<&'static str, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_early_data: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        early_data_header_name: Option<&'static str>,
    },
    Grpc {
        #[serde(skip_serializing_if = "String::is_empty")]
        service_name: String,
    },
    Http {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        host: Vec<String>,
        #[serde(skip_serializing_if = "String::is_empty")]
        path: String,
    },
    Httpupgrade {
        #[serde(skip_serializing_if = "String::is_empty")]
        host: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        path: String,
    },
}

#[derive(Serialize)]
struct Route {
    rules: Vec<Rule>,
    #[serde(rename = "final")]
    final_outbound: &'static str,
    auto_detect_interface: bool,
    /// Resolves proxy server names; without it 1.14 refuses domain servers.
    default_domain_resolver: &'static str,
}

/// A route rule: matchers, then the action.
#[derive(Serialize, Default)]
struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_is_private: Option<bool>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outbound: Option<&'static str>,
}

/// The endpoint's transport, `tcp` when unset.
fn network(e: &Endpoint) -> &str {
    if e.network.is_empty() {
        "tcp"
    } else {
        &e.network
    }
}

/// Whether sing-box can reach this endpoint (see the module docs).
fn supported(e: &Endpoint) -> bool {
    let net = network(e);
    if net == "tcp" && e.header_type == "http" {
        return false;
    }
    if e.security == "reality" {
        return false;
    }
    if matches!(e.credentials, Credentials::Shadowsocks { .. }) {
        return net == "tcp" && !e.tls();
    }
    matches!(net, "tcp" | "ws" | "grpc" | "http" | "h2" | "httpupgrade")
}

/// An IPv6 literal without the brackets share links put around it.
fn server(address: &str) -> String {
    address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address)
        .to_owned()
}

/// One tag per endpoint: its remark, with ` 2`, ` 3`, ... appended when
/// taken (by an earlier endpoint or by one of this config's own outbounds).
fn unique_tags(endpoints: &[&Endpoint]) -> Vec<String> {
    let mut taken: HashSet<String> = [PROXY_TAG, AUTO_TAG, DIRECT_TAG]
        .into_iter()
        .map(str::to_owned)
        .collect();
    endpoints
        .iter()
        .map(|e| {
            let base = if e.remark.trim().is_empty() {
                e.protocol().as_str().to_owned()
            } else {
                e.remark.clone()
            };
            let mut tag = base.clone();
            let mut n = 2;
            while !taken.insert(tag.clone()) {
                tag = format!("{base} {n}");
                n += 1;
            }
            tag
        })
        .collect()
}

/// Xray/V2Ray method names sing-box spells differently.
fn ss_method(method: &str) -> String {
    match method {
        "chacha20-poly1305" => "chacha20-ietf-poly1305".into(),
        "xchacha20-poly1305" => "xchacha20-ietf-poly1305".into(),
        "plain" => "none".into(),
        other => other.into(),
    }
}

/// Vision, on the links' terms: raw TCP with TLS and no HTTP header.
fn flow(e: &Endpoint, flow: &str) -> Option<&'static str> {
    let vision = matches!(flow, "xtls-rprx-vision" | "xtls-rprx-vision-udp443");
    (vision && network(e) == "tcp" && e.tls() && e.header_type != "http").then_some(VISION)
}

fn tls(e: &Endpoint) -> Option<Tls> {
    e.tls().then(|| Tls {
        enabled: true,
        server_name: e.sni.clone(),
        insecure: e.allow_insecure,
        alpn: e.alpn.clone(),
        utls: UTLS_FINGERPRINTS
            .contains(&e.fingerprint.as_str())
            .then(|| Utls {
                enabled: true,
                fingerprint: e.fingerprint.clone(),
            }),
    })
}

fn transport(e: &Endpoint) -> Option<Transport> {
    Some(match network(e) {
        "ws" => {
            // sing-box sends early data in the same `Sec-WebSocket-Protocol` header when told to.
            let (path, early) = split_early_data(&e.path);
            let mut headers = BTreeMap::new();
            if !e.host.is_empty() {
                headers.insert("Host", e.host.clone());
            }
            Transport::Ws {
                path,
                headers,
                max_early_data: early,
                early_data_header_name: early.map(|_| "Sec-WebSocket-Protocol"),
            }
        }
        "grpc" => Transport::Grpc {
            service_name: e.path.clone(),
        },
        "http" | "h2" => Transport::Http {
            host: if e.host.is_empty() {
                Vec::new()
            } else {
                vec![e.host.clone()]
            },
            path: e.path.clone(),
        },
        "httpupgrade" => Transport::Httpupgrade {
            host: e.host.clone(),
            path: e.path.clone(),
        },
        _ => return None,
    })
}

fn proxy(e: &Endpoint, tag: String) -> Proxy {
    let (kind, auth) = match &e.credentials {
        Credentials::Vmess { id } => (
            "vmess",
            Auth::Vmess {
                uuid: id.clone(),
                security: "auto",
                alter_id: 0,
            },
        ),
        Credentials::Vless { id, flow: f } => (
            "vless",
            Auth::Vless {
                uuid: id.clone(),
                flow: flow(e, f),
                packet_encoding: "xudp",
            },
        ),
        Credentials::Trojan { password } => (
            "trojan",
            Auth::Trojan {
                password: password.clone(),
            },
        ),
        Credentials::Shadowsocks { method, password } => (
            "shadowsocks",
            Auth::Shadowsocks {
                method: ss_method(method),
                password: password.clone(),
            },
        ),
    };
    let raw = matches!(auth, Auth::Shadowsocks { .. });
    Proxy {
        kind,
        tag,
        server: server(&e.address),
        server_port: e.port,
        auth,
        tls: if raw { None } else { tls(e) },
        transport: if raw { None } else { transport(e) },
    }
}

/// The sing-box client config for `endpoints`, as pretty JSON. Without a
/// usable endpoint it is still valid: the selector offers only `direct`.
pub fn render(endpoints: &[Endpoint]) -> String {
    let usable: Vec<&Endpoint> = endpoints.iter().filter(|e| supported(e)).collect();
    let tags = unique_tags(&usable);

    let mut outbounds = Vec::with_capacity(usable.len() + 3);
    if tags.is_empty() {
        outbounds.push(Outbound::Group(Group {
            kind: "selector",
            tag: PROXY_TAG,
            outbounds: vec![DIRECT_TAG.into()],
            default: Some(DIRECT_TAG.into()),
            url: None,
            interval: None,
        }));
    } else {
        // A urltest over nothing is an error ("missing tags"), so it exists
        // only with proxies.
        let mut choices = vec![AUTO_TAG.to_owned()];
        choices.extend(tags.iter().cloned());
        outbounds.push(Outbound::Group(Group {
            kind: "selector",
            tag: PROXY_TAG,
            outbounds: choices,
            default: Some(tags[0].clone()),
            url: None,
            interval: None,
        }));
        outbounds.push(Outbound::Group(Group {
            kind: "urltest",
            tag: AUTO_TAG,
            outbounds: tags.clone(),
            default: None,
            url: Some(URL_TEST_URL),
            interval: Some("3m"),
        }));
    }
    outbounds.extend(
        usable
            .iter()
            .zip(tags)
            .map(|(e, tag)| Outbound::Proxy(proxy(e, tag))),
    );
    outbounds.push(Outbound::Direct(Direct {
        kind: "direct",
        tag: DIRECT_TAG,
    }));

    let config = Config {
        log: Log {
            level: "warn",
            timestamp: true,
        },
        dns: Dns {
            servers: vec![
                DnsServer {
                    kind: "https",
                    tag: "remote",
                    server: Some("1.1.1.1"),
                    detour: Some(PROXY_TAG),
                },
                DnsServer {
                    kind: "local",
                    tag: "local",
                    server: None,
                    detour: None,
                },
            ],
            final_server: "remote",
        },
        inbounds: vec![Inbound {
            kind: "mixed",
            tag: "mixed-in",
            listen: "127.0.0.1",
            listen_port: 2080,
        }],
        outbounds,
        route: Route {
            rules: vec![
                Rule {
                    action: "sniff",
                    ..Default::default()
                },
                Rule {
                    protocol: Some("dns"),
                    action: "hijack-dns",
                    ..Default::default()
                },
                Rule {
                    ip_is_private: Some(true),
                    action: "route",
                    outbound: Some(DIRECT_TAG),
                    ..Default::default()
                },
            ],
            final_outbound: PROXY_TAG,
            auto_detect_interface: false,
            default_domain_resolver: "local",
        },
    };
    serde_json::to_string_pretty(&config).expect("a sing-box config always serializes")
}

#[cfg(test)]
mod tests;
