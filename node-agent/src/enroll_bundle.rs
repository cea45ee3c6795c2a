//! Offline enrollment from a bundle the control plane made
//! (`nexpoint node bundle NAME`): for hosts that cannot reach the control
//! plane while they are set up. The bundle carries the node's key, so it is
//! read from a file or standard input rather than the command line when
//! possible (a command line shows up in `ps` and shell history).

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use nexpoint_certs::NodeBundle;

use crate::enroll::{Enrollment, Identity};

/// A bundle given as text; checked (CA signature, node name, key) before
/// anything is written.
pub fn from_text(text: &str) -> anyhow::Result<(Identity, Enrollment)> {
    let bundle = NodeBundle::decode(text).context("the enrollment bundle cannot be used")?;
    let enrollment = Enrollment {
        node_id: bundle.node_id,
        name: bundle.node_name,
        control_plane: bundle.control_plane,
    };
    let identity = Identity {
        key_pem: bundle.key,
        certificate: bundle.certificate,
        ca_certificate: bundle.ca_certificate,
        control_plane_certificate: bundle.control_plane_certificate,
    };
    Ok((identity, enrollment))
}

/// A bundle in a file; `-` is standard input.
pub fn from_file(path: &Path) -> anyhow::Result<(Identity, Enrollment)> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the bundle from standard input")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the bundle file {}", path.display()))?
    };
    from_text(&text)
}
