//! `nexpoint-node enroll` against a minimal HTTP control plane that signs the
//! CSR with the real CA code.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use nexpoint_certs::{CONTROL_PLANE_COMMON_NAME, CertificateAuthority, fingerprint_pem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct ControlPlane {
    addr: SocketAddr,
    ca: Arc<CertificateAuthority>,
    control_plane_cert: String,
}

/// Answers POST /api/node/enroll: token "good" gets certificates, anything
/// else a 403 with a JSON detail.
async fn control_plane() -> ControlPlane {
    let ca = Arc::new(CertificateAuthority::generate().unwrap());
    let cp = ca
        .issue_client(CONTROL_PLANE_COMMON_NAME, time::Duration::days(1))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ca2, cp_cert) = (ca.clone(), cp.cert_pem.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (ca, cp_cert) = (ca2.clone(), cp_cert.clone());
            tokio::spawn(async move {
                let (head, body) = read_request(&mut stream).await;
                assert!(head.starts_with("POST /api/node/enroll "), "{head}");
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let (status, reply) = if request["token"] == "good" {
                    let csr = request["csr"].as_str().unwrap();
                    let cert = ca.sign_node_csr(csr, 42, time::Duration::days(1)).unwrap();
                    let reply = serde_json::json!({
                        "node_id": 42, "node_name": "edge-1", "certificate": cert,
                        "ca_certificate": ca.cert_pem(), "control_plane_certificate": cp_cert,
                    });
                    ("200 OK", reply)
                } else {
                    (
                        "403 Forbidden",
                        serde_json::json!({"detail": "token already used"}),
                    )
                };
                let body = reply.to_string();
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            });
        }
    });
    ControlPlane {
        addr,
        ca,
        control_plane_cert: cp.cert_pem,
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "request ended early");
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "body ended early");
                data.extend_from_slice(&buf[..n]);
            }
            return (head, data[end + 4..end + 4 + length].to_vec());
        }
    }
}

async fn enroll(
    cp: &ControlPlane,
    state_dir: &Path,
    token: &str,
    extra: &[&str],
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_nexpoint-node"))
        .arg("enroll")
        .arg("--control-plane")
        .arg(format!("http://{}/", cp.addr))
        .args(["--token", token])
        .arg("--state-dir")
        .arg(state_dir)
        .args(extra)
        .output()
        .await
        .unwrap()
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
async fn enrolls_and_writes_the_state_dir() {
    let cp = control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let fingerprint = cp.ca.fingerprint().to_uppercase();
    let output = enroll(&cp, &state, "good", &["--ca-fingerprint", &fingerprint]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("enrolled as node 42 (edge-1)"));

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
    let key_mode = std::fs::metadata(state.join("node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(state.join("ca.pem")).unwrap(),
        cp.ca.cert_pem()
    );
    assert_eq!(
        std::fs::read_to_string(state.join("control-plane.pem")).unwrap(),
        cp.control_plane_cert
    );
    let enrollment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("enrollment.json")).unwrap()).unwrap();
    assert_eq!(enrollment["node_id"], 42);
    assert_eq!(enrollment["name"], "edge-1");

    // The key and certificate make a working server config with the pin.
    nexpoint_certs::node_server_config(
        cp.ca.cert_pem(),
        &std::fs::read_to_string(state.join("node.pem")).unwrap(),
        &std::fs::read_to_string(state.join("node.key")).unwrap(),
        &cp.control_plane_cert,
    )
    .expect("the node key matches its certificate");

    // A second enrollment needs --force.
    let again = enroll(&cp, &state, "good", &[]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let node_pem = std::fs::read_to_string(state.join("node.pem")).unwrap();
    let forced = enroll(&cp, &state, "good", &["--force"]).await;
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read_to_string(state.join("node.pem")).unwrap(),
        node_pem
    );
    fingerprint_pem(&std::fs::read_to_string(state.join("node.pem")).unwrap()).unwrap();
}

#[tokio::test]
async fn a_wrong_ca_fingerprint_writes_nothing() {
    let cp = control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = enroll(&cp, &state, "good", &["--ca-fingerprint", &"ab".repeat(32)]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("fingerprint") && stderr.contains(&cp.ca.fingerprint()),
        "{stderr}"
    );
    assert!(files_in(&state).is_empty());
}

#[tokio::test]
async fn a_refused_token_prints_the_servers_detail() {
    let cp = control_plane().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let output = enroll(&cp, &state, "used", &[]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("token already used"),
        "{stderr}"
    );
    assert!(files_in(&state).is_empty());
}
