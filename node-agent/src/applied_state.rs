//! What the agent has applied: the revision, the core config template and the
//! users. Persisted (atomically) after every successful apply, so the agent
//! restores its core after a restart without any control plane.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use nexpoint_proto::agent::{Snapshot, UserSpec};
use nexpoint_proto::digest::state_digest;
use prost::Message;

use crate::atomic_file::{PRIVATE, write_atomic};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedState {
    pub revision: u64,
    pub core_config_json: String,
    /// By email.
    pub users: BTreeMap<String, UserSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("applied state {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("applied state {path} is corrupt: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: prost::DecodeError,
    },
}

impl AppliedState {
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Self {
            revision: snapshot.revision,
            core_config_json: snapshot.core_config_json,
            users: snapshot
                .users
                .into_iter()
                .map(|u| (u.email.clone(), u))
                .collect(),
        }
    }

    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            revision: self.revision,
            core_config_json: self.core_config_json.clone(),
            users: self.users.values().cloned().collect(),
        }
    }

    pub fn user_list(&self) -> Vec<UserSpec> {
        self.users.values().cloned().collect()
    }

    pub fn digest(&self) -> String {
        state_digest(&self.core_config_json, self.users.values())
    }

    /// The state after a change set: upserts replace by email, then removals.
    pub fn with_changes(
        &self,
        revision: u64,
        upserts: Vec<UserSpec>,
        removed_emails: &[String],
    ) -> Self {
        let mut next = self.clone();
        next.revision = revision;
        for user in upserts {
            next.users.insert(user.email.clone(), user);
        }
        for email in removed_emails {
            next.users.remove(email);
        }
        next
    }

    pub fn load(path: &Path) -> Result<Option<Self>, StateFileError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateFileError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let snapshot =
            Snapshot::decode(bytes.as_slice()).map_err(|source| StateFileError::Corrupt {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Some(Self::from_snapshot(snapshot)))
    }

    pub fn save(&self, path: &Path) -> Result<(), StateFileError> {
        write_atomic(path, &self.to_snapshot().encode_to_vec(), PRIVATE).map_err(|source| {
            StateFileError::Io {
                path: path.display().to_string(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexpoint_proto::agent::VmessAccount;

    fn user(email: &str, id: &str) -> UserSpec {
        UserSpec {
            email: email.into(),
            vmess: Some(VmessAccount { id: id.into() }),
            inbound_tags: vec!["vm".into()],
            ..Default::default()
        }
    }

    #[test]
    fn digest_matches_the_shared_function_in_any_order() {
        let state = AppliedState::from_snapshot(Snapshot {
            revision: 3,
            core_config_json: "{}".into(),
            users: vec![user("2.b", "b"), user("1.a", "a")],
        });
        assert_eq!(
            state.digest(),
            state_digest("{}", &[user("1.a", "a"), user("2.b", "b")])
        );
    }

    #[test]
    fn changes_upsert_then_remove() {
        let state = AppliedState::from_snapshot(Snapshot {
            revision: 1,
            core_config_json: "{}".into(),
            users: vec![user("1.a", "a"), user("2.b", "b")],
        });
        let next = state.with_changes(
            2,
            vec![user("1.a", "a2"), user("3.c", "c")],
            &["2.b".into()],
        );
        assert_eq!(next.revision, 2);
        assert_eq!(next.users.keys().collect::<Vec<_>>(), ["1.a", "3.c"]);
        assert_eq!(next.users["1.a"].vmess.as_ref().unwrap().id, "a2");
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("applied");
        assert_eq!(AppliedState::load(&path).unwrap(), None);
        let state = AppliedState::from_snapshot(Snapshot {
            revision: 9,
            core_config_json: r#"{"inbounds": []}"#.into(),
            users: vec![user("1.a", "a")],
        });
        state.save(&path).unwrap();
        assert_eq!(AppliedState::load(&path).unwrap(), Some(state));
    }
}
