//! `nexpoint-node check`: everything `run` needs, checked one by one, each
//! finding said with the file or binary it concerns and what to do.

use std::path::{Path, PathBuf};

use crate::cli::RunArgs;
use crate::core_kind::{default_core_bin, detect};
use crate::enroll::load_enrollment;
use crate::state_dir::StateDir;

/// A certificate that expires sooner than this is reported (rotation
/// should have replaced it long before).
const EXPIRY_WARNING_DAYS: i64 = 30;

/// One line of the report.
pub struct Finding {
    pub ok: bool,
    pub message: String,
}

impl Finding {
    fn ok(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: message.into(),
        }
    }

    fn problem(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
        }
    }
}

/// Every check; the state-dir ones stop at the first missing piece (the
/// later ones would only repeat it).
pub async fn check(args: &RunArgs) -> Vec<Finding> {
    let mut findings = Vec::new();
    let state_dir = StateDir::new(&args.state_dir);
    match identity(&state_dir) {
        Ok(found) => findings.extend(found),
        Err(problem) => findings.push(Finding::problem(problem)),
    }
    findings.push(core(args.core_bin.clone()).await);
    findings
}

fn identity(state_dir: &StateDir) -> Result<Vec<Finding>, String> {
    let mut found = Vec::new();
    let enrollment = load_enrollment(state_dir).map_err(|e| format!("{e:#}"))?;
    found.push(Finding::ok(format!(
        "enrolled as node {} ({}) with {}",
        enrollment.node_id, enrollment.name, enrollment.control_plane
    )));
    let ca = read(&state_dir.ca_cert())?;
    let cert = read(&state_dir.node_cert())?;
    let key = read(&state_dir.node_key())?;
    let control_plane = read(&state_dir.control_plane_cert())?;
    let node_cert = state_dir.node_cert();
    nexpoint_certs::verify_key_matches(&cert, &key).map_err(|e| {
        format!(
            "{} does not belong to {}: {e} (enroll again with --force)",
            state_dir.node_key().display(),
            node_cert.display()
        )
    })?;
    nexpoint_certs::verify_node_certificate(&ca, &cert, enrollment.node_id).map_err(|e| {
        format!(
            "{}: {e} (rotate it from the control plane, or enroll again with --force)",
            node_cert.display()
        )
    })?;
    let not_after = nexpoint_certs::certificate_not_after(&cert)
        .map_err(|e| format!("{}: {e}", node_cert.display()))?;
    let days_left = (not_after - unix_now()) / 86_400;
    let validity = format!("{} is valid, {days_left} days left", node_cert.display());
    found.push(if days_left < EXPIRY_WARNING_DAYS {
        Finding::problem(format!(
            "{validity}: rotation has not renewed it; is the control plane reaching this node?"
        ))
    } else {
        Finding::ok(validity)
    });
    nexpoint_certs::verify_control_plane_certificate(&ca, &control_plane).map_err(|e| {
        format!(
            "{}: {e} (enroll again with --force)",
            state_dir.control_plane_cert().display()
        )
    })?;
    found.push(Finding::ok(format!(
        "{} is signed by {}",
        state_dir.control_plane_cert().display(),
        state_dir.ca_cert().display()
    )));
    Ok(found)
}

async fn core(bin: Option<PathBuf>) -> Finding {
    let Some(bin) = bin.or_else(default_core_bin) else {
        return Finding::problem(
            "no core: neither xray nor v2ray is on PATH; install one or pass --core-bin \
             (NEXPOINT_NODE_CORE_BIN)",
        );
    };
    match detect(&bin).await {
        Ok(identity) => Finding::ok(format!(
            "core {} is {} {}",
            bin.display(),
            identity.kind.as_str(),
            identity.version
        )),
        Err(e) => Finding::problem(e.to_string()),
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e} (enroll again with --force)",
            path.display()
        )
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
