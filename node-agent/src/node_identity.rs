//! The node's certificate and key on disk, replaced as a pair.
//!
//! Two files cannot be renamed atomically together, so a rotation moves the
//! new pair in by steps that each leave a matching pair somewhere:
//!
//! 1. `node.next.key` (written by BeginCertificateRotation) and
//!    `node.next.pem` (written atomically) form the new pair; `node.key` and
//!    `node.pem` are still the old one.
//! 2. `node.next.key` is renamed over `node.key`: the new pair is now
//!    `node.key` + `node.next.pem`.
//! 3. `node.next.pem` is renamed over `node.pem`: done.
//!
//! [`recover`] runs before the agent loads its certificate and finishes a
//! rotation cut short by a crash at any of these points. Rolling forward is
//! safe: the control plane pinned the new certificate (beside the old one)
//! before it asked the node to install it.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use anyhow::Context;
use nexpoint_certs::verify_key_matches;

use crate::atomic_file::{PUBLIC, write_atomic};
use crate::state_dir::StateDir;

/// Installs `cert_pem`, the certificate for the key in `node.next.key`, as
/// the node's certificate (steps 1 to 3 above).
pub fn install_next(state_dir: &StateDir, cert_pem: &str) -> io::Result<()> {
    write_atomic(&state_dir.node_next_cert(), cert_pem.as_bytes(), PUBLIC)?;
    fs::rename(state_dir.node_next_key(), state_dir.node_key())?;
    fs::rename(state_dir.node_next_cert(), state_dir.node_cert())?;
    sync_dir(state_dir.root())
}

/// Finishes a rotation a crash interrupted, and drops a `node.next.pem` that
/// matches no key. A lone `node.next.key` is a rotation still waiting for
/// its certificate and stays.
pub fn recover(state_dir: &StateDir) -> anyhow::Result<()> {
    let Some(next_cert) = read_if_exists(&state_dir.node_next_cert())? else {
        return Ok(());
    };
    let next_key = read_if_exists(&state_dir.node_next_key())?;
    let current_key = read_if_exists(&state_dir.node_key())?;
    let matches = |key: &Option<String>| {
        key.as_deref()
            .is_some_and(|key| verify_key_matches(&next_cert, key).is_ok())
    };
    let result = if matches(&next_key) {
        tracing::warn!("finishing a certificate rotation interrupted before its key was moved");
        fs::rename(state_dir.node_next_key(), state_dir.node_key())
            .and_then(|()| fs::rename(state_dir.node_next_cert(), state_dir.node_cert()))
    } else if matches(&current_key) {
        tracing::warn!("finishing a certificate rotation interrupted after its key was moved");
        fs::rename(state_dir.node_next_cert(), state_dir.node_cert())
    } else {
        tracing::warn!("removing a rotated certificate that matches no key");
        fs::remove_file(state_dir.node_next_cert())
    };
    result
        .and_then(|()| sync_dir(state_dir.root()))
        .with_context(|| {
            format!(
                "cannot finish the certificate rotation in {}",
                state_dir.root().display()
            )
        })
}

