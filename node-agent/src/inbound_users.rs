//! Which users belong in which inbound of the core config, and what changes
//! turn one assignment into another.

use std::collections::BTreeMap;

use nexpoint_proto::agent::UserSpec;
use serde_json::Value;

use crate::core_kind::CoreKind;

/// Every user is given this level; the rendered policy enables per-user
/// traffic counters for it.
pub const USER_LEVEL: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Vmess,
    Vless,
    Trojan,
    Shadowsocks,
}

impl Protocol {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "vmess" => Some(Self::Vmess),
            "vless" => Some(Self::Vless),
            "trojan" => Some(Self::Trojan),
            "shadowsocks" => Some(Self::Shadowsocks),
            _ => None,
        }
    }
}

/// An inbound of the template whose users the agent manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedInbound {
    pub tag: String,
    pub protocol: Protocol,
    /// Shadowsocks 2022 (`2022-blake3-*` method): multi-user by key on Xray.
    pub shadowsocks_2022: bool,
}

impl ManagedInbound {
    /// V2Ray 4.x shadowsocks inbounds hold exactly one user and are not a
    /// UserManager, so their users cannot be changed through the API.
    pub fn users_change_live(&self, kind: CoreKind) -> bool {
        !(self.protocol == Protocol::Shadowsocks && kind == CoreKind::V2Ray)
    }
}

/// A user's secret as one inbound needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Vmess { id: String },
    Vless { id: String, flow: String },
    Trojan { password: String },
    Shadowsocks { method: String, password: String },
    Shadowsocks2022 { key: String },
}

/// Inbound tag -> email -> credential.
pub type ClientsByTag = BTreeMap<String, BTreeMap<String, Credential>>;

/// The managed inbounds of a parsed template, in template order.
pub fn managed_inbounds(template: &Value) -> Vec<ManagedInbound> {
    let Some(inbounds) = template.get("inbounds").and_then(Value::as_array) else {
        return Vec::new();
    };
    inbounds
        .iter()
        .filter_map(|inbound| {
            let tag = inbound.get("tag")?.as_str()?.to_string();
            let protocol = Protocol::parse(inbound.get("protocol")?.as_str()?)?;
            let shadowsocks_2022 = protocol == Protocol::Shadowsocks
                && inbound
                    .pointer("/settings/method")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.starts_with("2022-"));
            Some(ManagedInbound {
                tag,
                protocol,
                shadowsocks_2022,
            })
        })
        .collect()
}

/// The credential `user` needs in `inbound`, if it has an account for that
/// protocol.
pub fn credential_for(inbound: &ManagedInbound, user: &UserSpec) -> Option<Credential> {
    match inbound.protocol {
        Protocol::Vmess => user
            .vmess
            .as_ref()
            .map(|a| Credential::Vmess { id: a.id.clone() }),
        Protocol::Vless => user.vless.as_ref().map(|a| Credential::Vless {
            id: a.id.clone(),
            flow: a.flow.clone(),
        }),
        Protocol::Trojan => user.trojan.as_ref().map(|a| Credential::Trojan {
            password: a.password.clone(),
        }),
        Protocol::Shadowsocks if inbound.shadowsocks_2022 => {
            user.shadowsocks
                .as_ref()
                .map(|a| Credential::Shadowsocks2022 {
                    key: a.password.clone(),
                })
        }
        Protocol::Shadowsocks => user.shadowsocks.as_ref().map(|a| Credential::Shadowsocks {
            method: a.method.clone(),
            password: a.password.clone(),
        }),
    }
}

/// The credential `user` has as a client of `inbound`: none when the user
/// does not name the inbound's tag, or lacks an account for its protocol.
pub fn client_of(inbound: &ManagedInbound, user: &UserSpec) -> Option<Credential> {
    if !user.inbound_tags.iter().any(|t| t == &inbound.tag) {
        return None;
    }
    let credential = credential_for(inbound, user);
    if credential.is_none() {
        tracing::warn!(
            email = %user.email,
            inbound = %inbound.tag,
            "user has no account for the inbound's protocol; not added"
        );
    }
    credential
}

