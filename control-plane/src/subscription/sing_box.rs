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
mod tests {
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
}
