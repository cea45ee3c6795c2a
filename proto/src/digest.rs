//! A digest of the desired state a node must contain, kept up to date change
//! by change.
//!
//! The control plane and the agent both compute it over the same inputs; when
//! the agent's digest differs from the control plane's for the same revision,
//! the control plane sends a full snapshot instead of a change set.
//!
//! The users' part is a multiset hash: the sum, modulo 2^256, of each user's
//! SHA-256 over its canonical encoding. Adding, replacing or removing one
//! user updates it in constant time, so a node with 100,000 users pays for
//! the users that changed, not for all of them, on every change and every
//! health check. Emails are unique keys, so no user is ever summed twice.

use std::collections::BTreeMap;
use std::collections::btree_map;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::agent::UserSpec;

/// Users by email, with their digest kept current.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserSet {
    users: BTreeMap<String, UserSpec>,
    sum: UserSum,
}

impl UserSet {
    /// Adds or replaces the user with the same email; returns the old one.
    pub fn insert(&mut self, user: UserSpec) -> Option<UserSpec> {
        self.sum.add(&canonical_encoding(&user));
        let old = self.users.insert(user.email.clone(), user);
        if let Some(old) = &old {
            self.sum.sub(&canonical_encoding(old));
        }
        old
    }

    pub fn remove(&mut self, email: &str) -> Option<UserSpec> {
        let old = self.users.remove(email)?;
        self.sum.sub(&canonical_encoding(&old));
        Some(old)
    }

    pub fn get(&self, email: &str) -> Option<&UserSpec> {
        self.users.get(email)
    }

    pub fn contains(&self, email: &str) -> bool {
        self.users.contains_key(email)
    }

    /// In email order.
    pub fn values(&self) -> btree_map::Values<'_, String, UserSpec> {
        self.users.values()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Hex SHA-256 over the core config template and the users' sum.
    pub fn digest(&self, core_config_json: &str) -> String {
        self.sum.digest(core_config_json)
    }
}

/// The users' part of the digest on its own, for a holder that keeps its
/// users in another form than [`UserSet`] (the agent keeps them encoded).
/// Users enter and leave it as their [`canonical_encoding`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserSum([u64; 4]);

impl UserSum {
    pub fn add(&mut self, canonical_user: &[u8]) {
        add(&mut self.0, &user_hash(canonical_user));
    }

    pub fn sub(&mut self, canonical_user: &[u8]) {
        sub(&mut self.0, &user_hash(canonical_user));
    }

    /// Hex SHA-256 over the core config template and the users' sum.
    pub fn digest(&self, core_config_json: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update((core_config_json.len() as u64).to_be_bytes());
        hasher.update(core_config_json.as_bytes());
        for limb in self.0 {
            hasher.update(limb.to_be_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

impl FromIterator<UserSpec> for UserSet {
    fn from_iter<I: IntoIterator<Item = UserSpec>>(iter: I) -> Self {
        let mut set = Self::default();
        for user in iter {
            set.insert(user);
        }
        set
    }
}

impl IntoIterator for UserSet {
    type Item = UserSpec;
    type IntoIter = btree_map::IntoValues<String, UserSpec>;

    fn into_iter(self) -> Self::IntoIter {
        self.users.into_values()
    }
}

/// The digest of a template and users given in any order.
pub fn state_digest<'a>(
    core_config_json: &str,
    users: impl IntoIterator<Item = &'a UserSpec>,
) -> String {
    users
        .into_iter()
        .cloned()
        .collect::<UserSet>()
        .digest(core_config_json)
}

/// The user's protobuf encoding with its inbound tags sorted and without
/// repeats. Protobuf encoding of a message without maps is deterministic,
/// so both sides produce the same bytes.
pub fn canonical_encoding(user: &UserSpec) -> Vec<u8> {
    if user.inbound_tags.is_sorted_by(|a, b| a < b) {
        user.encode_to_vec()
    } else {
        let mut canonical = user.clone();
        canonical.inbound_tags.sort();
        canonical.inbound_tags.dedup();
        canonical.encode_to_vec()
    }
}

/// SHA-256 of a user's canonical encoding, as four limbs.
fn user_hash(canonical_user: &[u8]) -> [u64; 4] {
    let hash = Sha256::digest(canonical_user);
    std::array::from_fn(|i| u64::from_be_bytes(hash[i * 8..i * 8 + 8].try_into().expect("8 bytes")))
}

/// `sum += value` modulo 2^256 (limbs most significant first).
fn add(sum: &mut [u64; 4], value: &[u64; 4]) {
    let mut carry = false;
    for i in (0..4).rev() {
        let (s, c1) = sum[i].overflowing_add(value[i]);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        sum[i] = s;
        carry = c1 || c2;
    }
}

/// `sum -= value` modulo 2^256.
fn sub(sum: &mut [u64; 4], value: &[u64; 4]) {
    let mut borrow = false;
    for i in (0..4).rev() {
        let (d, b1) = sum[i].overflowing_sub(value[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        sum[i] = d;
        borrow = b1 || b2;
    }
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
        let b = [user("2.b", &["y"]), user("1.a", &["y", "x", "x"])];
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
        let mut changed = user("1.a", &["x"]);
        changed.vmess = Some(VmessAccount { id: "other".into() });
        assert_ne!(d, state_digest("{}", &[changed]));
    }

    #[test]
    fn changes_kept_incrementally_match_a_digest_from_scratch() {
        let mut set: UserSet = (0..200).map(|i| user(&format!("{i}.u"), &["x"])).collect();
        for i in (0..200).step_by(3) {
            set.remove(&format!("{i}.u"));
        }
        for i in (1..200).step_by(7) {
            assert!(set.insert(user(&format!("{i}.u"), &["y", "x"])).is_some() || i % 3 == 0);
        }
        set.insert(user("new", &["z"]));
        assert!(set.remove("missing").is_none());
        let scratch: Vec<UserSpec> = set.values().cloned().collect();
        assert_eq!(set.digest("{}"), state_digest("{}", &scratch));
        // Everything removed: the sum is back to zero, as for no users.
        let emails: Vec<String> = set.values().map(|u| u.email.clone()).collect();
        for email in emails {
            set.remove(&email);
        }
        assert_eq!(set.digest("{}"), state_digest("{}", &[]));
    }

    #[test]
    fn the_sum_wraps_around_both_ways() {
        let mut sum = [u64::MAX; 4];
        add(&mut sum, &[0, 0, 0, 1]);
        assert_eq!(sum, [0; 4]);
        sub(&mut sum, &[0, 0, 0, 1]);
        assert_eq!(sum, [u64::MAX; 4]);
        let mut sum = [0, 0, 1, u64::MAX];
        add(&mut sum, &[0, 0, 0, 1]);
        assert_eq!(sum, [0, 0, 2, 0]);
    }
}
