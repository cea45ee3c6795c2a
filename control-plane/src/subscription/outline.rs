//! The `outline` format: one Shadowsocks access key as Outline's JSON,
//! `{"server", "server_port", "password", "method"}`.

use serde::Serialize;

use super::endpoints::{Credentials, Endpoint};

/// The ciphers Outline clients speak.
const OUTLINE_METHODS: [&str; 4] = [
    "chacha20-ietf-poly1305",
    "aes-128-gcm",
    "aes-192-gcm",
    "aes-256-gcm",
];

#[derive(Serialize)]
struct AccessKey<'a> {
    server: &'a str,
    server_port: u16,
    password: &'a str,
    method: &'a str,
}

/// Xray/V2Ray method names in their IETF spelling, the one Outline knows.
fn method(method: &str) -> &str {
    match method {
        "chacha20-poly1305" => "chacha20-ietf-poly1305",
        "xchacha20-poly1305" => "xchacha20-ietf-poly1305",
        other => other,
    }
}

/// The access key of the first Shadowsocks endpoint, `None` without one.
///
/// Only raw Shadowsocks counts (TCP, no TLS, no HTTP header): a
/// Shadowsocks client cannot speak anything else. Among those, the first
/// whose cipher Outline supports wins; otherwise the first (other
/// Shadowsocks clients, e.g. shadowsocks-rust, also know the 2022 ciphers).
pub fn render(endpoints: &[Endpoint]) -> Option<String> {
    let raw: Vec<(&Endpoint, &str, &str)> = endpoints
        .iter()
        .filter(|e| (e.network.is_empty() || e.network == "tcp") && !e.tls())
        .filter(|e| e.header_type != "http")
        .filter_map(|e| match &e.credentials {
            Credentials::Shadowsocks {
                method: m,
                password,
            } => Some((e, method(m), password.as_str())),
            _ => None,
        })
        .collect();
    let (e, method, password) = raw
        .iter()
        .find(|(_, m, _)| OUTLINE_METHODS.contains(m))
        .or_else(|| raw.first())?;
    let server = e
        .address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(&e.address);
    let key = AccessKey {
        server,
        server_port: e.port,
        password,
        method,
    };
    Some(serde_json::to_string_pretty(&key).expect("an access key always serializes"))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn ep(remark: &str, credentials: Credentials) -> Endpoint {
        Endpoint::new(remark, "203.0.113.7", 8388, credentials)
    }

    fn ss(method: &str, password: &str) -> Credentials {
        Credentials::Shadowsocks {
            method: method.into(),
            password: password.into(),
        }
    }

    fn key(endpoints: &[Endpoint]) -> Option<Value> {
        render(endpoints).map(|s| serde_json::from_str(&s).unwrap())
    }

    #[test]
    fn the_first_shadowsocks_endpoint() {
        let vmess = ep(
            "vm",
            Credentials::Vmess {
                id: "0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a".into(),
            },
        );
        let mut second = ep("b", ss("aes-256-gcm", "two"));
        second.port = 9000;
        assert_eq!(
            key(&[vmess, ep("a", ss("aes-128-gcm", "one")), second]),
            Some(json!({"server": "203.0.113.7", "server_port": 8388,
                        "password": "one", "method": "aes-128-gcm"}))
        );
    }

    #[test]
    fn none_without_shadowsocks() {
        let trojan = ep(
            "t",
            Credentials::Trojan {
                password: "pw".into(),
            },
        );
        assert_eq!(render(&[trojan]), None);
        assert_eq!(render(&[]), None);
    }

    #[test]
    fn only_raw_shadowsocks_and_outline_ciphers_first() {
        let mut ws = ep("ws", ss("aes-128-gcm", "ws"));
        ws.network = "ws".into();
        let mut tls = ep("tls", ss("aes-128-gcm", "tls"));
        tls.security = "tls".into();
        let mut header = ep("header", ss("aes-128-gcm", "header"));
        header.header_type = "http".into();
        assert_eq!(render(&[ws.clone(), tls.clone(), header.clone()]), None);

        let ss2022 = ep(
            "2022",
            ss("2022-blake3-aes-128-gcm", "AAECAwQFBgcICQoLDA0ODw=="),
        );
        let mut chacha = ep("chacha", ss("chacha20-poly1305", "chacha"));
        chacha.address = "[2001:db8::1]".into();
        assert_eq!(
            key(&[ws, tls, header, ss2022.clone(), chacha]),
            Some(json!({"server": "2001:db8::1", "server_port": 8388,
                        "password": "chacha", "method": "chacha20-ietf-poly1305"}))
        );
        // With no Outline cipher at all, the first raw one still serves
        // other Shadowsocks clients.
        assert_eq!(key(&[ss2022]).unwrap()["method"], "2022-blake3-aes-128-gcm");
    }
}
