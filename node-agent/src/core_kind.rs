//! Which core a binary is (Xray or V2Ray 4.x) and how to drive it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// How long `core -version` may take before the binary is declared unusable.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreKind {
    Xray,
    V2Ray,
}

impl CoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CoreKind::Xray => "xray",
            CoreKind::V2Ray => "v2ray",
        }
    }

    /// Arguments that run the core with a config file.
    pub fn run_args(self, config: &Path) -> Vec<String> {
        let config = config.display().to_string();
        match self {
            CoreKind::Xray => vec!["run".into(), "-c".into(), config],
            CoreKind::V2Ray => vec!["-config".into(), config],
        }
    }

    /// Arguments that only validate a config file and exit.
    pub fn test_args(self, config: &Path) -> Vec<String> {
        let config = config.display().to_string();
        match self {
            CoreKind::Xray => vec!["run".into(), "-test".into(), "-c".into(), config],
            CoreKind::V2Ray => vec!["-test".into(), "-config".into(), config],
        }
    }
}

impl fmt::Display for CoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreIdentity {
    pub kind: CoreKind,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("cannot run core binary {path}: {source}")]
    Spawn {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("core binary {path} did not print its version within {VERSION_TIMEOUT:?}")]
    Timeout { path: String },
    #[error("core binary {path} is neither Xray nor V2Ray 4.x (version output: {first_line:?})")]
    Unknown { path: String, first_line: String },
}

/// Parses the first line of `xray version` / `v2ray -version`.
/// `Xray 25.3.6 (Xray, Penetrates Everything.) ...` or
/// `V2Ray 4.34.0 (user) 20230518-074445 (go1.19.8 linux/amd64)`.
/// V2Ray 5 changed the config format and CLI, so only 4.x counts as V2Ray.
pub fn parse_version_line(line: &str) -> Option<CoreIdentity> {
    let mut words = line.split_whitespace();
    let name = words.next()?;
    let version = words.next()?;
    let version = version.strip_prefix('v').unwrap_or(version);
    let numeric = version.split('.').all(|p| !p.is_empty())
        && version.starts_with(|c: char| c.is_ascii_digit());
    if !numeric {
        return None;
    }
    let kind = match name {
        "Xray" => CoreKind::Xray,
        "V2Ray" if version.starts_with("4.") => CoreKind::V2Ray,
        _ => return None,
    };
    Some(CoreIdentity {
        kind,
        version: version.to_string(),
    })
}

/// Runs the binary to learn what it is. `-version` first: V2Ray 4.x knows only
/// the flag (given `version` it would try to read a config from stdin) and
/// Xray maps the V4-style flag to its `version` command. `version` second, for
/// Xray builds without that compatibility.
pub async fn detect(bin: &Path) -> Result<CoreIdentity, DetectError> {
    let mut first_line = String::new();
    for arg in ["-version", "version"] {
        let output = run_for_version(bin, arg).await?;
        if let Some(identity) = parse_version_line(&output) {
            return Ok(identity);
        }
        if first_line.is_empty() {
            first_line = output;
        }
    }
    Err(DetectError::Unknown {
        path: bin.display().to_string(),
        first_line,
    })
}

async fn run_for_version(bin: &Path, arg: &str) -> Result<String, DetectError> {
    let path = bin.display().to_string();
    let child = Command::new(bin)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| DetectError::Spawn {
            path: path.clone(),
            source,
        })?;
    let output = tokio::time::timeout(VERSION_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| DetectError::Timeout { path: path.clone() })?
        .map_err(|source| DetectError::Spawn { path, source })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    Ok(line.to_string())
}

/// The first of `xray`, `v2ray` found on PATH.
pub fn default_core_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["xray", "v2ray"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xray() {
        let id = parse_version_line(
            "Xray 25.3.6 (Xray, Penetrates Everything.) 1a2b3c4 (go1.24.1 linux/amd64)",
        )
        .unwrap();
        assert_eq!(id.kind, CoreKind::Xray);
        assert_eq!(id.version, "25.3.6");
    }

    #[test]
    fn parses_v2ray_4() {
        let id = parse_version_line("V2Ray 4.34.0 (user) 20230518-074445 (go1.19.8 linux/amd64)")
            .unwrap();
        assert_eq!(id.kind, CoreKind::V2Ray);
        assert_eq!(id.version, "4.34.0");
    }

    #[test]
    fn rejects_other_output() {
        assert_eq!(parse_version_line("V2Ray 5.16.1 (V2Fly) custom"), None);
        assert_eq!(parse_version_line("panic: open config.json"), None);
        assert_eq!(parse_version_line("Xray"), None);
        assert_eq!(parse_version_line(""), None);
        assert_eq!(parse_version_line("Usage of v2ray:"), None);
    }

    #[test]
    fn command_lines_per_kind() {
        let cfg = Path::new("/s/core.json");
        assert_eq!(CoreKind::Xray.run_args(cfg), ["run", "-c", "/s/core.json"]);
        assert_eq!(CoreKind::V2Ray.run_args(cfg), ["-config", "/s/core.json"]);
        assert_eq!(
            CoreKind::Xray.test_args(cfg),
            ["run", "-test", "-c", "/s/core.json"]
        );
        assert_eq!(
            CoreKind::V2Ray.test_args(cfg),
            ["-test", "-config", "/s/core.json"]
        );
    }
}
