//! Share links parsed back into what a client needs: vmess:// (v2rayN JSON),
//! vless://, trojan:// and ss:// (SIP002). Parsing is strict about what the
//! subscription spec promises (percent-encoding, no duplicate query keys).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::percent_decode_str;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Vmess,
    Vless,
    Trojan,
    Shadowsocks,
}

/// One share link, normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareLink {
    pub protocol: Protocol,
    pub remark: String,
    pub host: String,
    pub port: u16,
    /// vmess/vless: the UUID; trojan/shadowsocks: the password.
    pub secret: String,
    /// shadowsocks: the cipher; vmess: `scy` (default "auto").
    pub method: Option<String>,
    /// vmess `aid` (always 0 for AEAD).
    pub alter_id: u32,
    /// Transport: tcp, ws, grpc, http, httpupgrade, …
    pub network: String,
    /// none, tls or reality.
    pub security: String,
    /// Every other parameter (vmess JSON keys or the URL query), decoded.
    pub params: BTreeMap<String, String>,
}

impl ShareLink {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Parses any supported link.
    pub fn parse(link: &str) -> Result<Self> {
        let link = link.trim();
        let (scheme, rest) = link
            .split_once("://")
            .with_context(|| format!("not a share link: {link:?}"))?;
        match scheme {
            "vmess" => parse_vmess(rest),
            "vless" => parse_url(Protocol::Vless, rest),
            "trojan" => parse_url(Protocol::Trojan, rest),
            "ss" => parse_ss(rest),
            other => bail!("unsupported share link scheme {other:?}"),
        }
        .with_context(|| format!("parsing {link:?}"))
    }
}

/// The first link of `protocol` in `links`.
pub fn link_of(links: &[ShareLink], protocol: Protocol) -> Result<ShareLink> {
    links
        .iter()
        .find(|l| l.protocol == protocol)
        .cloned()
        .with_context(|| format!("no {protocol:?} link among {links:#?}"))
}

/// Decodes a base64 subscription body ("v2ray" format) into its links.
pub fn decode_subscription(body: &str) -> Result<Vec<String>> {
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD
        .decode(&compact)
        .context("subscription body is not standard padded base64")?;
    let text = String::from_utf8(bytes).context("subscription is not UTF-8")?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn decode_base64_any(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(s) {
            return Ok(bytes);
        }
    }
    bail!("not base64: {s:?}")
}

fn pct(s: &str) -> Result<String> {
    Ok(percent_decode_str(s)
        .decode_utf8()
        .with_context(|| format!("bad percent-encoding in {s:?}"))?
        .into_owned())
}

fn json_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse_vmess(rest: &str) -> Result<ShareLink> {
    let json = decode_base64_any(rest)?;
    let obj: serde_json::Map<String, Value> =
        serde_json::from_slice(&json).context("vmess payload is not a JSON object")?;
    let get = |k: &str| obj.get(k).map(json_string).unwrap_or_default();
    ensure!(
        get("v") == "2",
        "vmess link version v={:?}, want \"2\"",
        get("v")
    );
    let port: u16 = get("port").parse().context("vmess port")?;
    let aid = get("aid");
    let alter_id = if aid.is_empty() { 0 } else { aid.parse()? };
    let tls = get("tls");
    let net = get("net");
    let scy = get("scy");
    Ok(ShareLink {
        protocol: Protocol::Vmess,
        remark: get("ps"),
        host: get("add"),
        port,
        secret: get("id"),
        method: Some(if scy.is_empty() { "auto".into() } else { scy }),
        alter_id,
        network: if net.is_empty() { "tcp".into() } else { net },
        security: match tls.as_str() {
            "" | "none" => "none".into(),
            other => other.into(),
        },
        params: obj
            .iter()
            .map(|(k, v)| (k.clone(), json_string(v)))
            .collect(),
    })
}