/// Forgets any rotation in progress (a new enrollment replaces the identity).
pub fn discard_rotation(state_dir: &StateDir) -> io::Result<()> {
    for path in [state_dir.node_next_cert(), state_dir.node_next_key()] {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn read_if_exists(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Makes the renames themselves durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_file::PRIVATE;
    use nexpoint_certs::{CertificateAuthority, node_key_and_csr};

    struct Pair {
        cert: String,
        key: String,
    }

    fn pair(ca: &CertificateAuthority) -> Pair {
        let (key, csr) = node_key_and_csr("n").unwrap();
        let cert = ca.sign_node_csr(&csr, 1, time::Duration::days(1)).unwrap();
        Pair { cert, key }
    }

    fn read(path: std::path::PathBuf) -> String {
        fs::read_to_string(path).unwrap()
    }

    /// A state dir with `old` installed and `new`'s key pending.
    fn state(dir: &Path, old: &Pair, new: &Pair) -> StateDir {
        let state = StateDir::new(dir);
        write_atomic(&state.node_cert(), old.cert.as_bytes(), PUBLIC).unwrap();
        write_atomic(&state.node_key(), old.key.as_bytes(), PRIVATE).unwrap();
        write_atomic(&state.node_next_key(), new.key.as_bytes(), PRIVATE).unwrap();
        state
    }

    fn assert_installed(state: &StateDir, pair: &Pair) {
        assert_eq!(read(state.node_cert()), pair.cert);
        assert_eq!(read(state.node_key()), pair.key);
        assert!(!state.node_next_cert().exists());
        assert!(!state.node_next_key().exists());
    }

    #[test]
    fn install_replaces_the_pair_and_keeps_the_key_private() {
        use std::os::unix::fs::PermissionsExt;
        let ca = CertificateAuthority::generate().unwrap();
        let (old, new) = (pair(&ca), pair(&ca));
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), &old, &new);
        install_next(&state, &new.cert).unwrap();
        assert_installed(&state, &new);
        let mode = fs::metadata(state.node_key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        recover(&state).unwrap();
        assert_installed(&state, &new);
    }

    #[test]
    fn a_crash_before_the_key_moved_rolls_forward() {
        let ca = CertificateAuthority::generate().unwrap();
        let (old, new) = (pair(&ca), pair(&ca));
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), &old, &new);
        write_atomic(&state.node_next_cert(), new.cert.as_bytes(), PUBLIC).unwrap();
        recover(&state).unwrap();
        assert_installed(&state, &new);
    }

    #[test]
    fn a_crash_between_the_renames_rolls_forward() {
        let ca = CertificateAuthority::generate().unwrap();
        let (old, new) = (pair(&ca), pair(&ca));
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), &old, &new);
        write_atomic(&state.node_next_cert(), new.cert.as_bytes(), PUBLIC).unwrap();
        fs::rename(state.node_next_key(), state.node_key()).unwrap();
        // node.key is new, node.pem still old: a mismatched pair on its own.
        assert!(verify_key_matches(&read(state.node_cert()), &read(state.node_key())).is_err());
        recover(&state).unwrap();
        assert_installed(&state, &new);
    }

    #[test]
    fn a_pending_rotation_without_certificate_is_left_alone() {
        let ca = CertificateAuthority::generate().unwrap();
        let (old, new) = (pair(&ca), pair(&ca));
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), &old, &new);
        recover(&state).unwrap();
        assert_eq!(read(state.node_cert()), old.cert);
        assert_eq!(read(state.node_key()), old.key);
        assert_eq!(read(state.node_next_key()), new.key);
    }

    #[test]
    fn a_stray_certificate_matching_no_key_is_dropped() {
        let ca = CertificateAuthority::generate().unwrap();
        let (old, new, stray) = (pair(&ca), pair(&ca), pair(&ca));
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), &old, &new);
        write_atomic(&state.node_next_cert(), stray.cert.as_bytes(), PUBLIC).unwrap();
        recover(&state).unwrap();
        assert!(!state.node_next_cert().exists());
        assert_eq!(read(state.node_cert()), old.cert);
        assert_eq!(read(state.node_key()), old.key);
        assert_eq!(read(state.node_next_key()), new.key, "still pending");
    }

    #[test]
    fn discarding_a_rotation_removes_its_files() {
        let ca = CertificateAuthority::generate().unwrap();
        let (old, new) = (pair(&ca), pair(&ca));
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), &old, &new);
        write_atomic(&state.node_next_cert(), new.cert.as_bytes(), PUBLIC).unwrap();
        discard_rotation(&state).unwrap();
        discard_rotation(&state).unwrap();
        assert!(!state.node_next_cert().exists());
        assert!(!state.node_next_key().exists());
        assert_eq!(read(state.node_cert()), old.cert);
    }
}
