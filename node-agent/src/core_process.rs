//! One run of the core process: its output, its exit, and how it is stopped.
//!
//! A run the agent started is owned by a waiter task that reaps it with
//! `Child::wait` (no global `waitpid` reaper that could steal exit
//! statuses); signals are sent by that same task while the child is known
//! to be unreaped, so a recycled pid is never signalled.
//!
//! The core outlives an agent that is killed (SIGKILL, OOM): its output goes
//! to a file in the state dir, not to pipes that would break and kill it on
//! its next line. The next agent adopts it ([`CoreRun::adopt`]): same run,
//! same counters, open connections untouched, nothing to re-count. An
//! adopted core is not our child, so its exit is noticed by polling its pid.
//! On every orderly exit the agent reads the counters one last time and
//! stops the core itself; the core runs in its own process group so a
//! terminal's Ctrl-C reaches only the agent.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::core_logs::CoreLogs;
use crate::orphan_core::is_running;

/// Lines of a run kept to find its error line.
const RUN_TAIL: usize = 64;
/// How long to wait for the output to be read after the process exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the output file is read for new lines, and an adopted core's
/// pid looked at.
const POLL: Duration = Duration::from_millis(100);
/// The output file is emptied when it grows past this (the core appends,
/// so it goes on writing at the new end).
const MAX_LOG_BYTES: u64 = 32 << 20;

type Tail = Arc<Mutex<VecDeque<String>>>;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunExit {
    /// `exit status: 23`, `signal: 9 (SIGKILL)`, ...
    pub status: String,
    /// The core's own error line (see [`pick_error_line`]), may be empty.
    pub error_line: String,
}

impl RunExit {
    /// What to report: the core's own line, else how it exited.
    pub fn describe(&self) -> String {
        if self.error_line.is_empty() {
            format!("core exited ({})", self.status)
        } else {
            self.error_line.clone()
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Control {
    Terminate,
    Kill,
}

/// Sent when a run's process has exited (with the run's generation).
pub type ExitNotifier = mpsc::UnboundedSender<u64>;

pub struct CoreRun {
    pub generation: u64,
    pub pid: u32,
    /// Unix seconds.
    pub started_at: i64,
    pub started: Instant,
    /// Identity of this process for usage baselines: counters restart with it.
    pub instance: String,
    control: mpsc::UnboundedSender<Control>,
    exit: watch::Receiver<Option<RunExit>>,
}

impl CoreRun {
    /// Starts `bin args` with stdin closed and stdout/stderr appended to
    /// `log_path`.
    pub fn spawn(
        bin: &Path,
        args: &[String],
        generation: u64,
        logs: CoreLogs,
        notify: ExitNotifier,
        log_path: &Path,
    ) -> std::io::Result<Self> {
        let (output, offset) = open_output(log_path)?;
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(output.try_clone()?))
            .stderr(Stdio::from(output))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or_default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let tail: Tail = Arc::new(Mutex::new(VecDeque::with_capacity(RUN_TAIL)));
        let (exited, exited_rx) = watch::channel(false);
        let reader = tokio::spawn(follow_output(
            log_path.to_path_buf(),
            offset,
            logs,
            tail.clone(),
            exited_rx,
        ));
        let (control, mut control_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit) = watch::channel(None);

        tokio::spawn(async move {
            let mut controlled = true;
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    message = control_rx.recv(), if controlled => match message {
                        Some(Control::Terminate) => {
                            if let Some(pid) = child.id() {
                                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                            }
                        }
                        Some(Control::Kill) => {
                            let _ = child.start_kill();
                        }
                        // The run handle is gone: nobody can stop it any more.
                        None => {
                            controlled = false;
                            let _ = child.start_kill();
                        }
                    },
                }
            };
            let lines = drain(exited, reader, &tail).await;
            // Killed by a signal, the core said nothing about it: its last
            // line is whatever it logged before, not a reason.
            let (status, error_line) = match status {
                Ok(status) if status.signal().is_some() => (status.to_string(), String::new()),
                Ok(status) => (status.to_string(), pick_error_line(&lines)),
                Err(e) => (format!("wait failed: {e}"), pick_error_line(&lines)),
            };
            let _ = exit_tx.send(Some(RunExit { status, error_line }));
            let _ = notify.send(generation);
        });

        Ok(Self {
            generation,
            pid,
            started_at: now.as_secs() as i64,
            started: Instant::now(),
            instance: format!("{pid}-{}", now.as_millis()),
            control,
            exit,
        })
    }