/// Splits `host:port` where host may be a bracketed IPv6 address.
fn split_host_port(s: &str) -> Result<(String, u16)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, p) = v6.split_once("]:").context("bad [IPv6]:port")?;
        (h.to_string(), p)
    } else {
        let (h, p) = s.rsplit_once(':').context("missing :port")?;
        (h.to_string(), p)
    };
    ensure!(!host.is_empty(), "empty host");
    Ok((
        host,
        port.parse().with_context(|| format!("bad port {port:?}"))?,
    ))
}

fn split_fragment(s: &str) -> Result<(&str, String)> {
    Ok(match s.split_once('#') {
        Some((a, frag)) => (a, pct(frag)?),
        None => (s, String::new()),
    })
}

fn parse_url(protocol: Protocol, rest: &str) -> Result<ShareLink> {
    let (rest, remark) = split_fragment(rest)?;
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (userinfo, hostport) = authority
        .rsplit_once('@')
        .context("missing credentials@host")?;
    let (host, port) = split_host_port(hostport.trim_end_matches('/'))?;
    let mut params = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = pct(k)?;
        ensure!(
            params.insert(k.clone(), pct(v)?).is_none(),
            "duplicate query key {k:?}"
        );
    }
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    if protocol == Protocol::Vless {
        let enc = get("encryption");
        ensure!(
            enc.is_empty() || enc == "none",
            "vless encryption={enc:?}, want none"
        );
    }
    let network = match get("type") {
        t if t.is_empty() => "tcp".into(),
        t => t,
    };
    let security = match get("security") {
        s if s.is_empty() => "none".into(),
        s => s,
    };
    Ok(ShareLink {
        protocol,
        remark,
        host,
        port,
        secret: pct(userinfo)?,
        method: None,
        alter_id: 0,
        network,
        security,
        params,
    })
}

fn parse_ss(rest: &str) -> Result<ShareLink> {
    let (rest, remark) = split_fragment(rest)?;
    let rest = rest.split_once('?').map(|(a, _)| a).unwrap_or(rest);
    let (method, password, hostport) = match rest.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            // SIP002: base64(method:password) for AEAD ciphers, or
            // percent-encoded method:password for 2022 ciphers.
            let plain = pct(userinfo)?;
            let decoded = if plain.contains(':') {
                plain
            } else {
                String::from_utf8(decode_base64_any(&plain)?).context("ss userinfo")?
            };
            let (m, p) = decoded
                .split_once(':')
                .context("ss userinfo is not method:password")?;
            (m.to_string(), p.to_string(), hostport.to_string())
        }
        None => {
            // Legacy: base64(method:password@host:port).
            let decoded = String::from_utf8(decode_base64_any(rest)?)?;
            let (cred, hostport) = decoded.rsplit_once('@').context("legacy ss link")?;
            let (m, p) = cred.split_once(':').context("legacy ss credentials")?;
            (m.to_string(), p.to_string(), hostport.to_string())
        }
    };
    let (host, port) = split_host_port(hostport.trim_end_matches('/'))?;
    Ok(ShareLink {
        protocol: Protocol::Shadowsocks,
        remark,
        host,
        port,
        secret: password,
        method: Some(method),
        alter_id: 0,
        network: "tcp".into(),
        security: "none".into(),
        params: BTreeMap::new(),
    })
}

/// Builds links the way the subscription spec describes them; used to test
/// the parser and the client builder against the real core.
pub mod build {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

    fn enc(s: &str) -> String {
        utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
    }

    pub fn vmess(remark: &str, host: &str, port: u16, id: &str) -> String {
        let json = serde_json::json!({
            "v": "2", "ps": remark, "add": host, "port": port.to_string(), "id": id,
            "aid": "0", "scy": "auto", "net": "tcp", "type": "none", "host": "",
            "path": "", "tls": "", "sni": "", "alpn": "", "fp": "",
        });
        format!("vmess://{}", STANDARD.encode(json.to_string()))
    }

    pub fn vless(remark: &str, host: &str, port: u16, id: &str) -> String {
        format!(
            "vless://{id}@{host}:{port}?security=none&encryption=none&type=tcp&headerType=none#{}",
            enc(remark)
        )
    }

