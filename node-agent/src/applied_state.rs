//! What the agent has applied: the revision, the core config template and the
//! users. Persisted so the agent restores its core after a restart without
//! any control plane.
//!
//! On disk: a base snapshot (`applied-state.pb`, replaced atomically) and a
//! log of the change sets applied since (`applied-changes.log`, appended and
//! synced). A change costs what it changed, not a rewrite of 100,000 users;
//! the log is folded into a new base once it outgrows the base. Each record
//! is a big-endian u32 length and a `ChangeSet`; a torn last record (a crash
//! mid-append) is ignored, as the control plane never heard of that change.
//!
//! The base is a protobuf `Snapshot`. [`AppliedState`] encodes and decodes as
//! one itself, a user at a time, so that saving, loading or receiving
//! 100,000 users never holds a second, decoded copy of them.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nexpoint_proto::agent::{ChangeSet, Snapshot, UserSpec};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};

use crate::atomic_file::{PRIVATE, write_atomic_with};
use crate::encoded_users::EncodedUsers;

/// The log is folded into the base once it is larger than this or the base.
const MIN_COMPACTION_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedState {
    pub revision: u64,
    pub core_config_json: String,
    pub users: EncodedUsers,
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

/// `Snapshot` field numbers, for writing and reading it a field at a time.
mod snapshot_field {
    pub const REVISION: u32 = 1;
    pub const CORE_CONFIG_JSON: u32 = 2;
    pub const USERS: u32 = 3;
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StateFileError + '_ {
    move |source| StateFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where the change log of a base snapshot lives.
pub fn change_log_path(base: &Path) -> PathBuf {
    base.with_file_name("applied-changes.log")
}

impl From<Snapshot> for AppliedState {
    fn from(snapshot: Snapshot) -> Self {
        Self {
            revision: snapshot.revision,
            core_config_json: snapshot.core_config_json,
            users: snapshot.users.into_iter().collect(),
        }
    }
}

impl AppliedState {
    pub fn digest(&self) -> String {
        self.users.digest(&self.core_config_json)
    }

    /// Applies a change set in place: upserts replace by email, then
    /// removals.
    pub fn apply(&mut self, revision: u64, upserts: &[UserSpec], removed_emails: &[String]) {
        self.revision = revision;
        for user in upserts {
            self.users.insert(user);
        }
        for email in removed_emails {
            self.users.remove(email);
        }
    }

    /// The state after a change set, leaving this one as it is.
    pub fn with_changes(
        &self,
        revision: u64,
        upserts: &[UserSpec],
        removed_emails: &[String],
    ) -> Self {
        let mut next = self.clone();
        next.apply(revision, upserts, removed_emails);
        next
    }

    /// The users a change set touches, as they are now (those it replaces
    /// or removes).
    pub fn touched_by(&self, changes: &ChangeSet) -> Vec<UserSpec> {
        let mut emails: Vec<&str> = changes
            .upserts
            .iter()
            .map(|u| u.email.as_str())
            .chain(changes.removed_emails.iter().map(String::as_str))
            .collect();
        emails.sort_unstable();
        emails.dedup();
        emails
            .into_iter()
            .filter_map(|email| self.users.get(email))
            .collect()
    }

    /// The base snapshot at `path`, then every logged change after it.
    pub fn load(path: &Path) -> Result<Option<Self>, StateFileError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error(path)(source)),
        };
        let mut state =
            Self::decode(bytes.as_slice()).map_err(|source| StateFileError::Corrupt {
                path: path.display().to_string(),
                source,
            })?;
        drop(bytes);
        let log_path = change_log_path(path);
        let log = match std::fs::read(&log_path) {
            Ok(log) => log,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(io_error(&log_path)(source)),
        };
        state.replay(&log);
        Ok(Some(state))
    }

    fn replay(&mut self, mut log: &[u8]) {
        while log.len() >= 4 {
            let len = u32::from_be_bytes(log[..4].try_into().expect("4 bytes")) as usize;
            let Some(record) = log.get(4..4 + len) else {
                tracing::warn!("applied-state log ends in a torn record; ignored");
                return;
            };
            log = &log[4 + len..];
            let Ok(changes) = ChangeSet::decode(record) else {
                tracing::warn!("applied-state log holds an unreadable record; stopping there");
                return;
            };
            if changes.revision <= self.revision {
                continue; // Already in the base (folded in before a crash).
            }
            if changes.base_revision != self.revision {
                tracing::warn!(
                    applied = self.revision,
                    base = changes.base_revision,
                    "applied-state log skips revisions; stopping there"
                );
                return;
            }
            self.apply(changes.revision, &changes.upserts, &changes.removed_emails);
        }
    }

    /// `revision` and `core_config_json` as a `Snapshot` encodes them.
    fn encode_head(&self, buf: &mut impl BufMut) {
        if self.revision != 0 {
            prost::encoding::uint64::encode(snapshot_field::REVISION, &self.revision, buf);
        }
        if !self.core_config_json.is_empty() {
            prost::encoding::string::encode(
                snapshot_field::CORE_CONFIG_JSON,
                &self.core_config_json,
                buf,
            );
        }
    }

    /// Writes the whole state as the new base and empties the change log.
    pub fn save(&self, path: &Path) -> Result<(), StateFileError> {
        let write = |out: &mut std::io::BufWriter<std::fs::File>| {
            let mut framing = Vec::new();
            self.encode_head(&mut framing);
            out.write_all(&framing)?;
            for user in self.users.encodings() {
                framing.clear();
                encode_user_key_and_len(user, &mut framing);
                out.write_all(&framing)?;
                out.write_all(user)?;
            }
            Ok(())
        };
        write_atomic_with(path, PRIVATE, write).map_err(io_error(path))?;
        // A crash before this leaves records the base already holds; replay
        // skips them by revision.
        let log_path = change_log_path(path);
        match std::fs::remove_file(&log_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(&log_path)(e)),
            _ => Ok(()),
        }
    }

    /// Records `changes`, already applied to this state, durably: appended
    /// to the change log, or the whole state saved when the log has grown
    /// past the base.
    pub fn save_changes(&self, path: &Path, changes: &ChangeSet) -> Result<(), StateFileError> {
        let log_path = change_log_path(path);
        let record = changes.encode_to_vec();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_error(&log_path))?;
        let len = u32::try_from(record.len())
            .map_err(|_| io_error(&log_path)(io::Error::other("change set larger than 4 GiB")))?;
        let mut framed = Vec::with_capacity(4 + record.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&record);
        file.write_all(&framed).map_err(io_error(&log_path))?;
        file.sync_data().map_err(io_error(&log_path))?;
        let log_len = file.metadata().map_err(io_error(&log_path))?.len();
        let base_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if log_len > base_len.max(MIN_COMPACTION_BYTES) {
            self.save(path)?;
        }
        Ok(())
    }
}

