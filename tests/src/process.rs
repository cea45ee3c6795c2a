//! A child process under test: output forwarded to the test log and kept,
//! readiness read from its output with a deadline, killed when dropped.

use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Default)]
struct Output {
    lines: Vec<(Stream, String)>,
    open_streams: u8,
}

/// A spawned process in its own process group. Dropping it SIGKILLs the whole
/// group, so grandchildren (a node agent's proxy core) die with it.
pub struct ChildProcess {
    name: String,
    child: Child,
    pid: i32,
    output: Arc<Mutex<Output>>,
    changed: watch::Receiver<u64>,
    status: Option<ExitStatus>,
}

impl ChildProcess {
    /// Spawns `program args…` with piped stdout/stderr and no stdin.
    pub fn spawn<I, S>(
        name: impl Into<String>,
        program: impl AsRef<OsStr>,
        args: I,
        env: &[(&str, &str)],
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(program.as_ref());
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn_command(name, cmd)
    }

    /// Spawns a prepared command (stdio, process group and kill-on-drop are set here).
    pub fn spawn_command(name: impl Into<String>, mut cmd: Command) -> Result<Self> {
        let name = name.into();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {:?}", cmd.as_std()))?;
        let pid = child.id().context("spawned child has no pid")? as i32;
        eprintln!("[{name}] spawned pid {pid}: {:?}", cmd.as_std());

        let output = Arc::new(Mutex::new(Output {
            lines: Vec::new(),
            open_streams: 2,
        }));
        let (tx, rx) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        tokio::spawn(forward(
            name.clone(),
            Stream::Stdout,
            stdout,
            output.clone(),
            tx.clone(),
        ));
        tokio::spawn(forward(
            name.clone(),
            Stream::Stderr,
            stderr,
            output.clone(),
            tx,
        ));
        Ok(Self {
            name,
            child,
            pid,
            output,
            changed: rx,
            status: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// All lines so far, both streams, in arrival order.
    pub fn output_text(&self) -> String {
        let out = self.output.lock().unwrap();
        let mut text = String::new();
        for (_, line) in &out.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output.lock().unwrap();
        let start = out.lines.len().saturating_sub(n);
        out.lines[start..]
            .iter()
            .map(|(_, l)| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The exit status, if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits (bounded) for a line on `stream` (or either, when `None`) that
    /// satisfies `pred`, looking at every line since the process started.
    /// Fails at once when the process closes its output (exits) first.
    pub async fn wait_for_line(
        &mut self,
        stream: Option<Stream>,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.changed.clone();
        let mut seen = 0;
        loop {
            rx.borrow_and_update();
            let closed = {
                let out = self.output.lock().unwrap();
                for (s, line) in &out.lines[seen..] {
                    if stream.is_none_or(|want| want == *s) && pred(line) {
                        return Ok(line.clone());
                    }
                }
                seen = out.lines.len();
                out.open_streams == 0
            };
            if closed {
                let status = match tokio::time::timeout(Duration::from_secs(5), self.wait()).await {
                    Ok(Ok(s)) => s.to_string(),
                    _ => "still running".to_string(),
                };
                bail!(
                    "{} closed its output ({status}) before printing the expected line; last output:\n{}",
                    self.name,
                    self.tail(40)
                );
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(_) => {}
                Err(_) => bail!(
                    "{} printed no expected line within {timeout:?}; last output:\n{}",
                    self.name,
                    self.tail(40)
                ),
            }
        }
    }

    /// Waits for the process to exit and for its output to be fully read.
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        let status = match self.status {
            Some(s) => s,
            None => {
                let s = self.child.wait().await.context("waiting for child")?;
                self.status = Some(s);
                s
            }
        };
        // The readers finish once the pipes are closed; grandchildren holding
        // them open must not block us for long.
        let mut rx = self.changed.clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.output.lock().unwrap().open_streams > 0 {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        Ok(status)
    }

    /// Waits (bounded) for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        match tokio::time::timeout(timeout, self.wait()).await {
            Ok(status) => status,
            Err(_) => bail!(
                "{} did not exit within {timeout:?}; last output:\n{}",
                self.name,
                self.tail(40)
            ),
        }
    }

    /// SIGKILLs the process itself (not its group) and reaps it: a crash.
    pub async fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_status() {
            return Ok(status);
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        self.wait().await
    }

    /// SIGTERM, then waits up to `grace` for the exit; SIGKILLs the group after that.
    pub async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_status() {
            return Ok(status);
        }
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(status) => status,
            Err(_) => {
                eprintln!("[{}] no exit {grace:?} after SIGTERM: SIGKILL", self.name);
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                self.wait().await
            }
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // The whole group: the process itself and anything it started.
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = self.child.start_kill();
        // Reap it (SIGKILL is quick) so no zombie outlives the test; bounded.
        for _ in 0..200 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

async fn forward(
    name: String,
    stream: Stream,
    pipe: impl AsyncRead + Unpin,
    output: Arc<Mutex<Output>>,
    changed: Arc<watch::Sender<u64>>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                let tag = match stream {
                    Stream::Stdout => "",
                    Stream::Stderr => " (stderr)",
                };
                eprintln!("[{name}{tag}] {line}");
                output.lock().unwrap().lines.push((stream, line));
                changed.send_modify(|n| *n += 1);
            }
        }
    }
    output.lock().unwrap().open_streams -= 1;
    changed.send_modify(|n| *n += 1);
}

/// SIGKILLs every process (other than this one) whose command line mentions
/// `needle`, e.g. a unique temporary directory. A node agent starts its core
/// in a process group of its own and, by design, leaves it running when the
/// agent dies; a test uses this to stop the cores of its own state dirs.
/// Returns the pids it signalled.
pub fn kill_processes_mentioning(needle: &std::path::Path) -> Vec<i32> {
    let needle = needle.as_os_str().as_encoded_bytes();
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !needle.is_empty() && cmdline.windows(needle.len()).any(|w| w == needle) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed.push(pid);
        }
    }
    killed
}