    pub fn trojan(remark: &str, host: &str, port: u16, password: &str) -> String {
        format!(
            "trojan://{}@{host}:{port}?security=none&type=tcp&headerType=none#{}",
            enc(password),
            enc(remark)
        )
    }

    pub fn shadowsocks(
        remark: &str,
        host: &str,
        port: u16,
        method: &str,
        password: &str,
    ) -> String {
        format!(
            "ss://{}@{host}:{port}#{}",
            STANDARD.encode(format!("{method}:{password}")),
            enc(remark)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmess_round_trip() {
        let l = ShareLink::parse(&build::vmess(
            "me 🚀",
            "127.0.0.1",
            1234,
            "b831381d-6324-4d53-ad4f-8cda48b30811",
        ))
        .unwrap();
        assert_eq!(l.protocol, Protocol::Vmess);
        assert_eq!((l.host.as_str(), l.port), ("127.0.0.1", 1234));
        assert_eq!(l.secret, "b831381d-6324-4d53-ad4f-8cda48b30811");
        assert_eq!(l.remark, "me 🚀");
        assert_eq!((l.network.as_str(), l.security.as_str()), ("tcp", "none"));
    }

    #[test]
    fn vmess_numeric_port_and_unpadded_base64() {
        let json = r#"{"v":"2","ps":"x","add":"h","port":443,"id":"u","aid":0,"net":"ws","path":"/p","tls":"tls","sni":"s"}"#;
        let l = ShareLink::parse(&format!("vmess://{}", URL_SAFE_NO_PAD.encode(json))).unwrap();
        assert_eq!(l.port, 443);
        assert_eq!(l.network, "ws");
        assert_eq!(l.security, "tls");
        assert_eq!(l.param("path"), Some("/p"));
    }

    #[test]
    fn vless_trojan_with_ipv6_and_encoding() {
        let l = ShareLink::parse(
            "vless://u-u-i-d@[::1]:8443?security=tls&encryption=none&type=ws&path=%2Fws%3Fed%3D2048&sni=a.b#my%20remark",
        )
        .unwrap();
        assert_eq!(l.host, "::1");
        assert_eq!(l.port, 8443);
        assert_eq!(l.param("path"), Some("/ws?ed=2048"));
        assert_eq!(l.remark, "my remark");

        let t = ShareLink::parse(&build::trojan("r", "10.0.0.1", 443, "p@ss:w/rd")).unwrap();
        assert_eq!(t.secret, "p@ss:w/rd");
        assert_eq!(t.protocol, Protocol::Trojan);
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(ShareLink::parse("vless://u@h:1?type=tcp&type=ws#r").is_err());
    }

    #[test]
    fn shadowsocks_forms() {
        let l = ShareLink::parse(&build::shadowsocks(
            "s",
            "h",
            8388,
            "chacha20-ietf-poly1305",
            "pw:1",
        ))
        .unwrap();
        assert_eq!(l.method.as_deref(), Some("chacha20-ietf-poly1305"));
        assert_eq!(l.secret, "pw:1");
        let unpadded = format!(
            "ss://{}@h:1#x",
            URL_SAFE_NO_PAD.encode("aes-128-gcm:secret")
        );
        assert_eq!(ShareLink::parse(&unpadded).unwrap().secret, "secret");
        let ss2022 = "ss://2022-blake3-aes-128-gcm:YWJj%3D%3D@h:1#x";
        let l = ShareLink::parse(ss2022).unwrap();
        assert_eq!(l.method.as_deref(), Some("2022-blake3-aes-128-gcm"));
        assert_eq!(l.secret, "YWJj==");
    }

    #[test]
    fn subscription_body() {
        let body = STANDARD.encode("vmess://a\nvless://b\n");
        assert_eq!(
            decode_subscription(&body).unwrap(),
            vec!["vmess://a", "vless://b"]
        );
    }
}
