//! One run of the core process: its output, its exit, and how it is stopped.
//!
//! The child is owned by a waiter task that reaps it with `Child::wait`
//! (no global `waitpid` reaper that could steal exit statuses). Signals are
//! sent by that same task while the child is known to be unreaped, so a
//! recycled pid is never signalled.
//!
//! The core should die with the agent. PR_SET_PDEATHSIG would need `pre_exec`
//! (unsafe code, forbidden in this workspace), so instead the child is
//! `kill_on_drop` and the agent stops it on every orderly exit. It runs in its
//! own process group so a terminal's Ctrl-C reaches only the agent, which then
//! reads the counters one last time before stopping the core itself.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::core_logs::CoreLogs;

/// Lines of a run kept to find its error line.
const RUN_TAIL: usize = 64;
/// How long to wait for the output pipes to drain after the process exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Starts `bin args` with stdin closed and stdout/stderr captured.
    pub fn spawn(
        bin: &Path,
        args: &[String],
        generation: u64,
        logs: CoreLogs,
        notify: ExitNotifier,
    ) -> std::io::Result<Self> {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or_default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(RUN_TAIL)));
        let readers = [
            child
                .stdout
                .take()
                .map(|out| spawn_reader(out, logs.clone(), tail.clone())),
            child
                .stderr
                .take()
                .map(|err| spawn_reader(err, logs.clone(), tail.clone())),
        ];
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
            for reader in readers.into_iter().flatten() {
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, reader).await;
            }
            let lines: Vec<String> = tail
                .lock()
                .expect("tail poisoned")
                .iter()
                .cloned()
                .collect();
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

fn spawn_reader(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    logs: CoreLogs,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            if line.is_empty() {
                continue;
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
    })
}

/// The line that says why the core stopped: the last `panic:` line or line
/// mentioning a failure, else the last line. Go panics end with a goroutine
/// trace, so "the last line" alone would be a stack frame.
pub fn pick_error_line<S: AsRef<str>>(lines: &[S]) -> String {
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
        .or_else(|| lines.last().map(AsRef::as_ref))
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