    /// Takes over a core a previous agent started (see
    /// [`crate::orphan_core`]): it keeps its identity, so its counters go on
    /// from the journal's baseline. Its output is followed from the end of
    /// `log_path`; its exit is noticed by polling its pid.
    pub fn adopt(
        pid: u32,
        instance: String,
        started_at: i64,
        generation: u64,
        logs: CoreLogs,
        notify: ExitNotifier,
        log_path: &Path,
    ) -> Self {
        let offset = std::fs::metadata(log_path).map(|m| m.len()).unwrap_or(0);
        let tail: Tail = Arc::new(Mutex::new(VecDeque::with_capacity(RUN_TAIL)));
        let (exited, exited_rx) = watch::channel(false);
        let reader = tokio::spawn(follow_output(
            log_path.to_path_buf(),
            offset,
            logs,
            tail.clone(),
            exited_rx,
        ));
        let (control, mut control_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit) = watch::channel(None);
        let target = Pid::from_raw(pid as i32);

        tokio::spawn(async move {
            let mut controlled = true;
            let mut signalled = None;
            while is_running(pid) {
                tokio::select! {
                    message = control_rx.recv(), if controlled => {
                        let signal = match message {
                            Some(Control::Terminate) => Signal::SIGTERM,
                            Some(Control::Kill) => Signal::SIGKILL,
                            None => {
                                controlled = false;
                                Signal::SIGKILL
                            }
                        };
                        // Checked right before: the pid is still the core's.
                        if is_running(pid) {
                            let _ = kill(target, signal);
                            signalled = Some(signal);
                        }
                    }
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            let lines = drain(exited, reader, &tail).await;
            // Not our child: its exit status went to whoever reaps it.
            let (status, error_line) = match signalled {
                Some(signal) => (
                    format!("stopped with {signal} (adopted core)"),
                    String::new(),
                ),
                // Its output is shared with no one to tell an error from
                // routine lines by the exit status: only an error line counts.
                None => (
                    "exited (adopted core, status unknown)".to_string(),
                    last_error_line(&lines),
                ),
            };
            let _ = exit_tx.send(Some(RunExit { status, error_line }));
            let _ = notify.send(generation);
        });

        let started_ago = (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64
            - started_at)
            .max(0) as u64;
        Self {
            generation,
            pid,
            started_at,
            started: Instant::now()
                .checked_sub(Duration::from_secs(started_ago))
                .unwrap_or_else(Instant::now),
            instance,
            control,
            exit,
        }
    }

    /// The exit, if the process has exited.
    pub fn exited(&self) -> Option<RunExit> {
        self.exit.borrow().clone()
    }

    pub fn exit_watch(&self) -> watch::Receiver<Option<RunExit>> {
        self.exit.clone()
    }

    pub async fn wait(&mut self) -> RunExit {
        match self.exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().expect("waited for Some"),
            Err(_) => RunExit {
                status: "unknown".into(),
                error_line: String::new(),
            },
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `deadline`.
    pub async fn stop(mut self, deadline: Duration) -> RunExit {
        if let Some(exit) = self.exited() {
            return exit;
        }
        let _ = self.control.send(Control::Terminate);
        if let Ok(exit) = tokio::time::timeout(deadline, self.wait()).await {
            return exit;
        }
        tracing::warn!(pid = self.pid, "core ignored SIGTERM; killing it");
        let _ = self.control.send(Control::Kill);
        self.wait().await
    }
}

/// The output file, opened for appending (emptied first when it grew too
/// large), and where the new run's output starts.
fn open_output(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        // Lines can carry client addresses and user emails.
        .mode(0o600)
        .open(path)?;
    let mut len = file.metadata()?.len();
    if len > MAX_LOG_BYTES {
        file.set_len(0)?;
        len = 0;
    }
    Ok((file, len))
}

/// Tells the output follower the process is gone, lets it read the rest,
/// and returns the run's last lines.
async fn drain(
    exited: watch::Sender<bool>,
    reader: tokio::task::JoinHandle<()>,
    tail: &Tail,
) -> Vec<String> {
    let _ = exited.send(true);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, reader).await;
    tail.lock()
        .expect("tail poisoned")
        .iter()
        .cloned()
        .collect()
}

/// Feeds every line appended to `path` after `offset` to `logs` and
/// `tail`, until `exited` turns true and the rest has been read.
async fn follow_output(
    path: PathBuf,
    mut offset: u64,
    logs: CoreLogs,
    tail: Tail,
    mut exited: watch::Receiver<bool>,
) {
    let mut partial = Vec::new();
    loop {
        let last = *exited.borrow_and_update();
        let read = {
            let path = path.clone();
            let start = offset;
            tokio::task::spawn_blocking(move || read_new(&path, start)).await
        };
        match read {
            Ok(Ok((bytes, next, emptied))) => {
                if emptied {
                    // Emptied by someone else: its half line is gone.
                    partial.clear();
                }
                offset = next;
                partial.extend_from_slice(&bytes);
                while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    push_line(&line, &logs, &tail);
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, path = %path.display(), "core output unreadable")
            }
            Err(_) => return,
        }
        if last {
            push_line(&partial, &logs, &tail);
            return;
        }
        tokio::select! {
            _ = exited.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The bytes of `path` after `offset` (from the start if it was emptied
/// since, then `true`), and the offset after them. A file past
/// [`MAX_LOG_BYTES`] is emptied once read: the core appends, so it goes on
/// at the new end.
fn read_new(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64, bool)> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = file.metadata()?.len();
    let from = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.by_ref().take(len - from).read_to_end(&mut bytes)?;
    let mut next = from + bytes.len() as u64;
    if next > MAX_LOG_BYTES {
        file.set_len(0)?;
        next = 0;
    }
    Ok((bytes, next, len < offset))
}

fn push_line(raw: &[u8], logs: &CoreLogs, tail: &Tail) {
    let line = String::from_utf8_lossy(raw).trim_end().to_string();
    if line.is_empty() {
        return;
    }
    {
        let mut tail = tail.lock().expect("tail poisoned");
        if tail.len() == RUN_TAIL {
            tail.pop_front();
        }
        tail.push_back(line.clone());
    }
    logs.push(line);
}

/// The line that says why the core stopped: the last `panic:` line or line
/// mentioning a failure, else the last line. Go panics end with a goroutine
/// trace, so "the last line" alone would be a stack frame.
pub fn pick_error_line<S: AsRef<str>>(lines: &[S]) -> String {
    let picked = last_error_line(lines);
    if picked.is_empty() {
        lines
            .last()
            .map(|l| l.as_ref().trim().to_string())
            .unwrap_or_default()
    } else {
        picked
    }
}

/// The last `panic:` line or line mentioning a failure; empty if none.
fn last_error_line<S: AsRef<str>>(lines: &[S]) -> String {
    let is_error = |line: &str| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("panic:")
            || lower.contains("failed")
            || lower.contains("[error]")
            || lower.contains("error:")
    };
    lines
        .iter()
        .rev()
        .map(AsRef::as_ref)
        .find(|l| is_error(l))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_cores_error_line() {
        let rejected = [
            "V2Ray 4.34.0 (user) 20230518-074445 (go1.19.8 linux/amd64)",
            "A unified platform for anti-censorship.",
            "main: failed to read config files: [c.json] > v2ray.com/core/infra/conf: failed to load geoip: cn",
        ];
        assert!(pick_error_line(&rejected).starts_with("main: failed to read config files"));

        let panic = [
            "panic: open /nonexist.json: no such file or directory",
            "",
            "goroutine 1 [running]:",
            "v2ray.com/core/common.Must(...)",
            "\tv2ray.com/core/common/common.go:26",
        ];
        assert_eq!(
            pick_error_line(&panic),
            "panic: open /nonexist.json: no such file or directory"
        );
        assert_eq!(pick_error_line(&["just this"]), "just this");
        assert_eq!(pick_error_line::<&str>(&[]), "");
    }
}
