//! The `nexpoint-node` binary end to end: enrollment files in a state dir,
//! `run` with the real V2Ray core, the control plane's mutual-TLS client,
//! refused impostors, an orderly SIGTERM, certificate rotation without
//! downtime and config checks over the wire.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use nexpoint_certs::{
    CONTROL_PLANE_COMMON_NAME, CertificateAuthority, fingerprint_pem, node_key_and_csr,
};
use nexpoint_proto::agent::agent_client::AgentClient;
use nexpoint_proto::agent::{
    AckUsageRequest, BeginCertificateRotationRequest, CollectUsageRequest,
    CompleteCertificateRotationRequest, CoreStatusRequest, HealthRequest, StreamLogsRequest,
    TestCoreConfigRequest,
};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::Channel;

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

async fn client(
    addr: SocketAddr,
    pki: &Pki,
    cert: &str,
    key: &str,
) -> Result<AgentClient<Channel>, tonic::transport::Error> {
    let cp = ControlPlaneSide {
        ca_pem: pki.ca.cert_pem().into(),
        cert_pem: cert.into(),
        key_pem: key.into(),
        node_id: NODE_ID,
    };
    agent_client(addr, &cp, &pki.node_cert).await
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
async fn a_killed_agent_adopts_the_core_it_left_behind() {
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
        nexpoint_node::orphan_core::is_running(core_pid),
        "the left-behind core is adopted, not stopped"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("core-run.json")).unwrap()).unwrap();
    assert_eq!(record["pid"].as_u64(), Some(u64::from(core_pid)));
    let mut cp = client(addr, &pki, &pki.control_plane_cert, &pki.control_plane_key)
        .await
        .unwrap();
    let status = cp
        .get_core_status(CoreStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.running, "{status:?}");
    assert_eq!(status.restarts, 0, "the adopted core was never restarted");

    // The adopted core serves the same users, and their traffic is journaled.
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
                    read_counters: false,
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
            read_counters: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(after_ack.entries.is_empty());
    assert_eq!(after_ack.last_sequence, last);
    sigterm_and_wait(agent).await;
    assert!(
        !nexpoint_node::orphan_core::is_running(core_pid),
        "an orderly stop stops the adopted core too"
    );
}

