//! The inbounds a core config template offers users, read from its JSON.

use serde::Serialize;
use serde_json::Value;

use super::ProxyProtocol;

/// An inbound users can be placed in, with what a share link needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inbound {
    pub tag: String,
    pub protocol: ProxyProtocol,
    pub port: u16,
    /// Transport: tcp, ws, grpc, ...
    pub network: String,
    /// "tls", "reality" or "none".
    pub tls: String,
    #[serde(skip)]
    pub path: String,
    #[serde(skip)]
    pub host: String,
    #[serde(skip)]
    pub sni: String,
    #[serde(skip)]
    pub header_type: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("core config is not valid JSON: {0}")]
    Json(String),
    #[error("core config must be a JSON object with an \"inbounds\" array")]
    Shape,
    #[error("inbound #{0} has no tag")]
    MissingTag(usize),
    #[error("inbound {0:?} has no valid port")]
    BadPort(String),
    #[error("inbound tag {0:?} is used twice")]
    DuplicateTag(String),
}

/// The user-carrying inbounds of a core config template (vmess, vless,
/// trojan, shadowsocks); other inbounds (e.g. dokodemo-door) are skipped.
pub fn parse_inbounds(core_config_json: &str) -> Result<Vec<Inbound>, InboundError> {
    let config: Value =
        serde_json::from_str(core_config_json).map_err(|e| InboundError::Json(e.to_string()))?;
    let list = config
        .get("inbounds")
        .and_then(Value::as_array)
        .ok_or(InboundError::Shape)?;
    let mut out: Vec<Inbound> = Vec::new();
    for (i, inbound) in list.iter().enumerate() {
        let Some(protocol) = inbound
            .get("protocol")
            .and_then(Value::as_str)
            .and_then(ProxyProtocol::parse)
        else {
            continue;
        };
        let tag = inbound
            .get("tag")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or(InboundError::MissingTag(i))?
            .to_owned();
        if out.iter().any(|o| o.tag == tag) {
            return Err(InboundError::DuplicateTag(tag));
        }
        let port = inbound
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| InboundError::BadPort(tag.clone()))?;
        let stream = inbound
            .get("streamSettings")
            .cloned()
            .unwrap_or(Value::Null);
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
        let network = stream
            .get("network")
            .and_then(Value::as_str)
            .unwrap_or("tcp")
            .to_owned();
        let tls = match stream.get("security").and_then(Value::as_str) {
            Some("tls") => "tls",
            Some("reality") => "reality",
            _ => "none",
        }
        .to_owned();
        let ws = stream.get("wsSettings");
        let tls_settings = stream.get("tlsSettings");
        let header_type = text(
            stream
                .get("tcpSettings")
                .and_then(|t| t.get("header"))
                .and_then(|h| h.get("type")),
        );
        out.push(Inbound {
            tag,
            protocol,
            port,
            path: text(ws.and_then(|w| w.get("path"))),
            host: text(
                ws.and_then(|w| w.get("headers"))
                    .and_then(|h| h.get("Host")),
            ),
            sni: text(tls_settings.and_then(|t| t.get("serverName"))),
            header_type: if header_type.is_empty() {
                "none".into()
            } else {
                header_type
            },
            network,
            tls,
        });
    }
    Ok(out)
}

/// The template used when an operator gives none: one TCP inbound per
/// protocol on unprivileged ports.
pub const DEFAULT_CORE_CONFIG: &str = r#"{
  "log": {"loglevel": "warning"},
  "inbounds": [
    {"tag": "VMess TCP", "listen": "0.0.0.0", "port": 10001, "protocol": "vmess", "settings": {"clients": []}, "streamSettings": {"network": "tcp"}},
    {"tag": "VLESS TCP", "listen": "0.0.0.0", "port": 10002, "protocol": "vless", "settings": {"clients": [], "decryption": "none"}, "streamSettings": {"network": "tcp"}},
    {"tag": "Trojan TCP", "listen": "0.0.0.0", "port": 10003, "protocol": "trojan", "settings": {"clients": []}, "streamSettings": {"network": "tcp"}},
    {"tag": "Shadowsocks TCP", "listen": "0.0.0.0", "port": 10004, "protocol": "shadowsocks", "settings": {"clients": [], "network": "tcp,udp"}}
  ],
  "outbounds": [
    {"protocol": "freedom", "tag": "DIRECT"},
    {"protocol": "blackhole", "tag": "BLOCK"}
  ],
  "routing": {"rules": []}
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_offers_one_inbound_per_protocol() {
        let inbounds = parse_inbounds(DEFAULT_CORE_CONFIG).unwrap();
        let protocols: Vec<_> = inbounds.iter().map(|i| i.protocol).collect();
        assert_eq!(protocols, ProxyProtocol::ALL.to_vec());
        assert!(
            inbounds
                .iter()
                .all(|i| i.network == "tcp" && i.tls == "none")
        );
    }

    #[test]
    fn reads_transport_and_tls() {
        let json = r#"{"inbounds": [
            {"tag": "api", "protocol": "dokodemo-door", "port": 1},
            {"tag": "ws", "protocol": "vless", "port": 443, "streamSettings": {
                "network": "ws", "security": "tls",
                "wsSettings": {"path": "/p", "headers": {"Host": "h.example"}},
                "tlsSettings": {"serverName": "s.example"}}}
        ]}"#;
        let inbounds = parse_inbounds(json).unwrap();
        assert_eq!(inbounds.len(), 1);
        let i = &inbounds[0];
        assert_eq!((i.network.as_str(), i.tls.as_str()), ("ws", "tls"));
        assert_eq!(
            (i.path.as_str(), i.host.as_str(), i.sni.as_str()),
            ("/p", "h.example", "s.example")
        );
    }

    #[test]
    fn rejects_bad_templates_with_a_reason() {
        assert!(matches!(parse_inbounds("{"), Err(InboundError::Json(_))));
        assert_eq!(parse_inbounds("[]"), Err(InboundError::Shape));
        assert_eq!(
            parse_inbounds(r#"{"inbounds": [{"protocol": "vmess", "port": 1}]}"#),
            Err(InboundError::MissingTag(0))
        );
        assert_eq!(
            parse_inbounds(r#"{"inbounds": [{"tag": "a", "protocol": "vmess", "port": 0}]}"#),
            Err(InboundError::BadPort("a".into()))
        );
        assert_eq!(
            parse_inbounds(
                r#"{"inbounds": [{"tag": "a", "protocol": "vmess", "port": 1}, {"tag": "a", "protocol": "vless", "port": 2}]}"#
            ),
            Err(InboundError::DuplicateTag("a".into()))
        );
    }
}
