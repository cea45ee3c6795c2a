//! The core as a managed process: identify the binary, validate a config,
//! start a run and wait until its API answers, stop it, report its status.
//! Restart policy lives in [`crate::node`], which owns the desired state.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nexpoint_proto::agent::CoreStatus;
use tokio::process::Command;
use tokio::sync::watch;

use crate::atomic_file::{PRIVATE, write_atomic_with};
use crate::core_api::CoreApi;
use crate::core_kind::{self, CoreIdentity, CoreKind};
use crate::core_logs::CoreLogs;
use crate::core_process::{CoreRun, ExitNotifier, RunExit, pick_error_line};
use crate::orphan_core::CoreRunRecord;
use crate::rendered_config::RenderedConfig;
use crate::state_dir::StateDir;

/// Upper bound for `core -test`.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between attempts to reach a starting core's API.
const READY_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub bin: PathBuf,
    /// How long a starting core may take until its API answers.
    pub ready_timeout: Duration,
    /// How long a core may take to exit after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    Unusable(String),
    #[error("core rejected the config: {0}")]
    Rejected(String),
    #[error("core failed to start: {0}")]
    StartFailed(String),
    #[error("cannot write the core config {path}: {source}")]
    WriteConfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl CoreError {
    /// The line to show as CoreStatus.last_error.
    pub fn line(&self) -> String {
        match self {
            CoreError::Unusable(line)
            | CoreError::Rejected(line)
            | CoreError::StartFailed(line) => line.clone(),
            other => other.to_string(),
        }
    }
}

/// A run whose API answered.
pub struct LiveRun {
    pub run: CoreRun,
    pub api: CoreApi,
    pub api_port: u16,
}

pub struct CoreSupervisor {
    settings: CoreSettings,
    state_dir: StateDir,
    logs: CoreLogs,
    notify: ExitNotifier,
    identity: Option<CoreIdentity>,
    live: Option<LiveRun>,
    generation: u64,
    pub restarts: u32,
    pub last_error: String,
}

impl CoreSupervisor {
    pub fn new(
        settings: CoreSettings,
        state_dir: StateDir,
        logs: CoreLogs,
        notify: ExitNotifier,
    ) -> Self {
        Self {
            settings,
            state_dir,
            logs,
            notify,
            identity: None,
            live: None,
            generation: 0,
            restarts: 0,
            last_error: String::new(),
        }
    }

