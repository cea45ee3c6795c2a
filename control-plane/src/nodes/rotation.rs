//! Node certificates: issuing them and rotating them before they expire.
//!
//! Rotation never interrupts service: the node makes a new key and CSR, the
//! control plane signs it and pins the result beside the current certificate
//! (so a crash at any step leaves a certificate the control plane trusts),
//! the node installs it for new handshakes, and only then does it become the
//! one pinned. Connections already open keep running on the old one.

use nexpoint_proto::agent::{BeginCertificateRotationRequest, CompleteCertificateRotationRequest};

use super::client::Agent;
use crate::pki::Pki;
use crate::store::{IssuedNodeCertificate, Store, StoreError};

/// How long a node certificate is valid.
pub const NODE_CERTIFICATE_DAYS: i64 = 365;
/// Rotate once less than this much of a certificate's life is left.
const ROTATE_WHEN_DAYS_LEFT: i64 = NODE_CERTIFICATE_DAYS / 3;

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("agent: {}", .0.message())]
    Agent(#[from] tonic::Status),
    #[error("the node's certificate request: {0}")]
    Csr(nexpoint_certs::CertError),
    #[error("issued certificate: {0}")]
    Issued(nexpoint_certs::CertError),
    #[error("the node installed a certificate other than the one issued ({0})")]
    Mismatch(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Signs a node's CSR for its name with the standard validity.
pub fn issue(
    pki: &Pki,
    node_id: i64,
    csr_pem: &str,
) -> Result<IssuedNodeCertificate, RotationError> {
    let pem = pki
        .ca
        .sign_node_csr(
            csr_pem,
            node_id,
            time::Duration::days(NODE_CERTIFICATE_DAYS),
        )
        .map_err(RotationError::Csr)?;
    let fingerprint = nexpoint_certs::fingerprint_pem(&pem).map_err(RotationError::Issued)?;
    let not_after = nexpoint_certs::certificate_not_after(&pem).map_err(RotationError::Issued)?;
    Ok(IssuedNodeCertificate {
        pem,
        fingerprint,
        not_after,
    })
}

/// Whether a certificate valid until `not_after` is old enough to rotate.
pub fn due(not_after: Option<i64>, now: i64) -> bool {
    not_after.is_some_and(|not_after| not_after - now < ROTATE_WHEN_DAYS_LEFT * 86_400)
}

/// Rotates the certificate of the node `agent` is connected to; returns the
/// new fingerprint.
pub async fn rotate(
    pki: &Pki,
    store: &Store,
    agent: &mut Agent,
    node_id: i64,
) -> Result<String, RotationError> {
    let csr = agent
        .begin_certificate_rotation(BeginCertificateRotationRequest {})
        .await?
        .into_inner()
        .csr_pem;
    let next = issue(pki, node_id, &csr)?;
    store.pin_next_node_certificate(node_id, &next).await?;
    let installed = agent
        .complete_certificate_rotation(CompleteCertificateRotationRequest {
            certificate_pem: next.pem.clone(),
        })
        .await?
        .into_inner()
        .fingerprint;
    if installed != next.fingerprint {
        return Err(RotationError::Mismatch(installed));
    }
    store
        .promote_next_node_certificate(node_id, &next.fingerprint)
        .await?;
    tracing::info!(node = node_id, fingerprint = %next.fingerprint, "node certificate rotated");
    Ok(next.fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_due_in_the_last_third_of_a_certificates_life() {
        let now = 1_000_000_000;
        assert!(!due(None, now), "no certificate, nothing to rotate");
        assert!(!due(Some(now + NODE_CERTIFICATE_DAYS * 86_400), now));
        assert!(!due(Some(now + (ROTATE_WHEN_DAYS_LEFT + 1) * 86_400), now));
        assert!(due(Some(now + (ROTATE_WHEN_DAYS_LEFT - 1) * 86_400), now));
        assert!(due(Some(now - 1), now), "an expired certificate is overdue");
    }
}
