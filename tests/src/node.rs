//! A node under test: `nexpoint-node enroll`, then `nexpoint-node run` with a
//! real core, on a temporary state dir.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use tempfile::TempDir;

use crate::control_plane::{ControlPlane, CreatedNode};
use crate::net::{free_port, wait_until};
use crate::paths::node_bin;
use crate::process::{ChildProcess, Stream, kill_processes_mentioning};

/// The agent's usage interval in tests.
pub const USAGE_INTERVAL_MS: u64 = 500;

/// Runs `nexpoint-node enroll` to completion; returns its exit status and output.
pub async fn enroll(
    control_plane_url: &str,
    token: &str,
    ca_fingerprint: &str,
    state_dir: &Path,
) -> Result<(ExitStatus, String)> {
    // `--token=T`, not `--token T`: a base64url token may start with '-',
    // which the CLI would take for a flag.
    let token_arg = format!("--token={token}");
    let mut p = ChildProcess::spawn(
        "nexpoint-node enroll",
        node_bin(),
        [
            "enroll",
            "--control-plane",
            control_plane_url,
            &token_arg,
            "--ca-fingerprint",
            ca_fingerprint,
            "--state-dir",
            &state_dir.display().to_string(),
        ],
        &[("NO_COLOR", "1")],
    )?;
    let status = p.wait_exit(Duration::from_secs(60)).await?;
    Ok((status, p.output_text()))
}

pub struct Node {
    pub created: CreatedNode,
    pub agent_port: u16,
    pub core_bin: PathBuf,
    pub state_dir: TempDir,
    pub process: ChildProcess,
}

impl Node {
    /// Creates the node on the control plane, enrolls it and runs the agent
    /// with `core_bin`; returns once the agent prints `listening on …`.
    pub async fn start(cp: &ControlPlane, name: &str, core_bin: &Path) -> Result<Self> {
        let agent_port = free_port();
        let created = cp.create_node(name, agent_port).await?;
        let state_dir = tempfile::Builder::new().prefix("nexpoint-node").tempdir()?;
        let (status, output) = enroll(
            &cp.base_url,
            &created.enrollment_token,
            &created.ca_fingerprint,
            state_dir.path(),
        )
        .await?;
        ensure!(
            status.success(),
            "`nexpoint-node enroll` with the token from POST /api/node failed ({status}):\n{output}"
        );

        let process = spawn_agent(name, state_dir.path(), agent_port, core_bin).await?;
        Ok(Self {
            created,
            agent_port,
            core_bin: core_bin.to_path_buf(),
            state_dir,
            process,
        })
    }

    /// Runs the agent on a state dir enrolled some other way (an offline
    /// bundle) for the node `created`, listening on `agent_port`.
    pub async fn start_enrolled(
        created: CreatedNode,
        state_dir: TempDir,
        agent_port: u16,
        core_bin: &Path,
    ) -> Result<Self> {
        let process = spawn_agent(&created.name, state_dir.path(), agent_port, core_bin).await?;
        Ok(Self {
            created,
            agent_port,
            core_bin: core_bin.to_path_buf(),
            state_dir,
            process,
        })
    }

    /// Stops the agent with SIGTERM (SIGKILL after 10 s). Its core may keep running.
    pub async fn stop_agent(&mut self) -> Result<ExitStatus> {
        self.process.terminate(Duration::from_secs(10)).await
    }

    /// Kills the agent with SIGKILL, as a crash would; its core keeps running.
    pub async fn kill_agent(&mut self) -> Result<ExitStatus> {
        self.process.kill().await
    }

    /// Starts the agent again on the same state dir and port (stopping it first if it runs).
    pub async fn restart_agent(&mut self) -> Result<()> {
        self.stop_agent().await?;
        self.process = spawn_agent(
            &self.created.name,
            self.state_dir.path(),
            self.agent_port,
            &self.core_bin,
        )
        .await?;
        Ok(())
    }

