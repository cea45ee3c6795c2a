//! A digest of the desired state a node must contain.
//!
//! The control plane and the agent both compute it over the same inputs; when
//! the agent's digest differs from the control plane's for the same revision,
//! the control plane sends a full snapshot instead of a change set.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::agent::UserSpec;

/// Hex SHA-256 over the core config template and the users in a canonical
/// order (by email, inbound tags sorted). Protobuf encoding of a message without
/// maps is deterministic, so both sides produce the same bytes.
pub fn state_digest<'a>(
    core_config_json: &str,
    users: impl IntoIterator<Item = &'a UserSpec>,
) -> String {
    let mut canonical: Vec<UserSpec> = users
        .into_iter()
        .map(|u| {
            let mut u = u.clone();
            u.inbound_tags.sort();
            u.inbound_tags.dedup();
            u
        })
        .collect();
    canonical.sort_by(|a, b| a.email.cmp(&b.email));

    let mut hasher = Sha256::new();
    hasher.update((core_config_json.len() as u64).to_be_bytes());
    hasher.update(core_config_json.as_bytes());
    for user in &canonical {
        let bytes = user.encode_to_vec();
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(&bytes);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::VmessAccount;

    fn user(email: &str, tags: &[&str]) -> UserSpec {
        UserSpec {
            email: email.into(),
            vmess: Some(VmessAccount {
                id: format!("id-{email}"),
            }),
            inbound_tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn order_of_users_and_tags_does_not_matter() {
        let a = [user("1.a", &["x", "y"]), user("2.b", &["y"])];
        let b = [user("2.b", &["y"]), user("1.a", &["y", "x"])];
        assert_eq!(state_digest("{}", &a), state_digest("{}", &b));
    }

    #[test]
    fn any_change_changes_the_digest() {
        let base = [user("1.a", &["x"])];
        let d = state_digest("{}", &base);
        assert_ne!(d, state_digest("{ }", &base));
        assert_ne!(d, state_digest("{}", &[user("1.a", &["y"])]));
        assert_ne!(d, state_digest("{}", &[user("1.b", &["x"])]));
        assert_ne!(d, state_digest("{}", &[]));
    }
}
