//! Certificate rotation without downtime: a new key made on the node, the
//! control plane signs its CSR, the node installs the certificate for new
//! handshakes while open connections go on with the old one.
//!
//! The pending key is persisted (`node.next.key`, 0600) at step one, so an
//! agent restarted between the steps still completes the rotation. Each
//! BeginCertificateRotation makes a fresh key and replaces a pending one.

use std::sync::Arc;

use nexpoint_certs::{
    CertError, NodeCertificate, fingerprint_pem, node_key_and_csr, verify_key_matches,
    verify_node_certificate,
};

use crate::atomic_file::{PRIVATE, write_atomic};
use crate::node_identity;
use crate::state_dir::StateDir;

/// The control plane names the node; the CSR's subject is not trusted anyway.
const CSR_COMMON_NAME: &str = "nexpoint-node";

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Not a PEM certificate at all.
    #[error("not a certificate: {0}")]
    Unreadable(CertError),
    #[error(
        "no certificate rotation is pending (BeginCertificateRotation first, or it was already completed with another certificate)"
    )]
    NothingPending,
    #[error(
        "the certificate is not for the pending key (a certificate from an earlier BeginCertificateRotation?)"
    )]
    NotForPendingKey,
    #[error("{0}")]
    Untrusted(CertError),
    #[error("cannot make a key: {0}")]
    KeyGeneration(CertError),
    #[error("cannot persist the node certificate: {0}")]
    Persist(#[source] std::io::Error),
    #[error("cannot serve the new certificate: {0}")]
    Install(CertError),
}

pub struct CertificateRotation {
    state_dir: StateDir,
    node_id: i64,
    ca_pem: String,
    serving: Arc<NodeCertificate>,
    /// One rotation step at a time: they share the files.
    steps: tokio::sync::Mutex<()>,
}

impl CertificateRotation {
    /// `serving` is the certificate the TLS server presents; completing a
    /// rotation replaces it.
    pub fn new(
        state_dir: StateDir,
        node_id: i64,
        ca_pem: String,
        serving: Arc<NodeCertificate>,
    ) -> Self {
        Self {
            state_dir,
            node_id,
            ca_pem,
            serving,
            steps: tokio::sync::Mutex::new(()),
        }
    }

    /// Step 1: a new key, persisted as pending; returns its CSR.
    pub async fn begin(&self) -> Result<String, RotationError> {
        let _step = self.steps.lock().await;
        let (key_pem, csr_pem) =
            node_key_and_csr(CSR_COMMON_NAME).map_err(RotationError::KeyGeneration)?;
        // A leftover certificate for an older pending key must not be
        // mistaken for this one's after a crash.
        node_identity::discard_rotation(&self.state_dir).map_err(RotationError::Persist)?;
        write_atomic(&self.state_dir.node_next_key(), key_pem.as_bytes(), PRIVATE)
            .map_err(RotationError::Persist)?;
        tracing::info!("certificate rotation begun; new key pending");
        Ok(csr_pem)
    }

    /// Step 2: checks `cert_pem` (for the pending key, issued by our CA for
    /// this node, valid now), persists it with its key as the node's pair,
    /// then serves it. Returns its fingerprint. Completing again with the
    /// certificate already installed answers the same (a retried call).
    pub async fn complete(&self, cert_pem: &str) -> Result<String, RotationError> {
        let _step = self.steps.lock().await;
        let fingerprint = fingerprint_pem(cert_pem).map_err(RotationError::Unreadable)?;
        let pending = match std::fs::read_to_string(self.state_dir.node_next_key()) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if fingerprint == self.serving.fingerprint() {
                    return Ok(fingerprint);
                }
                return Err(RotationError::NothingPending);
            }
            Err(e) => return Err(RotationError::Persist(e)),
        };
        match verify_key_matches(cert_pem, &pending) {
            Ok(()) => {}
            Err(CertError::KeyMismatch) => return Err(RotationError::NotForPendingKey),
            Err(e) => return Err(RotationError::Untrusted(e)),
        }
        verify_node_certificate(&self.ca_pem, cert_pem, self.node_id)
            .map_err(RotationError::Untrusted)?;
        // Disk first: a certificate served but not persisted would be lost
        // on restart while the control plane already pins it.
        node_identity::install_next(&self.state_dir, cert_pem).map_err(RotationError::Persist)?;
        self.serving
            .replace(cert_pem, &pending)
            .map_err(RotationError::Install)?;
        tracing::info!(%fingerprint, "certificate rotated; new handshakes use it");
        Ok(fingerprint)
    }

    /// The fingerprint of the certificate new handshakes get.
    pub fn serving_fingerprint(&self) -> String {
        self.serving.fingerprint()
    }
}
