//! The `nexpoint-node` binary end to end: enrollment files in a state dir,
//! `run` with the real V2Ray core, the control plane's mutual-TLS client,
//! refused impostors, and an orderly SIGTERM.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use nexpoint_certs::{
    CONTROL_PLANE_COMMON_NAME, CertificateAuthority, control_plane_client_config, fingerprint_pem,
    node_key_and_csr, node_server_name,
};
use nexpoint_proto::agent::agent_client::AgentClient;
use nexpoint_proto::agent::{
    AckUsageRequest, CollectUsageRequest, CoreStatusRequest, HealthRequest, StreamLogsRequest,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint, Uri};

const NODE_ID: i64 = 7;

struct Pki {
    ca: CertificateAuthority,
    control_plane_cert: String,
    control_plane_key: String,
    node_cert: String,
}

/// What `enroll` leaves in the state dir, made with the real CA code.
fn enrolled_state_dir(dir: &Path) -> Pki {
    let ca = CertificateAuthority::generate().unwrap();
    let cp = ca
        .issue_client(CONTROL_PLANE_COMMON_NAME, time::Duration::days(1))
        .unwrap();
    let (node_key, csr) = node_key_and_csr("test-node").unwrap();
    let node_cert = ca
        .sign_node_csr(&csr, NODE_ID, time::Duration::days(1))
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("node.pem"), &node_cert).unwrap();
    std::fs::write(dir.join("node.key"), node_key).unwrap();
    std::fs::write(dir.join("control-plane.pem"), &cp.cert_pem).unwrap();
    std::fs::write(
        dir.join("enrollment.json"),
        r#"{"node_id": 7, "name": "test-node", "control_plane": "http://127.0.0.1:1"}"#,
    )
    .unwrap();
    Pki {
        ca,
        control_plane_cert: cp.cert_pem,
        control_plane_key: cp.key_pem,
        node_cert,
    }
}

/// Starts `nexpoint-node run` and waits for its readiness line.
async fn start_agent(state_dir: &Path, usage_interval_ms: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nexpoint-node"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--usage-interval-ms",
            usage_interval_ms,
        ])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--core-bin")
        .arg(v2ray_bin())
        .env("NEXPOINT_NODE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.parse::<SocketAddr>().unwrap();
            }
        }
        panic!("agent exited before listening");
    })
    .await
    .expect("agent prints its readiness line");
    (child, addr)
}

