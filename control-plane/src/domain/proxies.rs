//! Per-protocol credentials of a user, in Marzban's JSON shape.

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    Vmess,
    Vless,
    Trojan,
    Shadowsocks,
}

impl ProxyProtocol {
    pub const ALL: [ProxyProtocol; 4] = [Self::Vmess, Self::Vless, Self::Trojan, Self::Shadowsocks];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vmess => "vmess",
            Self::Vless => "vless",
            Self::Trojan => "trojan",
            Self::Shadowsocks => "shadowsocks",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct VmessSettings {
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct VlessSettings {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub flow: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct TrojanSettings {
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShadowsocksSettings {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "default_ss_method")]
    pub method: String,
}

impl Default for ShadowsocksSettings {
    fn default() -> Self {
        Self {
            password: None,
            method: default_ss_method(),
        }
    }
}

fn default_ss_method() -> String {
    "chacha20-ietf-poly1305".into()
}

pub const SHADOWSOCKS_METHODS: [&str; 3] = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"];
pub const VLESS_FLOWS: [&str; 2] = ["", "xtls-rprx-vision"];

/// Credentials by protocol. A protocol that is present serves the user on
/// every inbound of that protocol not excluded for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proxies {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmess: Option<VmessSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vless: Option<VlessSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trojan: Option<TrojanSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadowsocks: Option<ShadowsocksSettings>,
}

impl Proxies {
    pub fn protocols(&self) -> Vec<ProxyProtocol> {
        let mut out = Vec::new();
        if self.vmess.is_some() {
            out.push(ProxyProtocol::Vmess);
        }
        if self.vless.is_some() {
            out.push(ProxyProtocol::Vless);
        }
        if self.trojan.is_some() {
            out.push(ProxyProtocol::Trojan);
        }
        if self.shadowsocks.is_some() {
            out.push(ProxyProtocol::Shadowsocks);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.protocols().is_empty()
    }

    /// New ids and passwords for the same protocols and settings (a
    /// subscription revocation kills the old share links with them).
    pub fn regenerate_credentials(&mut self) {
        if let Some(v) = &mut self.vmess {
            v.id = None;
        }
        if let Some(v) = &mut self.vless {
            v.id = None;
        }
        if let Some(t) = &mut self.trojan {
            t.password = None;
        }
        if let Some(s) = &mut self.shadowsocks {
            s.password = None;
        }
        self.fill_missing_credentials();
    }

    /// Fills in every missing credential (Marzban generates them too).
    pub fn fill_missing_credentials(&mut self) {
        if let Some(v) = &mut self.vmess {
            v.id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string());
        }
        if let Some(v) = &mut self.vless {
            v.id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string());
        }
        if let Some(t) = &mut self.trojan {
            t.password.get_or_insert_with(random_password);
        }
        if let Some(s) = &mut self.shadowsocks {
            s.password.get_or_insert_with(random_password);
        }
    }
}

fn random_password() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(22)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_credentials_are_generated_and_kept_ones_are_not() {
        let mut p: Proxies = serde_json::from_str(
            r#"{"vmess": {}, "trojan": {"password": "keep"}, "shadowsocks": {}}"#,
        )
        .unwrap();
        p.fill_missing_credentials();
        assert!(uuid::Uuid::parse_str(p.vmess.as_ref().unwrap().id.as_ref().unwrap()).is_ok());
        assert_eq!(p.trojan.unwrap().password.unwrap(), "keep");
        let ss = p.shadowsocks.unwrap();
        assert_eq!(ss.method, "chacha20-ietf-poly1305");
        assert_eq!(ss.password.unwrap().len(), 22);
        assert!(p.vless.is_none());
    }

    #[test]
    fn fresh_credentials_keep_protocols_and_settings() {
        let old: Proxies = serde_json::from_str(
            r#"{"vless": {"id": "a", "flow": "xtls-rprx-vision"},
                "shadowsocks": {"password": "b", "method": "aes-128-gcm"}}"#,
        )
        .unwrap();
        let mut new = old.clone();
        new.regenerate_credentials();
        let vless = new.vless.unwrap();
        assert_ne!(vless.id.as_deref(), Some("a"));
        assert_eq!(vless.flow, "xtls-rprx-vision");
        let ss = new.shadowsocks.unwrap();
        assert_ne!(ss.password.as_deref(), Some("b"));
        assert_eq!(ss.method, "aes-128-gcm");
        assert!(new.vmess.is_none() && new.trojan.is_none());
    }

    #[test]
    fn unknown_protocol_is_rejected() {
        assert!(serde_json::from_str::<Proxies>(r#"{"wireguard": {}}"#).is_err());
    }
}