    /// What the binary is; detected once, retried while it fails (the
    /// binary may be installed later).
    pub async fn identify(&mut self) -> Result<CoreIdentity, CoreError> {
        if let Some(identity) = &self.identity {
            return Ok(identity.clone());
        }
        match core_kind::detect(&self.settings.bin).await {
            Ok(identity) => {
                tracing::info!(kind = %identity.kind, version = %identity.version, bin = %self.settings.bin.display(), "core identified");
                self.identity = Some(identity.clone());
                Ok(identity)
            }
            Err(e) => {
                self.last_error = e.to_string();
                Err(CoreError::Unusable(e.to_string()))
            }
        }
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    pub fn kind(&self) -> Option<CoreKind> {
        self.identity.as_ref().map(|i| i.kind)
    }

    /// The current run if its process is still alive.
    pub fn live(&self) -> Option<&LiveRun> {
        self.live.as_ref().filter(|l| l.run.exited().is_none())
    }

    pub fn is_running(&self) -> bool {
        self.live().is_some()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Lets the core validate a config without touching the running one.
    pub async fn validate(&mut self, config: &RenderedConfig<'_>) -> Result<(), CoreError> {
        let identity = self.identify().await?;
        let path = self.state_dir.candidate_core_config();
        let result = test_config(&self.settings.bin, identity.kind, &path, config).await;
        if let Err(CoreError::Rejected(line) | CoreError::Unusable(line)) = &result {
            self.last_error = line.clone();
        }
        result
    }

    /// Starts the core with `config` (whose API inbound listens on
    /// `api_port`) and waits until the API answers. Any previous run must
    /// is stopped first.
    pub async fn start(
        &mut self,
        config: &RenderedConfig<'_>,
        api_port: u16,
    ) -> Result<(), CoreError> {
        self.stop().await;
        let identity = self.identify().await?;
        let path = self.state_dir.core_config();
        write_config(&path, config)?;
        self.generation += 1;
        let mut run = CoreRun::spawn(
            &self.settings.bin,
            &identity.kind.run_args(&path),
            self.generation,
            self.logs.clone(),
            self.notify.clone(),
            &self.state_dir.core_log(),
        )
        .map_err(|e| {
            let line = format!("cannot start core {}: {e}", self.settings.bin.display());
            self.last_error = line.clone();
            CoreError::StartFailed(line)
        })?;
        tracing::info!(pid = run.pid, api_port, "core started; waiting for its API");
        let record = CoreRunRecord {
            pid: run.pid,
            instance: run.instance.clone(),
            api_port,
            started_at: run.started_at,
        };
        if let Err(e) = record.save(&self.state_dir.core_run()) {
            tracing::warn!(error = %e, "cannot record the core's pid");
        }

        let deadline = Instant::now() + self.settings.ready_timeout;
        loop {
            if let Some(exit) = run.exited() {
                return Err(self.failed(exit));
            }
            if let Ok(api) = CoreApi::connect(identity.kind, api_port).await
                && api.uptime().await.is_ok()
            {
                self.live = Some(LiveRun { run, api, api_port });
                return Ok(());
            }
            if Instant::now() >= deadline {
                let exit = run.stop(self.settings.stop_timeout).await;
                tracing::warn!(status = %exit.status, "core API never answered; stopped it");
                let line = format!(
                    "core API on 127.0.0.1:{api_port} did not answer within {:?}",
                    self.settings.ready_timeout
                );
                self.last_error = line.clone();
                return Err(CoreError::StartFailed(line));
            }
            tokio::select! {
                _ = run.wait() => {}
                _ = tokio::time::sleep(READY_POLL) => {}
            }
        }
    }

    /// Makes the core a previous agent left running (`record`) the current
    /// run, if its API answers. It keeps its identity, so usage goes on
    /// from the journal's baseline, and its users keep their connections.
    pub async fn adopt(&mut self, record: &CoreRunRecord) -> Result<(), CoreError> {
        let identity = self.identify().await?;
        let unreachable = |e: String| {
            CoreError::StartFailed(format!(
                "the running core's API on 127.0.0.1:{} does not answer: {e}",
                record.api_port
            ))
        };
        let api = CoreApi::connect(identity.kind, record.api_port)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        api.uptime().await.map_err(|e| unreachable(e.to_string()))?;
        self.generation += 1;
        let run = CoreRun::adopt(
            record.pid,
            record.instance.clone(),
            record.started_at,
            self.generation,
            self.logs.clone(),
            self.notify.clone(),
            &self.state_dir.core_log(),
        );
        tracing::info!(
            pid = run.pid,
            api_port = record.api_port,
            "adopted the core left running"
        );
        self.live = Some(LiveRun {
            run,
            api,
            api_port: record.api_port,
        });
        Ok(())
    }

    /// Stops the current run, if any.
    pub async fn stop(&mut self) -> Option<RunExit> {
        let live = self.live.take()?;
        let pid = live.run.pid;
        let exit = live.run.stop(self.settings.stop_timeout).await;
        CoreRunRecord::remove(&self.state_dir.core_run());
        tracing::info!(pid, status = %exit.status, "core stopped");
        Some(exit)
    }

    /// Takes note of run `generation` having exited. Returns how long it ran
    /// if it was the current run (an unexpected death), None for a run that
    /// was stopped on purpose or replaced.
    pub fn on_exit(&mut self, generation: u64) -> Option<Duration> {
        let live = self.live.as_ref()?;
        if live.run.generation != generation {
            return None;
        }
        let live = self.live.take()?;
        CoreRunRecord::remove(&self.state_dir.core_run());
        let exit = live.run.exited().unwrap_or(RunExit {
            status: "unknown".into(),
            error_line: String::new(),
        });
        self.last_error = exit.describe();
        tracing::warn!(pid = live.run.pid, status = %exit.status, error = %self.last_error, "core died");
        Some(live.run.started.elapsed())
    }

    pub fn status(&self) -> CoreStatus {
        let live = self.live();
        CoreStatus {
            running: live.is_some(),
            kind: self
                .identity
                .as_ref()
                .map(|i| i.kind.to_string())
                .unwrap_or_default(),
            version: self
                .identity
                .as_ref()
                .map(|i| i.version.clone())
                .unwrap_or_default(),
            started_at: live.map(|l| l.run.started_at).unwrap_or_default(),
            restarts: self.restarts,
            last_error: self.last_error.clone(),
        }
    }

    /// Lets a status reader notice the current run's death without a lock.
    pub fn exit_watch(&self) -> Option<watch::Receiver<Option<RunExit>>> {
        self.live.as_ref().map(|l| l.run.exit_watch())
    }

    fn failed(&mut self, exit: RunExit) -> CoreError {
        self.last_error = exit.describe();
        tracing::warn!(status = %exit.status, error = %self.last_error, "core exited while starting");
        CoreError::StartFailed(self.last_error.clone())
    }
}

/// Has the core check `config` (`-test`), written to `path` for the check
/// and removed afterwards. `Rejected` carries the core's own error line,
/// `Unusable` why the binary could not be run at all.
pub async fn test_config(
    bin: &Path,
    kind: CoreKind,
    path: &Path,
    config: &RenderedConfig<'_>,
) -> Result<(), CoreError> {
    write_config(path, config)?;
    test_written_config(bin, kind, path).await
}

/// [`test_config`] for a config already written to `path`.
pub async fn test_written_config(bin: &Path, kind: CoreKind, path: &Path) -> Result<(), CoreError> {
    let output = run_config_test(bin, &kind.test_args(path)).await;
    // The file holds credentials: never leave it behind.
    let _ = std::fs::remove_file(path);
    let output = output.map_err(CoreError::Unusable)?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut line = pick_error_line(&lines);
    if line.is_empty() {
        line = format!("config test exited with {}", output.status);
    }
    Err(CoreError::Rejected(line))
}

/// Streams `config` to `path`: with 100,000 users it is tens of MiB of
/// JSON that is never held in memory whole.
pub fn write_config(path: &Path, config: &RenderedConfig<'_>) -> Result<(), CoreError> {
    // Private: the config holds every user's credentials.
    write_atomic_with(path, PRIVATE, |out| {
        serde_json::to_writer_pretty(out, config).map_err(std::io::Error::from)
    })
    .map_err(|source| CoreError::WriteConfig {
        path: path.display().to_string(),
        source,
    })
}

/// Runs the core's config test; Err is why it could not be run at all.
async fn run_config_test(bin: &Path, args: &[String]) -> Result<std::process::Output, String> {
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run core binary {}: {e}", bin.display()))?;
    match tokio::time::timeout(VALIDATE_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(format!("core config test failed: {e}")),
        Err(_) => Err(format!(
            "core config test did not finish within {VALIDATE_TIMEOUT:?}"
        )),
    }
}

/// A free loopback port for the core's API (bind port 0, read it, release
/// it), never one of `taken`: an inbound that is down at this moment (its
/// core restarting) would otherwise find its own port held by the API.
pub fn free_loopback_port(taken: &[u16]) -> std::io::Result<u16> {
    // All listeners stay bound until the end, so each try gets a new port.
    let mut held = Vec::new();
    for _ in 0..16 {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        if !taken.contains(&port) {
            return Ok(port);
        }
        held.push(listener);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free loopback port outside the inbounds' ports",
    ))
}