    /// The agent's `/metrics` URL, from its `metrics on …` line.
    pub fn metrics_url(&self) -> Result<String> {
        self.process
            .output_text()
            .lines()
            .find_map(|l| l.strip_prefix("metrics on "))
            .map(str::to_owned)
            .context("the agent printed no `metrics on <url>` line")
    }

    pub fn id(&self) -> i64 {
        self.created.id
    }

    /// Waits until GET /api/nodes shows this node `connected`.
    pub async fn wait_connected(&self, cp: &ControlPlane, timeout: Duration) -> Result<Value> {
        let id = self.id();
        wait_until(
            timeout,
            &format!("node {id} to be `connected`"),
            || async move {
                let node = cp.node(id).await?;
                if node["status"] == "connected" {
                    Ok(node)
                } else {
                    bail!("status {} message {}", node["status"], node["message"])
                }
            },
        )
        .await
    }

    /// The agent's rendered core config: the `.json` in the state dir that
    /// contains the `nexpoint-api` inbound.
    pub fn core_config(&self) -> Result<(PathBuf, Value)> {
        find_core_config(self.state_dir.path())
    }

    /// The port of the core's API inbound (`nexpoint-api`), waiting (bounded)
    /// for the agent to have written its core config.
    pub async fn core_api_port(&self, timeout: Duration) -> Result<u16> {
        wait_until(
            timeout,
            "the agent's core config with `nexpoint-api`",
            || async {
                let (path, config) = self.core_config()?;
                api_port(&config).with_context(|| format!("in {}", path.display()))
            },
        )
        .await
    }
}

/// `nexpoint-node run`, waiting for its `listening on …` line.
async fn spawn_agent(
    name: &str,
    state_dir: &Path,
    agent_port: u16,
    core_bin: &Path,
) -> Result<ChildProcess> {
    let listen = format!("127.0.0.1:{agent_port}");
    let mut process = ChildProcess::spawn(
        format!("nexpoint-node {name}"),
        node_bin(),
        [
            "run",
            "--state-dir",
            &state_dir.display().to_string(),
            "--listen",
            &listen,
            "--core-bin",
            &core_bin.display().to_string(),
            "--usage-interval-ms",
            &USAGE_INTERVAL_MS.to_string(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[("NO_COLOR", "1")],
    )?;
    process
        .wait_for_line(Some(Stream::Stdout), Duration::from_secs(30), |l| {
            l.starts_with("listening on ")
        })
        .await
        .context("`nexpoint-node run` readiness line `listening on <addr>`")?;
    Ok(process)
}

impl Drop for Node {
    fn drop(&mut self) {
        // The agent leaves its core running when it dies (by design), so
        // stop everything started with this state dir: agent and core.
        let killed = kill_processes_mentioning(self.state_dir.path());
        if !killed.is_empty() {
            eprintln!(
                "[{}] killed processes of {}: {killed:?}",
                self.process.name(),
                self.state_dir.path().display()
            );
        }
    }
}

fn api_port(config: &Value) -> Result<u16> {
    let inbound = config["inbounds"]
        .as_array()
        .and_then(|ins| ins.iter().find(|i| i["tag"] == "nexpoint-api"))
        .context("no inbound tagged nexpoint-api")?;
    let port = inbound["port"]
        .as_u64()
        .or_else(|| inbound["port"].as_str().and_then(|s| s.parse().ok()))
        .context("nexpoint-api inbound without a numeric port")?;
    Ok(u16::try_from(port)?)
}

/// Scans `dir` recursively for a JSON file mentioning `nexpoint-api`.
pub fn find_core_config(dir: &Path) -> Result<(PathBuf, Value)> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                if !text.contains("nexpoint-api") {
                    continue;
                }
                if let Ok(config) = serde_json::from_str::<Value>(&text)
                    && config["inbounds"].is_array()
                {
                    return Ok((path, config));
                }
            }
        }
    }
    bail!(
        "no .json with the `nexpoint-api` inbound under {}",
        dir.display()
    )
}
