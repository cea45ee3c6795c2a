//! The desired state of one node: its core config and the users it serves.

use nexpoint_proto::agent::{
    ShadowsocksAccount, TrojanAccount, UserSpec, VlessAccount, VmessAccount,
};

use nexpoint_proto::digest::UserSet;

use std::collections::BTreeMap;

use crate::domain::{Inbound, Proxies, UserStatus, user_email};
use crate::store::{ServedUser, User};

/// The user as the node must hold it, or None when the node must not serve
/// the user (status, or no inbound of this node applies).
pub(crate) fn user_spec(user: &User, inbounds: &[Inbound]) -> Option<UserSpec> {
    spec(
        user.id,
        &user.username,
        user.status,
        &user.proxies,
        &user.excluded_inbounds,
        inbounds,
    )
}

/// [`user_spec`] for a user read for a full snapshot.
pub(crate) fn served_spec(user: &ServedUser, inbounds: &[Inbound]) -> Option<UserSpec> {
    spec(
        user.id,
        &user.username,
        user.status,
        &user.proxies,
        &user.excluded_inbounds,
        inbounds,
    )
}

fn spec(
    id: i64,
    username: &str,
    status: UserStatus,
    p: &Proxies,
    excluded_inbounds: &BTreeMap<String, Vec<String>>,
    inbounds: &[Inbound],
) -> Option<UserSpec> {
    if !status.is_served() {
        return None;
    }
    let protocols = p.protocols();
    let inbound_tags: Vec<String> = inbounds
        .iter()
        .filter(|i| protocols.contains(&i.protocol))
        .filter(|i| {
            excluded_inbounds
                .get(i.protocol.as_str())
                .is_none_or(|ex| !ex.contains(&i.tag))
        })
        .map(|i| i.tag.clone())
        .collect();
    if inbound_tags.is_empty() {
        return None;
    }
    Some(UserSpec {
        email: user_email(id, username),
        vmess: p.vmess.as_ref().map(|v| VmessAccount {
            id: v.id.clone().unwrap_or_default(),
        }),
        vless: p.vless.as_ref().map(|v| VlessAccount {
            id: v.id.clone().unwrap_or_default(),
            flow: v.flow.clone(),
        }),
        trojan: p.trojan.as_ref().map(|t| TrojanAccount {
            password: t.password.clone().unwrap_or_default(),
        }),
        shadowsocks: p.shadowsocks.as_ref().map(|s| ShadowsocksAccount {
            password: s.password.clone().unwrap_or_default(),
            method: s.method.clone(),
        }),
        inbound_tags,
    })
}

/// What the control plane believes the agent holds after the last
/// successful apply.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mirror {
    pub revision: i64,
    pub config_revision: i64,
    pub core_config: String,
    pub users: UserSet,
}

impl Mirror {
    pub fn digest(&self) -> String {
        self.users.digest(&self.core_config)
    }
}