/// Assigns users to the managed inbounds named in their `inbound_tags`. Every
/// managed inbound gets an entry, possibly empty. Users naming an unknown tag
/// or lacking an account for the inbound's protocol are left out of it.
pub fn clients_by_tag(inbounds: &[ManagedInbound], users: &[UserSpec]) -> ClientsByTag {
    let mut out = ClientsByTag::new();
    for inbound in inbounds {
        let clients = out.entry(inbound.tag.clone()).or_default();
        for user in users {
            if let Some(credential) = client_of(inbound, user) {
                clients.insert(user.email.clone(), credential);
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    Add {
        tag: String,
        email: String,
        credential: Credential,
    },
    Remove {
        tag: String,
        email: String,
    },
}

impl UserChange {
    pub fn tag(&self) -> &str {
        match self {
            UserChange::Add { tag, .. } | UserChange::Remove { tag, .. } => tag,
        }
    }
}

/// The live operations that turn `old` into `new`: all removals first (a
/// changed credential is a removal plus an addition), then additions.
pub fn diff(old: &ClientsByTag, new: &ClientsByTag) -> Vec<UserChange> {
    let empty = BTreeMap::new();
    let mut removes = Vec::new();
    let mut adds = Vec::new();
    let tags: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for tag in tags {
        let before = old.get(tag).unwrap_or(&empty);
        let after = new.get(tag).unwrap_or(&empty);
        for (email, credential) in before {
            if after.get(email) != Some(credential) {
                removes.push(UserChange::Remove {
                    tag: tag.clone(),
                    email: email.clone(),
                });
            }
        }
        for (email, credential) in after {
            if before.get(email) != Some(credential) {
                adds.push(UserChange::Add {
                    tag: tag.clone(),
                    email: email.clone(),
                    credential: credential.clone(),
                });
            }
        }
    }
    removes.extend(adds);
    removes
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexpoint_proto::agent::{ShadowsocksAccount, VlessAccount, VmessAccount};
    use serde_json::json;

    fn template() -> Value {
        json!({"inbounds": [
            {"tag": "vm", "protocol": "vmess", "port": 1},
            {"tag": "vl", "protocol": "vless", "port": 2},
            {"tag": "ss", "protocol": "shadowsocks", "port": 3, "settings": {"method": "aes-128-gcm"}},
            {"tag": "ss22", "protocol": "shadowsocks", "port": 4, "settings": {"method": "2022-blake3-aes-128-gcm"}},
            {"tag": "socks", "protocol": "socks", "port": 5},
        ]})
    }

    fn user(email: &str, id: &str, tags: &[&str]) -> UserSpec {
        UserSpec {
            email: email.into(),
            vmess: Some(VmessAccount { id: id.into() }),
            vless: Some(VlessAccount {
                id: id.into(),
                flow: String::new(),
            }),
            shadowsocks: Some(ShadowsocksAccount {
                password: format!("pw-{id}"),
                method: "aes-128-gcm".into(),
            }),
            inbound_tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn finds_managed_inbounds_only() {
        let inbounds = managed_inbounds(&template());
        let tags: Vec<_> = inbounds.iter().map(|i| i.tag.as_str()).collect();
        assert_eq!(tags, ["vm", "vl", "ss", "ss22"]);
        assert!(!inbounds[2].shadowsocks_2022);
        assert!(inbounds[3].shadowsocks_2022);
        assert!(!inbounds[2].users_change_live(CoreKind::V2Ray));
        assert!(inbounds[2].users_change_live(CoreKind::Xray));
        assert!(inbounds[0].users_change_live(CoreKind::V2Ray));
    }

    #[test]
    fn users_go_to_their_tags_only() {
        let inbounds = managed_inbounds(&template());
        let mut trojanless = user("2.b", "id-b", &["vl", "unknown"]);
        trojanless.vless = None;
        let clients = clients_by_tag(
            &inbounds,
            &[user("1.a", "id-a", &["vm", "ss22"]), trojanless],
        );
        assert_eq!(clients["vm"].len(), 1);
        assert!(clients["vl"].is_empty(), "2.b has no vless account");
        assert!(clients["ss"].is_empty());
        assert_eq!(
            clients["ss22"]["1.a"],
            Credential::Shadowsocks2022 {
                key: "pw-id-a".into()
            }
        );
    }

    #[test]
    fn diff_removes_before_adding_and_replaces_changed_credentials() {
        let inbounds = managed_inbounds(&template());
        let old = clients_by_tag(
            &inbounds,
            &[user("1.a", "a", &["vm"]), user("2.b", "b", &["vm"])],
        );
        let new = clients_by_tag(
            &inbounds,
            &[user("1.a", "a2", &["vm"]), user("3.c", "c", &["vm"])],
        );
        let changes = diff(&old, &new);
        assert_eq!(
            changes,
            vec![
                UserChange::Remove {
                    tag: "vm".into(),
                    email: "1.a".into()
                },
                UserChange::Remove {
                    tag: "vm".into(),
                    email: "2.b".into()
                },
                UserChange::Add {
                    tag: "vm".into(),
                    email: "1.a".into(),
                    credential: Credential::Vmess { id: "a2".into() }
                },
                UserChange::Add {
                    tag: "vm".into(),
                    email: "3.c".into(),
                    credential: Credential::Vmess { id: "c".into() }
                },
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
