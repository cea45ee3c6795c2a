//! `nexpoint-node enroll --bundle/--bundle-file`: offline enrollment writes
//! the same state dir as token enrollment, and `run` serves from it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use common::*;
use nexpoint_certs::{
    CONTROL_PLANE_COMMON_NAME, CertificateAuthority, NodeBundle, node_key_and_csr,
};
use nexpoint_proto::agent::HealthRequest;
use tokio::io::AsyncWriteExt;

struct Issued {
    bundle: NodeBundle,
    control_plane_key: String,
}

/// What `nexpoint node bundle NAME` makes: key and certificate issued by the
/// control plane itself.
fn issue_bundle(ca: &CertificateAuthority, node_id: i64, name: &str) -> Issued {
    let cp = ca
        .issue_client(CONTROL_PLANE_COMMON_NAME, time::Duration::days(1))
        .unwrap();
    let (key, csr) = node_key_and_csr(name).unwrap();
    let certificate = ca
        .sign_node_csr(&csr, node_id, time::Duration::days(1))
        .unwrap();
    Issued {
        bundle: NodeBundle {
            node_id,
            node_name: name.into(),
            control_plane: "https://panel.example.com".into(),
            ca_certificate: ca.cert_pem().into(),
            certificate,
            key,
            control_plane_certificate: cp.cert_pem,
        },
        control_plane_key: cp.key_pem,
    }
}

async fn enroll(state_dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nexpoint-node"))
        .arg("enroll")
        .arg("--state-dir")
        .arg(state_dir)
        .args(args)
        .env_remove("NEXPOINT_NODE_CONTROL_PLANE")
        .env_remove("NEXPOINT_NODE_TOKEN")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    child.wait_with_output().await.unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_bundle_enrolls_and_run_serves_from_the_state_dir() {
    let ca = CertificateAuthority::generate().unwrap();
    let issued = issue_bundle(&ca, 12, "edge-offline");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = enroll(
        &state,
        &[
            "--bundle",
            &issued.bundle.encode(),
            "--ca-fingerprint",
            &ca.fingerprint().to_uppercase(),
        ],
        None,
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("enrolled as node 12 (edge-offline)"));
    assert_eq!(
        files_in(&state),
        [
            "ca.pem",
            "control-plane.pem",
            "enrollment.json",
            "node.key",
            "node.pem"
        ]
    );
    let mode = std::fs::metadata(state.join("node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert_eq!(
        std::fs::read_to_string(state.join("node.key")).unwrap(),
        issued.bundle.key
    );
    assert_eq!(
        std::fs::read_to_string(state.join("node.pem")).unwrap(),
        issued.bundle.certificate
    );
    let enrollment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("enrollment.json")).unwrap()).unwrap();
    assert_eq!(
        enrollment,
        serde_json::json!({"node_id": 12, "name": "edge-offline", "control_plane": "https://panel.example.com"})
    );

    // `run` works unchanged: the control plane reaches it over mutual TLS.
    let (agent, addr) = start_agent(&state, "10000").await;
    let cp = ControlPlaneSide {
        ca_pem: ca.cert_pem().into(),
        cert_pem: issued.bundle.control_plane_certificate.clone(),
        key_pem: issued.control_plane_key.clone(),
        node_id: 12,
    };
    let health = agent_client(addr, &cp, &issued.bundle.certificate)
        .await
        .unwrap()
        .health(HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.revision, 0);
    sigterm_and_wait(agent).await;
}

#[tokio::test]
async fn a_bundle_from_a_file_or_stdin_and_force() {
    let ca = CertificateAuthority::generate().unwrap();
    let first = issue_bundle(&ca, 3, "one");
    let second = issue_bundle(&ca, 4, "two");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("bundle.txt");
    // As pasted into an editor: wrapped and with a trailing newline.
    let wrapped: String = first
        .bundle
        .encode()
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    std::fs::write(&file, wrapped).unwrap();
    let output = enroll(&state, &["--bundle-file", file.to_str().unwrap()], None).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(state.join("node.pem")).unwrap(),
        first.bundle.certificate
    );

    // A second enrollment needs --force, as with a token.
    let again = enroll(
        &state,
        &["--bundle-file", "-"],
        Some(&second.bundle.encode()),
    )
    .await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(
        std::fs::read_to_string(state.join("node.pem")).unwrap(),
        first.bundle.certificate
    );

    // A rotation left pending by the old identity is dropped with it.
    std::fs::write(state.join("node.next.key"), &first.bundle.key).unwrap();
    std::fs::write(state.join("node.next.pem"), &first.bundle.certificate).unwrap();
    let forced = enroll(
        &state,
        &["--bundle-file", "-", "--force"],
        Some(&second.bundle.encode()),
    )
    .await;
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(String::from_utf8_lossy(&forced.stdout).contains("enrolled as node 4 (two)"));
    assert_eq!(
        std::fs::read_to_string(state.join("node.pem")).unwrap(),
        second.bundle.certificate
    );
    assert_eq!(
        std::fs::read_to_string(state.join("node.key")).unwrap(),
        second.bundle.key
    );
    assert!(!state.join("node.next.key").exists());
    assert!(!state.join("node.next.pem").exists());
}

#[tokio::test]
async fn a_bad_bundle_writes_nothing_and_says_why() {
    let ca = CertificateAuthority::generate().unwrap();
    let issued = issue_bundle(&ca, 5, "n");
    let mut foreign_key = issued.bundle.clone();
    foreign_key.key = issue_bundle(&ca, 5, "m").bundle.key;
    let text = issued.bundle.encode();
    let cases = [
        (
            text[3..].to_string(),
            "must start with \"nexpoint-bundle-v1:\"",
        ),
        (format!("{text}!!"), "not valid base64url"),
        (
            foreign_key.encode(),
            "private key does not belong to the certificate",
        ),
    ];
    for (bundle, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let output = enroll(&state, &["--bundle", &bundle], None).await;
        assert!(!output.status.success());
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
        assert!(files_in(&state).is_empty());
    }

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = enroll(
        &state,
        &["--bundle", &text, "--ca-fingerprint", &"ab".repeat(32)],
        None,
    )
    .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&ca.fingerprint()),
        "{}",
        stderr(&output)
    );
    assert!(files_in(&state).is_empty());

    let missing = enroll(&state, &["--bundle-file", "/nonexistent/bundle"], None).await;
    assert!(stderr(&missing).contains("cannot read the bundle file /nonexistent/bundle"));

    let both = enroll(&state, &["--bundle", &text, "--token", "t"], None).await;
    assert!(!both.status.success());
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );
}