#[tokio::test]
async fn rotates_its_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pki = enrolled_state_dir(dir.path());
    let (agent, addr) = start_agent(dir.path(), "10000").await;
    let cp = ControlPlaneSide {
        ca_pem: pki.ca.cert_pem().into(),
        cert_pem: pki.control_plane_cert.clone(),
        key_pem: pki.control_plane_key.clone(),
        node_id: NODE_ID,
    };
    let mut old_connection = agent_client(addr, &cp, &pki.node_cert).await.unwrap();
    old_connection.health(HealthRequest {}).await.unwrap();

    // Nothing pending yet.
    let refused = old_connection
        .complete_certificate_rotation(CompleteCertificateRotationRequest {
            certificate_pem: pki
                .ca
                .issue_client("x", time::Duration::days(1))
                .unwrap()
                .cert_pem,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("no certificate rotation is pending"),
        "{refused:?}"
    );

    let csr = old_connection
        .begin_certificate_rotation(BeginCertificateRotationRequest {})
        .await
        .unwrap()
        .into_inner()
        .csr_pem;
    let pending = dir.path().join("node.next.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pending).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the pending key is private");
    }
    // Until completed, the old certificate is served.
    health_of(agent_client(addr, &cp, &pki.node_cert).await)
        .await
        .unwrap();

    // A certificate for another key, one from another CA, and one for
    // another node are refused, and change nothing.
    let (_, other_csr) = node_key_and_csr("other").unwrap();
    let other_key_cert = pki
        .ca
        .sign_node_csr(&other_csr, NODE_ID, time::Duration::days(1))
        .unwrap();
    let rogue_ca = CertificateAuthority::generate().unwrap();
    let rogue_cert = rogue_ca
        .sign_node_csr(&csr, NODE_ID, time::Duration::days(1))
        .unwrap();
    let other_node_cert = pki
        .ca
        .sign_node_csr(&csr, NODE_ID + 1, time::Duration::days(1))
        .unwrap();
    for (bad, expected) in [
        (&other_key_cert, "not for the pending key"),
        (&rogue_cert, "not signed by this CA"),
        (&other_node_cert, "issued for another name"),
    ] {
        let refused = old_connection
            .complete_certificate_rotation(CompleteCertificateRotationRequest {
                certificate_pem: bad.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains(expected), "{refused:?}");
    }
    let garbage = old_connection
        .complete_certificate_rotation(CompleteCertificateRotationRequest {
            certificate_pem: "not a certificate".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("node.pem")).unwrap(),
        pki.node_cert
    );

    let new_cert = pki
        .ca
        .sign_node_csr(&csr, NODE_ID, time::Duration::days(1))
        .unwrap();
    let fingerprint = old_connection
        .complete_certificate_rotation(CompleteCertificateRotationRequest {
            certificate_pem: new_cert.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .fingerprint;
    assert_eq!(fingerprint, fingerprint_pem(&new_cert).unwrap());
    assert!(!pending.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("node.pem")).unwrap(),
        new_cert
    );

    // The connection opened before still works; new handshakes present the
    // new certificate, so a client pinned to the old one is refused.
    old_connection.health(HealthRequest {}).await.unwrap();
    health_of(agent_client(addr, &cp, &new_cert).await)
        .await
        .unwrap();
    assert!(
        health_of(agent_client(addr, &cp, &pki.node_cert).await)
            .await
            .is_err()
    );

    // A retried completion (its answer was lost) gets the same answer.
    let again = old_connection
        .complete_certificate_rotation(CompleteCertificateRotationRequest {
            certificate_pem: new_cert.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.fingerprint, fingerprint);

    // After a restart the new certificate is the one served.
    sigterm_and_wait(agent).await;
    let (agent, addr) = start_agent(dir.path(), "10000").await;
    health_of(agent_client(addr, &cp, &new_cert).await)
        .await
        .unwrap();
    assert!(
        health_of(agent_client(addr, &cp, &pki.node_cert).await)
            .await
            .is_err()
    );
    sigterm_and_wait(agent).await;
}

#[tokio::test]
async fn a_pending_rotation_survives_an_agent_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = enrolled_state_dir(dir.path());
    let cp = ControlPlaneSide {
        ca_pem: pki.ca.cert_pem().into(),
        cert_pem: pki.control_plane_cert.clone(),
        key_pem: pki.control_plane_key.clone(),
        node_id: NODE_ID,
    };
    let (agent, addr) = start_agent(dir.path(), "10000").await;
    let csr = agent_client(addr, &cp, &pki.node_cert)
        .await
        .unwrap()
        .begin_certificate_rotation(BeginCertificateRotationRequest {})
        .await
        .unwrap()
        .into_inner()
        .csr_pem;
    sigterm_and_wait(agent).await;

    let (agent, addr) = start_agent(dir.path(), "10000").await;
    let new_cert = pki
        .ca
        .sign_node_csr(&csr, NODE_ID, time::Duration::days(1))
        .unwrap();
    let fingerprint = agent_client(addr, &cp, &pki.node_cert)
        .await
        .unwrap()
        .complete_certificate_rotation(CompleteCertificateRotationRequest {
            certificate_pem: new_cert.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .fingerprint;
    assert_eq!(fingerprint, fingerprint_pem(&new_cert).unwrap());
    health_of(agent_client(addr, &cp, &new_cert).await)
        .await
        .unwrap();
    sigterm_and_wait(agent).await;
}

#[tokio::test]
async fn tests_a_core_config_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let pki = enrolled_state_dir(dir.path());
    let (agent, addr) = start_agent(dir.path(), "10000").await;
    let mut cp = client(addr, &pki, &pki.control_plane_cert, &pki.control_plane_key)
        .await
        .unwrap();
    let good = cp
        .test_core_config(TestCoreConfigRequest {
            core_config_json: vmess_template(free_port()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(good.ok, "{good:?}");
    assert_eq!(good.error, "");

    let mut template: serde_json::Value =
        serde_json::from_str(&vmess_template(free_port())).unwrap();
    template["inbounds"][0]["protocol"] = "nosuchproto".into();
    let bad = cp
        .test_core_config(TestCoreConfigRequest {
            core_config_json: template.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!bad.ok);
    assert!(
        bad.error.contains("unknown config id: nosuchproto"),
        "{bad:?}"
    );

    let unparsable = cp
        .test_core_config(TestCoreConfigRequest {
            core_config_json: "{".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!unparsable.ok);
    assert!(
        unparsable.error.contains("not valid JSON"),
        "{unparsable:?}"
    );
    sigterm_and_wait(agent).await;
}
