//! The applied users, each kept as its canonical protobuf encoding.
//!
//! A decoded `UserSpec` costs ~350 bytes of heap in a handful of allocations;
//! its encoding is one allocation of ~70 bytes for a VLESS user. With
//! 100,000 users that difference is most of the agent's memory, so users
//! are decoded only while they are looked at (a diff, a render) and never
//! all at once.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use nexpoint_proto::agent::UserSpec;
use nexpoint_proto::digest::{UserSum, canonical_encoding};
use prost::Message;

/// Users by email, with their digest kept current.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedUsers {
    users: BTreeSet<EncodedUser>,
    sum: UserSum,
}

impl EncodedUsers {
    /// Adds or replaces the user with the same email.
    pub fn insert(&mut self, user: &UserSpec) {
        let user = EncodedUser::new(user);
        self.sum.add(&user.0);
        if let Some(old) = self.users.replace(user) {
            self.sum.sub(&old.0);
        }
    }

    pub fn remove(&mut self, email: &str) {
        if let Some(old) = self.users.take(email) {
            self.sum.sub(&old.0);
        }
    }

    pub fn get(&self, email: &str) -> Option<UserSpec> {
        self.users.get(email).map(EncodedUser::decode)
    }

    /// Decoded one at a time, in email order.
    pub fn iter(&self) -> impl Iterator<Item = UserSpec> + '_ {
        self.users.iter().map(EncodedUser::decode)
    }

    /// The canonical encodings, in email order.
    pub fn encodings(&self) -> impl Iterator<Item = &[u8]> {
        self.users.iter().map(|u| &*u.0)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Hex SHA-256 over the core config template and the users, as
    /// `nexpoint_proto::digest::UserSet` computes it.
    pub fn digest(&self, core_config_json: &str) -> String {
        self.sum.digest(core_config_json)
    }

    /// The users that differ between `old` and `self` (added, removed or
    /// changed), as they are in `old` and as they are here. Users whose
    /// encodings are equal are skipped without being decoded.
    pub fn changed_since(&self, old: &Self) -> (Vec<UserSpec>, Vec<UserSpec>) {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut olds = old.users.iter().peekable();
        let mut news = self.users.iter().peekable();
        loop {
            let order = match (olds.peek(), news.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(o), Some(n)) => o.email().cmp(n.email()),
            };
            match order {
                Ordering::Less => before.extend(olds.next().map(EncodedUser::decode)),
                Ordering::Greater => after.extend(news.next().map(EncodedUser::decode)),
                Ordering::Equal => {
                    let (o, n) = (olds.next().expect("peeked"), news.next().expect("peeked"));
                    if o.0 != n.0 {
                        before.push(o.decode());
                        after.push(n.decode());
                    }
                }
            }
        }
        (before, after)
    }
}

impl FromIterator<UserSpec> for EncodedUsers {
    /// Built in bulk (sorted once, then the set filled in order, which
    /// packs its nodes); a repeated email keeps its last user, as inserting
    /// one by one would.
    fn from_iter<I: IntoIterator<Item = UserSpec>>(iter: I) -> Self {
        let mut users: Vec<EncodedUser> = iter.into_iter().map(|u| EncodedUser::new(&u)).collect();
        users.sort(); // Stable: repeats stay in arrival order.
        users.reverse();
        users.dedup_by(|a, b| a.email() == b.email());
        let mut sum = UserSum::default();
        for user in &users {
            sum.add(&user.0);
        }
        Self {
            users: users.into_iter().collect(),
            sum,
        }
    }
}

/// One user's canonical encoding, ordered and looked up by its email (the
/// set's key); equal only when the whole encoding is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EncodedUser(Box<[u8]>);

/// Protobuf key of `UserSpec.email`: field 1, length-delimited.
const EMAIL_KEY: u8 = 1 << 3 | 2;

impl EncodedUser {
    fn new(user: &UserSpec) -> Self {
        Self(canonical_encoding(user).into_boxed_slice())
    }

