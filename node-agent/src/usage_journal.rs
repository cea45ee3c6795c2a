//! The durable, sequenced usage journal.
//!
//! The core's counters are cumulative since the core started. Each reading is
//! turned into deltas against a baseline (the last value seen per counter, for
//! one core run) and appended as an entry with the next sequence. Entries,
//! sequence and baseline live in ONE file replaced atomically: either the
//! entry and its baseline are both on disk, or neither is, so a crash at any
//! point neither loses a byte nor counts one twice. The control plane
//! collects entries after the last sequence it committed and acknowledges
//! them; only then are they dropped. Sequences never go backwards.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use nexpoint_proto::agent::{UsageEntry, UserUsage};
use serde::{Deserialize, Serialize};

use crate::atomic_file::{PRIVATE, write_atomic};

pub const DEFAULT_PAGE_SIZE: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("usage journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "usage journal {path} is corrupt (refusing to start over, sequences must not go back): {source}"
    )]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One core run's counters as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Identity of the core process the counters belong to.
    pub core_run: String,
    /// The core's uptime at the reading; a smaller one means it restarted.
    pub uptime: u32,
    pub counters: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalUser {
    pub email: String,
    pub uplink: i64,
    pub downlink: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub sequence: u64,
    pub recorded_at: i64,
    pub users: Vec<JournalUser>,
}

