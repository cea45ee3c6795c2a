//! The agent's state directory: where every file it keeps lives.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/nexpoint-node";

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the directory (mode 0700: it holds the node key) if missing.
    pub fn create(&self) -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn node_key(&self) -> PathBuf {
        self.root.join("node.key")
    }

    pub fn node_cert(&self) -> PathBuf {
        self.root.join("node.pem")
    }

    /// The key of a certificate rotation in progress (between
    /// BeginCertificateRotation and CompleteCertificateRotation).
    pub fn node_next_key(&self) -> PathBuf {
        self.root.join("node.next.key")
    }

    /// The certificate for `node.next.key`, present only while a completed
    /// rotation is being moved into place (see `node_identity`).
    pub fn node_next_cert(&self) -> PathBuf {
        self.root.join("node.next.pem")
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    pub fn control_plane_cert(&self) -> PathBuf {
        self.root.join("control-plane.pem")
    }

    pub fn enrollment(&self) -> PathBuf {
        self.root.join("enrollment.json")
    }

    /// The last applied snapshot (protobuf `Snapshot`), restored on start.
    pub fn applied_state(&self) -> PathBuf {
        self.root.join("applied-state.pb")
    }

    pub fn usage_journal(&self) -> PathBuf {
        self.root.join("usage-journal.json")
    }

    /// The rendered config the running core was started with.
    pub fn core_config(&self) -> PathBuf {
        self.root.join("core.json")
    }

    /// The running core's pid, run identity and API port: lets an agent that
    /// was killed find the core it left behind.
    pub fn core_run(&self) -> PathBuf {
        self.root.join("core-run.json")
    }

    /// The core's stdout and stderr. A file, not pipes to the agent: a core
    /// whose agent died must not die of a broken pipe on its next log line,
    /// so the next agent can adopt it with its counters intact.
    pub fn core_log(&self) -> PathBuf {
        self.root.join("core.log")
    }

    /// A rendered config being validated before it replaces the running one.
    pub fn candidate_core_config(&self) -> PathBuf {
        self.root.join("core.candidate.json")
    }

    /// A rendered config checked on request (TestCoreConfig), never run.
    pub fn tested_core_config(&self) -> PathBuf {
        self.root.join("core.test.json")
    }
}