    fn decode(&self) -> UserSpec {
        UserSpec::decode(&*self.0).expect("encoded from a UserSpec")
    }

    /// Fields are encoded in field order, so a non-empty email comes first;
    /// an empty one is not encoded at all.
    fn email(&self) -> &str {
        let Some((&EMAIL_KEY, mut rest)) = self.0.split_first() else {
            return "";
        };
        let len = prost::encoding::decode_varint(&mut rest).expect("encoded from a UserSpec");
        let email = &rest[..usize::try_from(len).expect("fits in memory")];
        std::str::from_utf8(email).expect("encoded from a String")
    }
}

impl Ord for EncodedUser {
    fn cmp(&self, other: &Self) -> Ordering {
        self.email().cmp(other.email())
    }
}

impl PartialOrd for EncodedUser {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Borrow<str> for EncodedUser {
    fn borrow(&self) -> &str {
        self.email()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexpoint_proto::agent::{VlessAccount, VmessAccount};
    use nexpoint_proto::digest::state_digest;

    fn user(email: &str, id: &str, tags: &[&str]) -> UserSpec {
        UserSpec {
            email: email.into(),
            vmess: Some(VmessAccount { id: id.into() }),
            inbound_tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn keyed_by_email_in_email_order() {
        let mut users: EncodedUsers = [user("2.b", "b", &["x"]), user("1.a", "a", &["x"])]
            .into_iter()
            .collect();
        users.insert(&user("3.c", "c", &["x"]));
        users.insert(&user("1.a", "a2", &["x"]));
        users.remove("2.b");
        users.remove("missing");
        let emails: Vec<String> = users.iter().map(|u| u.email).collect();
        assert_eq!(emails, ["1.a", "3.c"]);
        assert_eq!(users.get("1.a").unwrap().vmess.unwrap().id, "a2");
        assert_eq!(users.get("2.b"), None);
        assert_eq!(users.len(), 2);
    }

    #[test]
    fn an_empty_email_is_a_key_like_any_other() {
        let mut users = EncodedUsers::default();
        users.insert(&user("", "a", &[]));
        users.insert(&user("", "b", &[]));
        assert_eq!(users.len(), 1);
        assert_eq!(users.get("").unwrap().vmess.unwrap().id, "b");
    }

    #[test]
    fn digest_matches_the_shared_one_however_built() {
        let listed = [
            user("1.a", "a", &["y", "x", "x"]),
            user("2.b", "b", &["y"]),
            user("1.a", "a2", &["x"]),
        ];
        let collected: EncodedUsers = listed.iter().cloned().collect();
        let mut inserted = EncodedUsers::default();
        for u in &listed {
            inserted.insert(u);
        }
        let expected = state_digest("{}", &listed[1..]);
        assert_eq!(collected.digest("{}"), expected);
        assert_eq!(inserted.digest("{}"), expected);
        assert_eq!(collected, inserted);
        assert_eq!(
            collected.get("1.a").unwrap().vmess.unwrap().id,
            "a2",
            "the last of a repeated email wins"
        );
    }

    #[test]
    fn changed_since_lists_only_what_differs() {
        let old: EncodedUsers = [
            user("1.a", "a", &["x"]),
            user("2.b", "b", &["x"]),
            user("4.d", "d", &["x"]),
        ]
        .into_iter()
        .collect();
        let mut vless = user("4.d", "d", &["x"]);
        vless.vless = Some(VlessAccount {
            id: "d".into(),
            flow: String::new(),
        });
        let new: EncodedUsers = [
            user("1.a", "a", &["x"]),
            user("3.c", "c", &["x"]),
            vless.clone(),
        ]
        .into_iter()
        .collect();
        let (before, after) = new.changed_since(&old);
        assert_eq!(before, [user("2.b", "b", &["x"]), user("4.d", "d", &["x"])]);
        assert_eq!(after, [user("3.c", "c", &["x"]), vless]);
        assert_eq!(new.changed_since(&new), (Vec::new(), Vec::new()));
    }
}