async fn client(
    addr: SocketAddr,
    pki: &Pki,
    cert: &str,
    key: &str,
) -> Result<AgentClient<Channel>, tonic::transport::Error> {
    let config = control_plane_client_config(
        pki.ca.cert_pem(),
        cert,
        key,
        &fingerprint_pem(&pki.node_cert).unwrap(),
    )
    .unwrap();
    let connector = tower::service_fn(move |_: Uri| {
        let config: Arc<rustls::ClientConfig> = config.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from(node_server_name(NODE_ID)).unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = Endpoint::from_static("http://agent.invalid")
        .connect_with_connector(connector)
        .await?;
    Ok(AgentClient::new(channel))
}

async fn health_of(
    client: Result<AgentClient<Channel>, tonic::transport::Error>,
) -> Result<u64, String> {
    let mut client = client.map_err(|e| e.to_string())?;
    client
        .health(HealthRequest {})
        .await
        .map(|r| r.into_inner().revision)
        .map_err(|e| e.to_string())
}

async fn sigterm_and_wait(mut child: Child) {
    let pid = child.id().unwrap() as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("agent stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn serves_only_the_pinned_control_plane_and_stops_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let pki = enrolled_state_dir(dir.path());
    let (agent, addr) = start_agent(dir.path(), "200").await;

    let mut cp = client(addr, &pki, &pki.control_plane_cert, &pki.control_plane_key)
        .await
        .unwrap();
    let health = cp.health(HealthRequest {}).await.unwrap().into_inner();
    assert_eq!(health.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(health.revision, 0);
    assert_eq!(health.core.unwrap().kind, "v2ray");

    let vm_port = free_port();
    let applied = cp
        .apply_snapshot(snapshot(
            5,
            &vmess_template(vm_port),
            vec![vmess_user("1.a", UUID_A)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(applied.revision, 5);
    assert!(applied.core.unwrap().running);

    // The core's output reaches the control plane.
    let mut logs = cp
        .stream_logs(StreamLogsRequest {
            include_recent: true,
        })
        .await
        .unwrap()
        .into_inner();
    let line = tokio::time::timeout(Duration::from_secs(10), logs.message())
        .await
        .expect("a log line")
        .unwrap()
        .expect("stream open");
    assert!(line.line.contains("V2Ray 4.34.0"), "{line:?}");

    // Another CA's certificate, and our CA's certificate that is not the
    // pinned one, are both refused; the server keeps serving.
    let rogue_ca = CertificateAuthority::generate().unwrap();
    let rogue = rogue_ca
        .issue_client(CONTROL_PLANE_COMMON_NAME, time::Duration::days(1))
        .unwrap();
    assert!(
        health_of(client(addr, &pki, &rogue.cert_pem, &rogue.key_pem).await)
            .await
            .is_err()
    );
    let other = pki
        .ca
        .issue_client("not-the-control-plane", time::Duration::days(1))
        .unwrap();
    assert!(
        health_of(client(addr, &pki, &other.cert_pem, &other.key_pem).await)
            .await
            .is_err()
    );
    // A plain TCP client that never speaks TLS does not stop it either.
    let idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        health_of(client(addr, &pki, &pki.control_plane_cert, &pki.control_plane_key).await).await,
        Ok(5)
    );
    drop(idle);

    // SIGTERM with a log stream still open: the agent stops the core and exits 0.
    sigterm_and_wait(agent).await;
    assert!(
        TcpStream::connect(("127.0.0.1", vm_port)).await.is_err(),
        "the core stopped with the agent"
    );
    drop(logs);

    // Restarted without any control plane, it restores revision 5.
    let (agent, addr) = start_agent(dir.path(), "200").await;
    let mut cp = client(addr, &pki, &pki.control_plane_cert, &pki.control_plane_key)
        .await
        .unwrap();
    let status = cp
        .get_core_status(CoreStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.running, "{status:?}");
    assert_eq!(
        cp.health(HealthRequest {})
            .await
            .unwrap()
            .into_inner()
            .revision,
        5
    );
    sigterm_and_wait(agent).await;
}

#[tokio::test]
async fn a_killed_agent_replaces_the_core_it_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pki = enrolled_state_dir(dir.path());
    let (mut agent, addr) = start_agent(dir.path(), "200").await;
    let mut cp = client(addr, &pki, &pki.control_plane_cert, &pki.control_plane_key)
        .await
        .unwrap();
    let vm_port = free_port();
    cp.apply_snapshot(snapshot(
        1,
        &vmess_template(vm_port),
        vec![vmess_user("1.a", UUID_A)],
    ))
    .await
    .unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("core-run.json")).unwrap()).unwrap();
    let core_pid = record["pid"].as_u64().unwrap() as u32;

    // The agent dies without a chance to clean up; its core lives on and
    // holds the inbound's port.
    agent.kill().await.unwrap();
    assert!(nexpoint_node::orphan_core::is_running(core_pid));

    let (agent, addr) = start_agent(dir.path(), "200").await;
    assert!(
        !nexpoint_node::orphan_core::is_running(core_pid),
        "the left-behind core was stopped"
    );
    let mut cp = client(addr, &pki, &pki.control_plane_cert, &pki.control_plane_key)
        .await
        .unwrap();
    let status = cp
        .get_core_status(CoreStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.running, "{status:?}");
    assert_eq!(
        status.restarts, 0,
        "its own core started at the first attempt"
    );

    // Its own core serves the same users, and their traffic is journaled.
    let proxy = V2RayClient::start(vm_port, UUID_A).await;
    let echo = echo_server().await;
    echo_through_socks(proxy.socks_port, echo, 4_000).await;
    let usage = eventually("usage to be journaled", Duration::from_secs(10), || {
        let mut cp = cp.clone();
        async move {
            let usage = cp
                .collect_usage(CollectUsageRequest {
                    after_sequence: 0,
                    max_entries: 0,
                })
                .await
                .unwrap()
                .into_inner();
            let totals = usage
                .entries
                .iter()
                .flat_map(|e| e.users.iter())
                .fold((0, 0), |(up, down), u| (up + u.uplink, down + u.downlink));
            (totals == (4_000, 4_000)).then_some(usage)
        }
    })
    .await;
    let last = usage.last_sequence;
    cp.ack_usage(AckUsageRequest { sequence: last })
        .await
        .unwrap();
    let after_ack = cp
        .collect_usage(CollectUsageRequest {
            after_sequence: 0,
            max_entries: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(after_ack.entries.is_empty());
    assert_eq!(after_ack.last_sequence, last);
    sigterm_and_wait(agent).await;
}
