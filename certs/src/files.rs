use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::CertError;

/// Writes `contents` to `path` with mode 0600, atomically: a temporary file in
/// the same directory is written, synced and renamed over the target, so a
/// crash never leaves a truncated key behind.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    write_atomic(path, contents, 0o600)
}

pub(crate) fn write_public_file(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    write_atomic(path, contents, 0o644)
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(CertError::io(dir))?;
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(CertError::io(&tmp))?;
    // The mode given to open() only applies to new files.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(CertError::io(&tmp))?;
    file.write_all(contents).map_err(CertError::io(&tmp))?;
    file.sync_all().map_err(CertError::io(&tmp))?;
    fs::rename(&tmp, path).map_err(CertError::io(path))?;
    Ok(())
}