/// The start of a `Snapshot.users` entry: its key and length.
fn encode_user_key_and_len(user: &[u8], buf: &mut impl BufMut) {
    prost::encoding::encode_key(snapshot_field::USERS, WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(user.len() as u64, buf);
}

/// A `Snapshot` on the wire, its users kept encoded.
impl Message for AppliedState {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.encode_head(buf);
        for user in self.users.encodings() {
            encode_user_key_and_len(user, buf);
            buf.put_slice(user);
        }
    }

    fn merge_field(
        &mut self,
        field: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        context: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match field {
            snapshot_field::REVISION => {
                prost::encoding::uint64::merge(wire_type, &mut self.revision, buf, context)
            }
            snapshot_field::CORE_CONFIG_JSON => {
                prost::encoding::string::merge(wire_type, &mut self.core_config_json, buf, context)
            }
            snapshot_field::USERS => {
                let mut user = UserSpec::default();
                prost::encoding::message::merge(wire_type, &mut user, buf, context)?;
                self.users.insert(&user);
                Ok(())
            }
            _ => prost::encoding::skip_field(wire_type, field, buf, context),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if self.revision != 0 {
            len += prost::encoding::uint64::encoded_len(snapshot_field::REVISION, &self.revision);
        }
        if !self.core_config_json.is_empty() {
            len += prost::encoding::string::encoded_len(
                snapshot_field::CORE_CONFIG_JSON,
                &self.core_config_json,
            );
        }
        let users: usize = self
            .users
            .encodings()
            .map(|user| {
                prost::encoding::key_len(snapshot_field::USERS)
                    + prost::encoding::encoded_len_varint(user.len() as u64)
                    + user.len()
            })
            .sum();
        len + users
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexpoint_proto::agent::VmessAccount;
    use nexpoint_proto::digest::state_digest;

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
        let state = AppliedState::from(Snapshot {
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
        let state = AppliedState::from(Snapshot {
            revision: 1,
            core_config_json: "{}".into(),
            users: vec![user("1.a", "a"), user("2.b", "b")],
        });
        let next = state.with_changes(2, &[user("1.a", "a2"), user("3.c", "c")], &["2.b".into()]);
        assert_eq!(next.revision, 2);
        let emails: Vec<String> = next.users.iter().map(|u| u.email).collect();
        assert_eq!(emails, ["1.a", "3.c"]);
        assert_eq!(
            next.users.get("1.a").unwrap().vmess.as_ref().unwrap().id,
            "a2"
        );
        assert_eq!(state.users.len(), 2, "the original is untouched");
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("applied");
        assert_eq!(AppliedState::load(&path).unwrap(), None);
        let state = AppliedState::from(Snapshot {
            revision: 9,
            core_config_json: r#"{"inbounds": []}"#.into(),
            users: vec![user("1.a", "a")],
        });
        state.save(&path).unwrap();
        assert_eq!(AppliedState::load(&path).unwrap(), Some(state));
    }

    #[test]
    fn the_base_is_a_snapshot_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("applied-state.pb");
        let mut unsorted = user("2.b", "b");
        unsorted.inbound_tags = vec!["z".into(), "vm".into()];
        let written = Snapshot {
            revision: 4,
            core_config_json: "{}".into(),
            users: vec![unsorted.clone(), user("1.a", "a")],
        };
        // A base as earlier agents wrote it: the snapshot as received.
        std::fs::write(&path, written.encode_to_vec()).unwrap();
        let state = AppliedState::load(&path).unwrap().unwrap();
        assert_eq!(state, AppliedState::from(written.clone()));
        assert_eq!(state.digest(), state_digest("{}", &written.users));

        state.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(state.encode_to_vec(), bytes, "saved as it encodes");
        assert_eq!(state.encoded_len(), bytes.len());
        let saved = Snapshot::decode(bytes.as_slice()).unwrap();
        unsorted.inbound_tags.sort();
        assert_eq!(
            saved,
            Snapshot {
                revision: 4,
                core_config_json: "{}".into(),
                users: vec![user("1.a", "a"), unsorted],
            },
            "users in email order, inbound tags sorted"
        );
    }

    #[test]
    fn a_corrupt_base_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("applied-state.pb");
        let mut bytes = Snapshot {
            revision: 4,
            core_config_json: "{}".into(),
            users: vec![user("1.a", "a")],
        }
        .encode_to_vec();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            AppliedState::load(&path),
            Err(StateFileError::Corrupt { .. })
        ));
    }

    fn changes(base: u64, revision: u64, upserts: Vec<UserSpec>, removed: &[&str]) -> ChangeSet {
        ChangeSet {
            base_revision: base,
            revision,
            upserts,
            removed_emails: removed.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn apply_and_log(state: &mut AppliedState, path: &Path, set: ChangeSet) {
        state.apply(set.revision, &set.upserts, &set.removed_emails);
        state.save_changes(path, &set).unwrap();
    }

    #[test]
    fn logged_changes_are_restored_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("applied-state.pb");
        let mut state = AppliedState::from(Snapshot {
            revision: 1,
            core_config_json: "{}".into(),
            users: vec![user("1.a", "a"), user("2.b", "b")],
        });
        state.save(&path).unwrap();
        apply_and_log(
            &mut state,
            &path,
            changes(1, 2, vec![user("3.c", "c")], &[]),
        );
        apply_and_log(
            &mut state,
            &path,
            changes(2, 5, vec![user("1.a", "a2")], &["2.b"]),
        );
        let loaded = AppliedState::load(&path).unwrap().unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.revision, 5);
        assert_eq!(loaded.digest(), state.digest());
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_folded_records_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("applied-state.pb");
        let mut state = AppliedState::from(Snapshot {
            revision: 1,
            core_config_json: "{}".into(),
            users: vec![user("1.a", "a")],
        });
        state.save(&path).unwrap();
        apply_and_log(
            &mut state,
            &path,
            changes(1, 2, vec![user("2.b", "b")], &[]),
        );
        let before_torn = state.clone();
        // A crash in the middle of appending the next record.
        let mut log = std::fs::read(change_log_path(&path)).unwrap();
        let good = log.len();
        let next = changes(2, 3, vec![user("3.c", "c")], &[]).encode_to_vec();
        log.extend_from_slice(&(next.len() as u32).to_be_bytes());
        log.extend_from_slice(&next[..next.len() / 2]);
        std::fs::write(change_log_path(&path), &log).unwrap();
        assert_eq!(AppliedState::load(&path).unwrap().unwrap(), before_torn);

        // A crash after the base was rewritten but before the log went:
        // the logged records are already in the base.
        std::fs::write(change_log_path(&path), &log[..good]).unwrap();
        before_torn.save(&path).unwrap();
        std::fs::write(change_log_path(&path), &log[..good]).unwrap();
        assert_eq!(AppliedState::load(&path).unwrap().unwrap(), before_torn);
    }

    #[test]
    fn a_log_larger_than_the_base_is_folded_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("applied-state.pb");
        let mut state = AppliedState::from(Snapshot {
            revision: 1,
            core_config_json: "{}".into(),
            users: Vec::new(),
        });
        state.save(&path).unwrap();
        // Changes of 100 users each until the log passes the base and
        // MIN_COMPACTION_BYTES and is folded in (the log file goes away).
        let mut revision = 1;
        loop {
            let big: Vec<UserSpec> = (0..100)
                .map(|i| user(&format!("{revision}.{i}"), &"x".repeat(100)))
                .collect();
            apply_and_log(&mut state, &path, changes(revision, revision + 1, big, &[]));
            revision += 1;
            if !change_log_path(&path).exists() {
                break;
            }
            assert!(revision < 1_000, "the log was never folded into the base");
        }
        let base = Snapshot::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
        assert_eq!(base.revision, revision, "the base holds every change");
        let loaded = AppliedState::load(&path).unwrap().unwrap();
        assert_eq!(loaded, state);
    }
}
