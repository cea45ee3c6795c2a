//! One server, one service: `serve --local-node` runs a node agent on this
//! host as its child, enrolled with a one-time token this control plane
//! issues to itself and reached over mutual TLS like any other node. A
//! one-server installation is then one service and one command, and grows
//! into a cluster by adding nodes, with nothing to migrate.
//!
//! The agent inherits the environment, so `NEXPOINT_NODE_*` variables
//! (core binary, metrics address, usage interval) configure it as usual.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::nodes::{NodeManager, enrollment};
use crate::pki::Pki;
use crate::store::{NewNode, Store, StoreError};

/// The local node's name in `GET /api/nodes`.
pub const LOCAL_NODE_NAME: &str = "local";
/// Restarts of a failing agent wait from one second up to this.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// The token is used at once; a short life is plenty.
const ENROLLMENT_MINUTES: i64 = 10;
/// How long the agent may take to stop (it reads the core's counters last).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct LocalNode {
    /// The `nexpoint-node` binary.
    pub bin: PathBuf,
    /// Its mutual-TLS port, on loopback.
    pub port: u16,
    /// Its state: `<data dir>/local-node`.
    pub state_dir: PathBuf,
}

impl LocalNode {
    /// `nexpoint-node` next to this binary unless given.
    pub fn new(bin: Option<PathBuf>, port: u16, data_dir: &Path) -> anyhow::Result<Self> {
        let bin = match bin {
            Some(bin) => bin,
            None => std::env::current_exe()
                .context("locating this binary")?
                .with_file_name("nexpoint-node"),
        };
        Ok(Self {
            bin,
            port,
            state_dir: data_dir.join("local-node"),
        })
    }

    /// Enrolls the agent if it is not yet, then keeps it running until
    /// `stop`, restarting it with backoff when it exits.
    pub async fn run(
        self,
        store: Store,
        pki: Arc<Pki>,
        nodes: NodeManager,
        base_url: String,
        stop: CancellationToken,
    ) {
        if let Err(e) = self.enroll(&store, &pki, &nodes, &base_url).await {
            tracing::error!(error = %format!("{e:#}"), "the local node cannot enroll");
            return;
        }
        let mut delay = Duration::from_secs(1);
        loop {
            let mut child = match self.spawn() {
                Ok(child) => child,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the local node cannot start");
                    return;
                }
            };
            let started = tokio::time::Instant::now();
            tokio::select! {
                status = child.wait() => {
                    tracing::warn!(status = ?status.ok(), "the local node exited; restarting in {delay:?}");
                }
                () = stop.cancelled() => {
                    terminate(&mut child).await;
                    return;
                }
            }
            // A run that lasted a while was not a crash loop.
            if started.elapsed() > MAX_RESTART_DELAY {
                delay = Duration::from_secs(1);
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return,
            }
            delay = (delay * 2).min(MAX_RESTART_DELAY);
        }
    }

    async fn enroll(
        &self,
        store: &Store,
        pki: &Pki,
        nodes: &NodeManager,
        base_url: &str,
    ) -> anyhow::Result<()> {
        if self.state_dir.join("enrollment.json").exists() {
            return Ok(());
        }
        let (node, token) = match store.node_by_name(LOCAL_NODE_NAME).await {
            Err(StoreError::NotFound) => {
                let created = enrollment::create(
                    store,
                    NewNode {
                        name: LOCAL_NODE_NAME.into(),
                        address: "127.0.0.1".into(),
                        port: i64::from(self.port),
                        api_port: i64::from(self.port),
                        usage_coefficient: 1.0,
                    },
                    ENROLLMENT_MINUTES,
                    true,
                )
                .await?;
                (created.node, created.token)
            }
            Ok(node) => bail!(
                "a node named {LOCAL_NODE_NAME:?} (id {}) exists but {} holds no enrollment: \
                 delete the node or restore the directory",
                node.id,
                self.state_dir.display()
            ),
            Err(e) => return Err(e.into()),
        };
        nodes.start(node.id);
        let status = Command::new(&self.bin)
            .arg("enroll")
            .arg("--control-plane")
            .arg(base_url)
            .arg("--token")
            .arg(&token)
            .arg("--ca-fingerprint")
            .arg(pki.ca.fingerprint())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .with_context(|| format!("running {}", self.bin.display()))?;
        check(status, "nexpoint-node enroll")?;
        tracing::info!(node = node.id, "local node enrolled");
        Ok(())
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        Command::new(&self.bin)
            .arg("run")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .stdin(std::process::Stdio::null())
            // Its readiness lines are not this daemon's; its logs (stderr)
            // go where ours go.
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))
    }
}

fn check(status: ExitStatus, what: &str) -> anyhow::Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("{what} failed ({status})")
    }
}

/// SIGTERM, so the agent reads the core's counters and stops the core;
/// SIGKILL if it takes too long.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("the local node did not stop in {STOP_TIMEOUT:?}; killing it");
        let _ = child.kill().await;
    }
}
