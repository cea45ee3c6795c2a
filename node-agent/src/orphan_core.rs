//! A core left behind by an agent that was killed (SIGKILL, OOM) keeps
//! running: its output goes to a file, not to pipes that would break, and
//! `kill_on_drop` needs an orderly exit. The next agent finds it through
//! `core-run.json`. When the agent has the state the core was serving, it
//! adopts the core as its own run (see `CoreRun::adopt`): users keep their
//! connections and the counters go on, so a crashed agent loses no byte.
//! Otherwise it journals what the core counted since the last reading and
//! stops it, so it does not hold the ports.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::atomic_file::{PRIVATE, write_atomic};
use crate::core_api::CoreApi;
use crate::core_kind::CoreKind;
use crate::usage_journal::{Reading, UsageJournal};

const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreRunRecord {
    pub pid: u32,
    pub instance: String,
    pub api_port: u16,
    /// Unix seconds; 0 in records of agents that did not write it.
    #[serde(default)]
    pub started_at: i64,
}

impl CoreRunRecord {
    pub fn save(&self, path: &Path) -> io::Result<()> {
        write_atomic(
            path,
            &serde_json::to_vec(self).expect("serializes"),
            PRIVATE,
        )
    }

    pub fn remove(path: &Path) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the core run record");
        }
    }
}

/// Whether `pid` is a core started with our config file (not a recycled pid).
fn is_our_core(pid: u32, config: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let config = config.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == config)
}

/// Whether `pid` exists and is not a zombie (an orphan's new parent may be
/// slow to reap it, or never do so in a container without an init).
pub fn is_running(pid: u32) -> bool {
    if matches!(kill(Pid::from_raw(pid as i32), None), Err(Errno::ESRCH)) {
        return false;
    }
    // /proc/PID/stat: "PID (COMM) STATE ..."; COMM may contain spaces.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The core a previous agent left running, if its record names a live
/// process started with our config (not a recycled pid). A stale record is
/// removed.
pub fn find(record_path: &Path, config_path: &Path) -> Option<CoreRunRecord> {
    let bytes = std::fs::read(record_path).ok()?;
    let record: CoreRunRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable core run record; ignored");
            CoreRunRecord::remove(record_path);
            return None;
        }
    };
    if !is_running(record.pid) || !is_our_core(record.pid, config_path) {
        CoreRunRecord::remove(record_path);
        return None;
    }
    Some(record)
}

/// Journals what a left-behind core counted since the last reading (same
/// run identity, so the baseline applies and nothing is counted twice),
/// then stops it: for a core that cannot be adopted.
pub async fn journal_and_stop(
    record: CoreRunRecord,
    record_path: &Path,
    kind: Option<CoreKind>,
    journal: &UsageJournal,
    stop_timeout: Duration,
) {
    match read_counters(&record, kind.unwrap_or(CoreKind::Xray)).await {
        Ok((uptime, counters)) => {
            let reading = Reading {
                core_run: &record.instance,
                uptime,
                counters: &counters,
                recorded_at: crate::core_logs::now_ms() / 1000,
            };
            match journal.record(reading) {
                Ok(sequence) => {
                    tracing::info!(?sequence, "usage of the left-behind core journaled")
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot journal the left-behind core's usage")
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the left-behind core's counters"),
    }

    let pid = Pid::from_raw(record.pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    if !wait_gone(pid, stop_timeout).await {
        let _ = kill(pid, Signal::SIGKILL);
        wait_gone(pid, stop_timeout).await;
    }
    CoreRunRecord::remove(record_path);
}

async fn read_counters(
    record: &CoreRunRecord,
    kind: CoreKind,
) -> Result<(u32, Vec<(String, i64)>), crate::core_api::CoreApiError> {
    // Only stats are read: the kind (which names user operations) is moot.
    let api = CoreApi::connect(kind, record.api_port).await?;
    let uptime = api.uptime().await?;
    let counters = api.user_counters().await?;
    Ok((uptime, counters))
}

async fn wait_gone(pid: Pid, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_running(pid.as_raw() as u32) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recognizes_only_processes_running_our_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("core.json");
        // `sh -c CMD ARG0`: ARG0 shows up in the command line (the trailing
        // `:` keeps sh from exec-ing sleep in its place).
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "sleep 30; :"])
            .arg(&config)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        // Right after spawn the command line can read empty for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_our_core(pid, &config) {
            assert!(Instant::now() < deadline, "child never showed our config");
            tokio::time::sleep(POLL).await;
        }
        assert!(!is_our_core(pid, &dir.path().join("other.json")));
        child.kill().await.unwrap();
        assert!(!is_our_core(u32::MAX, &config));
    }

    #[test]
    fn record_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core-run.json");
        let record = CoreRunRecord {
            pid: 42,
            instance: "42-1".into(),
            api_port: 1234,
            started_at: 1_700_000_000,
        };
        record.save(&path).unwrap();
        let read: CoreRunRecord = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, record);
        CoreRunRecord::remove(&path);
        assert!(!path.exists());
    }
}