impl From<&JournalEntry> for UsageEntry {
    fn from(entry: &JournalEntry) -> Self {
        UsageEntry {
            sequence: entry.sequence,
            recorded_at: entry.recorded_at,
            users: entry
                .users
                .iter()
                .map(|u| UserUsage {
                    email: u.email.clone(),
                    uplink: u.uplink,
                    downlink: u.downlink,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct JournalFile {
    last_sequence: u64,
    entries: Vec<JournalEntry>,
    baseline: Baseline,
}

/// A reading of the core's counters.
#[derive(Debug, Clone)]
pub struct Reading<'a> {
    pub core_run: &'a str,
    pub uptime: u32,
    pub counters: &'a [(String, i64)],
    pub recorded_at: i64,
}

pub struct UsageJournal {
    path: PathBuf,
    state: Mutex<JournalFile>,
}

impl UsageJournal {
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, JournalError> {
        let path = path.into();
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| JournalError::Corrupt {
                    path: path.display().to_string(),
                    source,
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => JournalFile::default(),
            Err(source) => {
                return Err(JournalError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    pub fn last_sequence(&self) -> u64 {
        self.lock().last_sequence
    }

    /// Entries not acknowledged yet.
    pub fn depth(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn baseline(&self) -> Baseline {
        self.lock().baseline.clone()
    }

    /// Turns a reading into deltas and appends them (if any) together with
    /// the new baseline. Returns the new entry's sequence. On a write error
    /// nothing changes, in memory or on disk, and the next reading carries
    /// the same bytes.
    pub fn record(&self, reading: Reading<'_>) -> Result<Option<u64>, JournalError> {
        let mut state = self.lock();
        let same_run =
            state.baseline.core_run == reading.core_run && reading.uptime >= state.baseline.uptime;
        let empty = BTreeMap::new();
        let previous = if same_run {
            &state.baseline.counters
        } else {
            &empty
        };

        let mut per_user: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (name, value) in reading.counters {
            let Some((email, uplink)) = parse_counter(name) else {
                continue;
            };
            let before = previous.get(name).copied().unwrap_or(0);
            // A counter below its baseline was reset: all of it is new.
            let delta = if *value >= before {
                value - before
            } else {
                *value
            };
            if delta == 0 {
                continue;
            }
            let slot = per_user.entry(email).or_default();
            if uplink {
                slot.0 += delta;
            } else {
                slot.1 += delta;
            }
        }

        let mut next = JournalFile {
            last_sequence: state.last_sequence,
            entries: state.entries.clone(),
            baseline: Baseline {
                core_run: reading.core_run.to_string(),
                uptime: reading.uptime,
                counters: reading.counters.iter().cloned().collect(),
            },
        };
        let appended = (!per_user.is_empty()).then(|| {
            next.last_sequence += 1;
            next.entries.push(JournalEntry {
                sequence: next.last_sequence,
                recorded_at: reading.recorded_at,
                users: per_user
                    .into_iter()
                    .map(|(email, (uplink, downlink))| JournalUser {
                        email: email.to_string(),
                        uplink,
                        downlink,
                    })
                    .collect(),
            });
            next.last_sequence
        });
        if next == *state {
            return Ok(None);
        }
        self.persist(&next)?;
        *state = next;
        Ok(appended)
    }

    /// Entries with a sequence greater than `after`, oldest first, and the
    /// last sequence written.
    pub fn collect(&self, after: u64, max: usize) -> (Vec<UsageEntry>, u64) {
        let max = if max == 0 { DEFAULT_PAGE_SIZE } else { max };
        let state = self.lock();
        let entries = state
            .entries
            .iter()
            .filter(|e| e.sequence > after)
            .take(max)
            .map(UsageEntry::from)
            .collect();
        (entries, state.last_sequence)
    }

    /// Drops entries up to and including `sequence`.
    pub fn ack(&self, sequence: u64) -> Result<(), JournalError> {
        let mut state = self.lock();
        if !state.entries.iter().any(|e| e.sequence <= sequence) {
            return Ok(());
        }
        let mut next = state.clone();
        next.entries.retain(|e| e.sequence > sequence);
        self.persist(&next)?;
        *state = next;
        Ok(())
    }

    fn persist(&self, file: &JournalFile) -> Result<(), JournalError> {
        let bytes = serde_json::to_vec(file).expect("journal serializes");
        write_atomic(&self.path, &bytes, PRIVATE).map_err(|source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JournalFile> {
        self.state.lock().expect("journal poisoned")
    }
}

/// `user>>>EMAIL>>>traffic>>>uplink` -> (EMAIL, true).
pub fn parse_counter(name: &str) -> Option<(&str, bool)> {
    let rest = name.strip_prefix("user>>>")?;
    if let Some(email) = rest.strip_suffix(">>>traffic>>>uplink") {
        return Some((email, true));
    }
    rest.strip_suffix(">>>traffic>>>downlink")
        .map(|email| (email, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(values: &[(&str, i64, i64)]) -> Vec<(String, i64)> {
        values
            .iter()
            .flat_map(|(email, up, down)| {
                [
                    (format!("user>>>{email}>>>traffic>>>uplink"), *up),
                    (format!("user>>>{email}>>>traffic>>>downlink"), *down),
                ]
            })
            .collect()
    }

    fn reading<'a>(run: &'a str, uptime: u32, counters: &'a [(String, i64)]) -> Reading<'a> {
        Reading {
            core_run: run,
            uptime,
            counters,
            recorded_at: 1_700_000_000,
        }
    }

    fn users(journal: &UsageJournal, after: u64) -> Vec<Vec<(String, i64, i64)>> {
        journal
            .collect(after, 0)
            .0
            .into_iter()
            .map(|e| {
                e.users
                    .into_iter()
                    .map(|u| (u.email, u.uplink, u.downlink))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn parses_counter_names() {
        assert_eq!(
            parse_counter("user>>>1.a>>>traffic>>>uplink"),
            Some(("1.a", true))
        );
        assert_eq!(
            parse_counter("user>>>1.a>>>traffic>>>downlink"),
            Some(("1.a", false))
        );
        assert_eq!(parse_counter("inbound>>>vm>>>traffic>>>uplink"), None);
        assert_eq!(parse_counter("user>>>1.a>>>online"), None);
    }

    #[test]
    fn deltas_against_the_baseline_and_only_nonzero_users() {
        let dir = tempfile::tempdir().unwrap();
        let journal = UsageJournal::open(dir.path().join("j")).unwrap();
        let first = counters(&[("1.a", 100, 1000), ("2.b", 0, 0)]);
        assert_eq!(journal.record(reading("r1", 5, &first)).unwrap(), Some(1));
        let second = counters(&[("1.a", 150, 1000), ("2.b", 0, 7)]);
        assert_eq!(journal.record(reading("r1", 15, &second)).unwrap(), Some(2));
        // Nothing moved: no entry.
        assert_eq!(journal.record(reading("r1", 25, &second)).unwrap(), None);
        assert_eq!(
            users(&journal, 0),
            vec![
                vec![("1.a".into(), 100, 1000)],
                vec![("1.a".into(), 50, 0), ("2.b".into(), 0, 7)],
            ]
        );
    }

    #[test]
    fn a_new_core_run_starts_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let journal = UsageJournal::open(dir.path().join("j")).unwrap();
        journal
            .record(reading("r1", 50, &counters(&[("1.a", 500, 500)])))
            .unwrap();
        // Restarted core (new run identity): its counters are all new bytes.
        journal
            .record(reading("r2", 3, &counters(&[("1.a", 20, 30)])))
            .unwrap();
        // Same identity but uptime went back: also a restart.
        journal
            .record(reading("r2", 1, &counters(&[("1.a", 5, 5)])))
            .unwrap();
        assert_eq!(
            users(&journal, 1),
            vec![vec![("1.a".into(), 20, 30)], vec![("1.a".into(), 5, 5)]]
        );
    }

    #[test]
    fn collect_pages_and_ack_drops() {
        let dir = tempfile::tempdir().unwrap();
        let journal = UsageJournal::open(dir.path().join("j")).unwrap();
        for i in 1..=5 {
            journal
                .record(reading("r", i, &counters(&[("1.a", i as i64, 0)])))
                .unwrap();
        }
        let (page, last) = journal.collect(1, 2);
        assert_eq!(page.iter().map(|e| e.sequence).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(last, 5);
        journal.ack(3).unwrap();
        let (rest, _) = journal.collect(0, 0);
        assert_eq!(rest.iter().map(|e| e.sequence).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn reopening_keeps_sequence_and_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        {
            let journal = UsageJournal::open(&path).unwrap();
            journal
                .record(reading("r", 1, &counters(&[("1.a", 10, 10)])))
                .unwrap();
            journal
                .record(reading("r", 2, &counters(&[("1.a", 20, 10)])))
                .unwrap();
            journal.ack(2).unwrap();
        }
        let journal = UsageJournal::open(&path).unwrap();
        assert_eq!(journal.last_sequence(), 2);
        assert!(journal.collect(0, 0).0.is_empty());
        // The same core run continues: only the new 5 bytes count.
        let seq = journal
            .record(reading("r", 3, &counters(&[("1.a", 25, 10)])))
            .unwrap();
        assert_eq!(seq, Some(3), "sequences continue after a restart");
        assert_eq!(users(&journal, 0), vec![vec![("1.a".into(), 5, 0)]]);
    }

    #[test]
    fn a_failed_write_changes_nothing_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        std::fs::create_dir(&state_dir).unwrap();
        let path = state_dir.join("j");
        let journal = UsageJournal::open(&path).unwrap();
        journal
            .record(reading("r", 1, &counters(&[("1.a", 10, 0)])))
            .unwrap();

        // The disk goes away mid-run: the write fails.
        std::fs::remove_dir_all(&state_dir).unwrap();
        assert!(
            journal
                .record(reading("r", 2, &counters(&[("1.a", 30, 0)])))
                .is_err()
        );
        assert_eq!(journal.last_sequence(), 1);
        assert_eq!(
            journal.baseline().counters["user>>>1.a>>>traffic>>>uplink"],
            10
        );

        // It comes back: the next reading carries the bytes of the failed one.
        std::fs::create_dir(&state_dir).unwrap();
        journal
            .record(reading("r", 3, &counters(&[("1.a", 35, 0)])))
            .unwrap();
        assert_eq!(
            users(&journal, 0),
            vec![vec![("1.a".into(), 10, 0)], vec![("1.a".into(), 25, 0)]]
        );

        // What is on disk is entries and baseline together.
        let reopened = UsageJournal::open(&path).unwrap();
        assert_eq!(reopened.last_sequence(), 2);
        assert_eq!(
            reopened.baseline().counters["user>>>1.a>>>traffic>>>uplink"],
            35
        );
        assert_eq!(
            users(&reopened, 0),
            vec![vec![("1.a".into(), 10, 0)], vec![("1.a".into(), 25, 0)]]
        );
    }

    #[test]
    fn a_corrupt_journal_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            UsageJournal::open(&path),
            Err(JournalError::Corrupt { .. })
        ));
    }
}
