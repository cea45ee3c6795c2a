//! Share links (v2rayN formats) for a user's inbounds and their hosts.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

use super::endpoints::{Credentials, Endpoint, endpoints};
use crate::domain::Inbound;
use crate::store::{Host, User};

/// RFC 3986 unreserved characters stay; everything else is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

fn bracket_ipv6(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_owned()
    }
}

fn transport_query(e: &Endpoint) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("security", e.security.clone()),
        ("type", e.network.clone()),
    ];
    if e.network == "tcp" {
        q.push(("headerType", e.header_type.clone()));
    }
    if !e.host.is_empty() {
        q.push(("host", e.host.clone()));
    }
    if !e.path.is_empty() {
        let key = if e.network == "grpc" {
            "serviceName"
        } else {
            "path"
        };
        q.push((key, e.path.clone()));
    }
    if e.tls() {
        if !e.sni.is_empty() {
            q.push(("sni", e.sni.clone()));
        }
        if !e.fingerprint.is_empty() {
            q.push(("fp", e.fingerprint.clone()));
        }
        if !e.alpn.is_empty() {
            q.push(("alpn", e.alpn.join(",")));
        }
        if e.allow_insecure {
            q.push(("allowInsecure", "1".into()));
        }
    }
    q
}

fn query_string(q: &[(&str, String)]) -> String {
    q.iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn vmess(e: &Endpoint, id: &str) -> String {
    let tls = e.tls();
    let doc = json!({
        "v": "2",
        "ps": e.remark,
        "add": e.address,
        "port": e.port,
        "id": id,
        "aid": "0",
        "scy": "auto",
        "net": e.network,
        "type": e.header_type,
        "host": e.host,
        "path": e.path,
        "tls": if tls { e.security.as_str() } else { "" },
        "sni": if tls { e.sni.as_str() } else { "" },
        "alpn": if tls { e.alpn.join(",") } else { String::new() },
        "fp": if tls { e.fingerprint.as_str() } else { "" },
    });
    format!("vmess://{}", STANDARD.encode(doc.to_string()))
}

fn vless(e: &Endpoint, id: &str, flow: &str) -> String {
    let mut q = transport_query(e);
    q.push(("encryption", "none".into()));
    // Vision only works on raw TCP with TLS/REALITY and no HTTP header.
    if !flow.is_empty() && e.network == "tcp" && e.tls() && e.header_type != "http" {
        q.push(("flow", flow.into()));
    }
    format!(
        "vless://{}@{}:{}?{}#{}",
        enc(id),
        bracket_ipv6(&e.address),
        e.port,
        query_string(&q),
        enc(&e.remark)
    )
}

fn trojan(e: &Endpoint, password: &str) -> String {
    format!(
        "trojan://{}@{}:{}?{}#{}",
        enc(password),
        bracket_ipv6(&e.address),
        e.port,
        query_string(&transport_query(e)),
        enc(&e.remark)
    )
}

fn shadowsocks(e: &Endpoint, method: &str, password: &str) -> String {
    let userinfo = if method.starts_with("2022-") {
        // SIP022: the key is base64 already; userinfo is percent-encoded.
        format!("{}:{}", enc(method), enc(password))
    } else {
        // SIP002: AEAD userinfo is base64url(method:password) without padding.
        URL_SAFE_NO_PAD.encode(format!("{method}:{password}"))
    };
    format!(
        "ss://{userinfo}@{}:{}#{}",
        bracket_ipv6(&e.address),
        e.port,
        enc(&e.remark)
    )
}

/// The share link of one endpoint.
pub fn share_link(e: &Endpoint) -> String {
    match &e.credentials {
        Credentials::Vmess { id } => vmess(e, id),
        Credentials::Vless { id, flow } => vless(e, id, flow),
        Credentials::Trojan { password } => trojan(e, password),
        Credentials::Shadowsocks { method, password } => shadowsocks(e, method, password),
    }
}

/// One link per (protocol, inbound the user is in, enabled host of it).
pub fn share_links(user: &User, inbounds: &[Inbound], hosts: &[Host]) -> Vec<String> {
    endpoints(
        user,
        inbounds,
        hosts,
        crate::store::now(),
        &mut rand::thread_rng(),
    )
    .iter()
    .map(share_link)
    .collect()
}

/// The `v2ray` format: the links, one per line, in standard base64.
pub fn base64_list(endpoints: &[Endpoint]) -> String {
    let links: Vec<String> = endpoints.iter().map(share_link).collect();
    STANDARD.encode(links.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbounds::DEFAULT_CORE_CONFIG;
    use crate::domain::{Proxies, ResetStrategy, UserStatus, parse_inbounds};

    fn user() -> User {
        let proxies: Proxies = serde_json::from_str(
            r#"{"vmess": {"id": "0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a"},
                "vless": {"id": "7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a"},
                "trojan": {"password": "p@ss word"},
                "shadowsocks": {"password": "sspw", "method": "aes-128-gcm"}}"#,
        )
        .unwrap();
        User {
            id: 1,
            username: "alice".into(),
            status: UserStatus::Active,
            proxies,
            excluded_inbounds: Default::default(),
            used_traffic: 0,
            lifetime_used_traffic: 0,
            data_limit: None,
            data_limit_reset_strategy: ResetStrategy::NoReset,
            expire: None,
            note: None,
            admin_id: None,
            admin_username: None,
            on_hold_expire_duration: None,
            on_hold_timeout: None,
            auto_delete_in_days: None,
            sub_revoked_at: None,
            sub_updated_at: None,
            sub_last_user_agent: None,
            online_at: None,
            created_at: 0,
            edit_at: None,
            next_plan: None,
            last_status_change: None,
            last_usage_reset_at: None,
        }
    }

    fn host(tag: &str, address: &str) -> Host {
        Host {
            id: 1,
            inbound_tag: tag.into(),
            remark: "n1 ({USERNAME}) [{PROTOCOL} - {TRANSPORT}]".into(),
            address: address.into(),
            port: None,
            sni: None,
            host: None,
            path: None,
            security: "inbound_default".into(),
            is_disabled: false,
            ..Default::default()
        }
    }

    #[test]
    fn one_link_per_protocol_inbound_and_host() {
        let inbounds = parse_inbounds(DEFAULT_CORE_CONFIG).unwrap();
        let hosts: Vec<Host> = inbounds
            .iter()
            .map(|i| host(&i.tag, "203.0.113.7"))
            .collect();
        let links = share_links(&user(), &inbounds, &hosts);
        assert_eq!(links.len(), 4);

        let vmess = links[0].strip_prefix("vmess://").unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(vmess).unwrap()).unwrap();
        assert_eq!(doc["add"], "203.0.113.7");
        assert_eq!(doc["port"], 10001);
        assert_eq!(doc["id"], "0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a");
        assert_eq!(doc["net"], "tcp");
        assert_eq!(doc["ps"], "n1 (alice) [vmess - tcp]");

        assert_eq!(
            links[1],
            "vless://7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a@203.0.113.7:10002?security=none&type=tcp&headerType=none&encryption=none#n1%20%28alice%29%20%5Bvless%20-%20tcp%5D"
        );
        assert!(links[2].starts_with("trojan://p%40ss%20word@203.0.113.7:10003?security=none"));
        let ss = links[3].strip_prefix("ss://").unwrap();
        let userinfo = ss.split('@').next().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(userinfo).unwrap(),
            b"aes-128-gcm:sspw"
        );
    }

    #[test]
    fn excluded_inbounds_and_disabled_hosts_give_no_links() {
        let inbounds = parse_inbounds(DEFAULT_CORE_CONFIG).unwrap();
        let mut hosts: Vec<Host> = inbounds.iter().map(|i| host(&i.tag, "::1")).collect();
        hosts[1].is_disabled = true;
        let mut u = user();
        u.excluded_inbounds
            .insert("vmess".into(), vec!["VMess TCP".into()]);
        let links = share_links(&u, &inbounds, &hosts);
        assert_eq!(links.len(), 2);
        assert!(links[0].starts_with("trojan://p%40ss%20word@[::1]:10003"));
    }
}
