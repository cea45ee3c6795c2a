//! A rendered core config as it is written out: the template's JSON with the
//! agent's additions, and the client lists of the managed inbounds streamed
//! from the applied users while serializing, one user decoded at a time.
//!
//! The output is what serializing the config with its clients as a
//! `serde_json::Value` printed before: maps keep the order of the config's
//! own `Map`, and a client's keys come in the order a `Map` sorts them.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::core_kind::CoreKind;
use crate::encoded_users::EncodedUsers;
use crate::inbound_users::{Credential, ManagedInbound, USER_LEVEL, client_of};

/// A config ready to serialize, borrowing the users it lists.
pub struct RenderedConfig<'a> {
    /// Everything but the streamed clients: each inbound that gets them has
    /// an empty `settings.clients` where they go.
    config: Value,
    client_lists: Vec<ClientList<'a>>,
}

/// The clients of one inbound of the rendered config.
pub struct ClientList<'a> {
    /// Position in the rendered config's `inbounds`.
    pub inbound_index: usize,
    pub inbound: &'a ManagedInbound,
    pub users: &'a EncodedUsers,
    pub kind: CoreKind,
}

impl<'a> RenderedConfig<'a> {
    pub fn new(config: Value, client_lists: Vec<ClientList<'a>>) -> Self {
        Self {
            config,
            client_lists,
        }
    }

    /// The config without its streamed clients.
    #[cfg(test)]
    pub fn skeleton(&self) -> &Value {
        &self.config
    }
}

impl Serialize for RenderedConfig<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let root = self.config.as_object().expect("a config is an object");
        serialize_map_with(serializer, root, "inbounds", |inbounds| Inbounds {
            inbounds,
            client_lists: &self.client_lists,
        })
    }
}

/// Serializes `map`, with the value under `key` replaced by `with(value)`.
fn serialize_map_with<'v, S: Serializer, T: Serialize>(
    serializer: S,
    map: &'v Map<String, Value>,
    key: &str,
    with: impl Fn(&'v Value) -> T,
) -> Result<S::Ok, S::Error> {
    let mut out = serializer.serialize_map(Some(map.len()))?;
    for (k, v) in map {
        if k == key {
            out.serialize_entry(k, &with(v))?;
        } else {
            out.serialize_entry(k, v)?;
        }
    }
    out.end()
}

struct Inbounds<'c, 'a> {
    inbounds: &'c Value,
    client_lists: &'c [ClientList<'a>],
}

impl Serialize for Inbounds<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let inbounds = self.inbounds.as_array().expect("rendered as an array");
        serializer.collect_seq(inbounds.iter().enumerate().map(|(index, inbound)| {
            let clients = self.client_lists.iter().find(|l| l.inbound_index == index);
            InboundWithClients { inbound, clients }
        }))
    }
}

struct InboundWithClients<'c, 'a> {
    inbound: &'c Value,
    clients: Option<&'c ClientList<'a>>,
}

impl Serialize for InboundWithClients<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (Some(clients), Some(inbound)) = (self.clients, self.inbound.as_object()) else {
            return self.inbound.serialize(serializer);
        };
        serialize_map_with(serializer, inbound, "settings", |settings| {
            SettingsWithClients { settings, clients }
        })
    }
}

struct SettingsWithClients<'c, 'a> {
    settings: &'c Value,
    clients: &'c ClientList<'a>,
}

impl Serialize for SettingsWithClients<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let settings = self.settings.as_object().expect("rendered as an object");
        serialize_map_with(serializer, settings, "clients", |_placeholder| self.clients)
    }
}

impl Serialize for ClientList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.users.iter().filter_map(|user| {
            let credential = client_of(self.inbound, &user)?;
            Some(Client {
                email: user.email,
                credential,
                kind: self.kind,
            })
        }))
    }
}

/// One entry of an inbound's `settings.clients`.
struct Client {
    email: String,
    credential: Credential,
    kind: CoreKind,
}

impl Serialize for Client {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let email = self.email.as_str();
        let none = ClientFields {
            alter_id: None,
            email,
            flow: None,
            id: None,
            level: USER_LEVEL,
            method: None,
            password: None,
        };
        let fields = match &self.credential {
            Credential::Vmess { id } => ClientFields {
                // V2Ray 4.x reads alterId; 0 selects VMess AEAD.
                alter_id: (self.kind == CoreKind::V2Ray).then_some(0),
                id: Some(id),
                ..none
            },
            Credential::Vless { id, flow } => ClientFields {
                id: Some(id),
                flow: Some(flow),
                ..none
            },
            Credential::Trojan { password } => ClientFields {
                password: Some(password),
                ..none
            },
            Credential::Shadowsocks { method, password } => ClientFields {
                method: Some(method),
                password: Some(password),
                ..none
            },
            Credential::Shadowsocks2022 { key } => ClientFields {
                password: Some(key),
                ..none
            },
        };
        fields.serialize(serializer)
    }
}

/// A client's keys, in the (sorted) order a `serde_json::Map` keeps them.
#[derive(serde::Serialize)]
struct ClientFields<'c> {
    #[serde(rename = "alterId", skip_serializing_if = "Option::is_none")]
    alter_id: Option<u32>,
    email: &'c str,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<&'c str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'c str>,
    level: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'c str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'c str>,
}
