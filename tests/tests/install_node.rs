//! `scripts/install-node.sh` into a scratch root: binary, unit, core,
//! enrollment with the control plane's token; a second run changes nothing.

use std::path::Path;
use std::process::Command;

use nexpoint_tests::control_plane::ControlPlane;
use nexpoint_tests::net::free_port;
use nexpoint_tests::paths::{node_bin, repo_root, v2ray_bin};

fn install(root: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(repo_root().join("scripts/install-node.sh"))
        .arg("--root")
        .arg(root)
        .arg("--binary")
        .arg(node_bin())
        .arg("--core-bin")
        .arg(v2ray_bin())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_node_enrolls_into_a_scratch_root_and_is_idempotent() {
    let cp = ControlPlane::start().await.unwrap();
    let created = cp.create_node("installed", free_port()).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let enroll = [
        "--control-plane",
        cp.base_url.as_str(),
        "--token",
        created.enrollment_token.as_str(),
        "--ca-fingerprint",
        created.ca_fingerprint.as_str(),
    ];

    let (ok, out) = install(root.path(), &enroll);
    assert!(ok, "{out}");
    let r = root.path();
    assert_eq!(
        std::fs::read(r.join("usr/local/bin/nexpoint-node")).unwrap(),
        std::fs::read(node_bin()).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(r.join("etc/systemd/system/nexpoint-node.service")).unwrap(),
        std::fs::read_to_string(repo_root().join("systemd/nexpoint-node.service")).unwrap()
    );
    let env = std::fs::read_to_string(r.join("etc/nexpoint/nexpoint-node.env")).unwrap();
    assert!(
        env.contains(&format!("NEXPOINT_NODE_CORE_BIN={}", v2ray_bin().display())),
        "{env}"
    );
    assert!(r.join("var/lib/nexpoint-node/enrollment.json").is_file());
    assert!(r.join("var/lib/nexpoint-node/node.pem").is_file());
    // The control plane pinned the certificate the agent now holds.
    let node = cp.node(created.id).await.unwrap();
    assert!(node["certificate_fingerprint"].is_string(), "{node}");

    // The token is spent: a second run must not need it, nor change a thing.
    let before = snapshot(r);
    let (ok, out) = install(r, &enroll);
    assert!(ok, "{out}");
    assert!(out.contains("already enrolled"), "{out}");
    assert_eq!(snapshot(r), before);

    // A usage error says so with status 2.
    let out = Command::new(repo_root().join("scripts/install-node.sh"))
        .args(["--root", r.to_str().unwrap(), "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
