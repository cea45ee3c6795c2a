//! Enrollment. Online, with a one-time token: the node generates its key and
//! a CSR locally (the key never leaves the node), the control plane signs the
//! CSR and returns the certificates both sides pin. Offline, with a bundle
//! (see [`crate::enroll_bundle`]). Both write the same state files.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::atomic_file::{PRIVATE, PUBLIC, write_atomic};
use crate::cli::{EnrollArgs, EnrollSource};
use crate::state_dir::StateDir;
use crate::{enroll_bundle, node_identity};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The control plane names the node; the CSR's subject is not trusted anyway.
const CSR_COMMON_NAME: &str = "nexpoint-node";

#[derive(Debug, Serialize)]
struct EnrollRequest<'a> {
    token: &'a str,
    csr: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct EnrollResponse {
    pub node_id: i64,
    pub node_name: String,
    pub certificate: String,
    pub ca_certificate: String,
    pub control_plane_certificate: String,
}

/// What `run` needs to know about the enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub node_id: i64,
    pub name: String,
    pub control_plane: String,
}

/// The certificates and key an enrollment leaves in the state dir.
pub struct Identity {
    pub key_pem: String,
    pub certificate: String,
    pub ca_certificate: String,
    pub control_plane_certificate: String,
}

pub async fn enroll(args: &EnrollArgs) -> anyhow::Result<Enrollment> {
    let state_dir = StateDir::new(&args.state_dir);
    if !args.force && state_dir.enrollment().exists() {
        bail!(
            "{} already holds an enrollment; pass --force to enroll again",
            state_dir.root().display()
        );
    }
    let (identity, enrollment) = match args.source() {
        EnrollSource::Token {
            control_plane,
            token,
        } => enroll_with_token(&control_plane, &token).await?,
        EnrollSource::Bundle(text) => enroll_bundle::from_text(&text)?,
        EnrollSource::BundleFile(path) => enroll_bundle::from_file(&path)?,
    };

    let ca_fingerprint = nexpoint_certs::fingerprint_pem(&identity.ca_certificate)
        .context("the CA certificate is invalid")?;
    if let Some(expected) = &args.ca_fingerprint
        && normalize_fingerprint(expected) != ca_fingerprint
    {
        bail!(
            "the control plane's CA fingerprint is {ca_fingerprint}, not the expected {}; nothing written",
            normalize_fingerprint(expected)
        );
    }
    write_enrollment(&state_dir, &identity, &enrollment)?;
    Ok(enrollment)
}

async fn enroll_with_token(
    control_plane: &str,
    token: &str,
) -> anyhow::Result<(Identity, Enrollment)> {
    let (key_pem, csr_pem) = nexpoint_certs::node_key_and_csr(CSR_COMMON_NAME)
        .context("cannot generate the node key")?;

    let url = format!("{}/api/node/enroll", control_plane.trim_end_matches('/'));
    let response = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?
        .post(&url)
        .json(&EnrollRequest {
            token,
            csr: &csr_pem,
        })
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("enrollment refused ({status}): {}", error_detail(&body));
    }
    let enrolled: EnrollResponse = response
        .json()
        .await
        .context("the control plane's enrollment answer is not what was expected")?;

    nexpoint_certs::fingerprint_pem(&enrolled.ca_certificate)
        .context("the returned CA certificate is invalid")?;
    nexpoint_certs::fingerprint_pem(&enrolled.certificate)
        .context("the returned node certificate is invalid")?;
    nexpoint_certs::fingerprint_pem(&enrolled.control_plane_certificate)
        .context("the returned control plane certificate is invalid")?;

    let enrollment = Enrollment {
        node_id: enrolled.node_id,
        name: enrolled.node_name,
        control_plane: control_plane.to_string(),
    };
    let identity = Identity {
        key_pem,
        certificate: enrolled.certificate,
        ca_certificate: enrolled.ca_certificate,
        control_plane_certificate: enrolled.control_plane_certificate,
    };
    Ok((identity, enrollment))
}

/// Each file is replaced atomically; enrollment.json goes last, so its
/// presence means the rest is complete. A certificate rotation of an earlier
/// enrollment is dropped first: finishing it on the next start would replace
/// the new identity with the old one's.
fn write_enrollment(
    state_dir: &StateDir,
    identity: &Identity,
    enrollment: &Enrollment,
) -> anyhow::Result<()> {
    state_dir
        .create()
        .with_context(|| format!("cannot create {}", state_dir.root().display()))?;
    node_identity::discard_rotation(state_dir).with_context(|| {
        format!(
            "cannot remove the pending rotation in {}",
            state_dir.root().display()
        )
    })?;
    let files = [
        (state_dir.node_key(), identity.key_pem.as_bytes(), PRIVATE),
        (
            state_dir.node_cert(),
            identity.certificate.as_bytes(),
            PUBLIC,
        ),
        (
            state_dir.ca_cert(),
            identity.ca_certificate.as_bytes(),
            PUBLIC,
        ),
        (
            state_dir.control_plane_cert(),
            identity.control_plane_certificate.as_bytes(),
            PUBLIC,
        ),
    ];
    for (path, contents, mode) in files {
        write_atomic(&path, contents, mode)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let path = state_dir.enrollment();
    write_atomic(&path, &serde_json::to_vec_pretty(enrollment)?, PUBLIC)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The server's `detail` (a string, or anything JSON), else the raw body.
fn error_detail(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(json) => match json.get("detail") {
            Some(serde_json::Value::String(detail)) => detail.clone(),
            Some(other) => other.to_string(),
            None => body.to_string(),
        },
        Err(_) if body.is_empty() => "no detail given".into(),
        Err(_) => body.to_string(),
    }
}

/// Accepts `AB:CD...`, `abcd...`, with or without spaces.
pub fn normalize_fingerprint(input: &str) -> String {
    input
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub fn load_enrollment(state_dir: &StateDir) -> anyhow::Result<Enrollment> {
    let path = state_dir.enrollment();
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "not enrolled: cannot read {} (run `nexpoint-node enroll` first)",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is corrupt", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_normalized() {
        assert_eq!(normalize_fingerprint("AB:cd:0F"), "abcd0f");
        assert_eq!(normalize_fingerprint(" abcd 0f\n"), "abcd0f");
    }

    #[test]
    fn details_are_extracted() {
        assert_eq!(
            error_detail(r#"{"detail": "token expired"}"#),
            "token expired"
        );
        assert_eq!(
            error_detail(r#"{"detail": {"token": "used"}}"#),
            r#"{"token":"used"}"#
        );
        assert_eq!(error_detail("plain"), "plain");
        assert_eq!(error_detail(""), "no detail given");
    }
}
