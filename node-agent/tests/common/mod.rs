//! Helpers shared by the agent's integration tests: the real V2Ray core,
//! free loopback ports, bounded polling (never fixed sleeps).

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nexpoint_node::core_api::CoreApi;
use nexpoint_node::core_supervisor::CoreSettings;
use nexpoint_node::inbound_users::Credential;
use nexpoint_node::node::{Backoff, NodeSettings};
use nexpoint_node::state_dir::StateDir;
use nexpoint_node::wire;
use nexpoint_proto::agent::{Snapshot, UserSpec, VmessAccount};

pub const UUID_A: &str = "11111111-1111-4111-8111-111111111111";
pub const UUID_B: &str = "22222222-2222-4222-8222-222222222222";
pub const UUID_C: &str = "33333333-3333-4333-8333-333333333333";

/// The real V2Ray binary: `NEXPOINT_V2RAY_BIN` (or `V2RAY_BIN`), default
/// /usr/bin/v2ray. A missing binary fails the test, in CI and everywhere
/// else: it must never be silently skipped.
pub fn v2ray_bin() -> PathBuf {
    let bin = std::env::var("NEXPOINT_V2RAY_BIN")
        .or_else(|_| std::env::var("V2RAY_BIN"))
        .unwrap_or_else(|_| "/usr/bin/v2ray".into());
    let bin = PathBuf::from(bin);
    assert!(
        bin.is_file(),
        "V2Ray binary {} not found (install v2ray or set NEXPOINT_V2RAY_BIN)",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub fn settings(dir: &Path, bin: PathBuf) -> NodeSettings {
    NodeSettings {
        state_dir: StateDir::new(dir),
        core: CoreSettings {
            bin,
            ready_timeout: Duration::from_secs(15),
            stop_timeout: Duration::from_secs(5),
        },
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            stable_after: Duration::from_secs(60),
        },
    }
}

pub fn vmess_template(port: u16) -> String {
    serde_json::json!({
        "log": {"loglevel": "warning"},
        "inbounds": [{
            "tag": "vm",
            "listen": "127.0.0.1",
            "port": port,
            "protocol": "vmess",
            "settings": {"clients": []}
        }],
        "outbounds": [{"protocol": "freedom", "tag": "direct"}]
    })
    .to_string()
}

pub fn vmess_user(email: &str, id: &str) -> UserSpec {
    UserSpec {
        email: email.into(),
        vmess: Some(VmessAccount { id: id.into() }),
        inbound_tags: vec!["vm".into()],
        ..Default::default()
    }
}

pub fn snapshot(revision: u64, template: &str, users: Vec<UserSpec>) -> Snapshot {
    Snapshot {
        revision,
        core_config_json: template.into(),
        users,
    }
}

/// Asks the core itself whether `email` is a user of inbound `tag`: adding it
/// again answers "already exists" exactly when it is. (If it was absent, the
/// probe user is removed again.)
pub async fn core_has_user(api: &CoreApi, tag: &str, email: &str) -> bool {
    let probe = Credential::Vmess {
        id: "44444444-4444-4444-8444-444444444444".into(),
    };
    let add = wire::add_user_operation(api.kind(), email, &probe).unwrap();
    match api.alter_inbound(tag, add).await {
        Err(status) if status.message().contains("already exists") => true,
        Ok(()) => {
            let remove = wire::remove_user_operation(api.kind(), email);
            api.alter_inbound(tag, remove).await.unwrap();
            false
        }
        Err(other) => panic!("unexpected answer from the core: {other:?}"),
    }
}

/// Polls `check` until it returns Some, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A second V2Ray acting as a proxy client: SOCKS5 on loopback in, VMess out
/// to the agent's core.
pub struct V2RayClient {
    pub socks_port: u16,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl V2RayClient {
    /// VMess out to 127.0.0.1:`server_port` as user `id`.
    pub async fn start(server_port: u16, id: &str) -> Self {
        Self::with_outbound(
            serde_json::json!({"protocol": "vmess", "settings": {"vnext": [{
                "address": "127.0.0.1", "port": server_port,
                "users": [{"id": id, "alterId": 0, "security": "auto"}]
            }]}}),
        )
        .await
    }

    /// Shadowsocks out to 127.0.0.1:`server_port`.
    pub async fn shadowsocks(server_port: u16, method: &str, password: &str) -> Self {
        Self::with_outbound(
            serde_json::json!({"protocol": "shadowsocks", "settings": {"servers": [{
                "address": "127.0.0.1", "port": server_port, "method": method, "password": password
            }]}}),
        )
        .await
    }

    async fn with_outbound(outbound: serde_json::Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socks_port = free_port();
        let config = serde_json::json!({
            "log": {"loglevel": "warning"},
            "inbounds": [{"listen": "127.0.0.1", "port": socks_port, "protocol": "socks",
                          "settings": {"udp": false}}],
            "outbounds": [outbound]
        });
        let path = dir.path().join("client.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let child = tokio::process::Command::new(v2ray_bin())
            .arg("-config")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually(
            "the client's SOCKS port",
            Duration::from_secs(10),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", socks_port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
        Self {
            socks_port,
            _child: child,
            _dir: dir,
        }
    }
}

/// A TCP echo server on loopback.
pub async fn echo_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// Sends `len` bytes to the echo server through the SOCKS5 proxy and reads
/// them back.
pub async fn echo_through_socks(socks_port: u16, target: std::net::SocketAddr, len: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", socks_port))
        .await
        .unwrap();
    stream.write_all(&[5, 1, 0]).await.unwrap();
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [5, 0], "SOCKS5 no-auth accepted");
    let std::net::IpAddr::V4(ip) = target.ip() else {
        panic!("IPv4 only")
    };
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&ip.octets());
    request.extend_from_slice(&target.port().to_be_bytes());
    stream.write_all(&request).await.unwrap();
    let mut reply = [0u8; 10];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 0, "SOCKS5 connect succeeded");

    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = stream.split();
    let send = async {
        write.write_all(&payload).await.unwrap();
    };
    let mut echoed = vec![0u8; len];
    let receive = async {
        read.read_exact(&mut echoed).await.unwrap();
    };
    tokio::join!(send, receive);
    assert_eq!(echoed, payload);
}

/// Starts `nexpoint-node run` on a free port with the real V2Ray and waits
/// for its readiness line.
pub async fn start_agent(
    state_dir: &Path,
    usage_interval_ms: &str,
) -> (tokio::process::Child, std::net::SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nexpoint-node"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--usage-interval-ms",
            usage_interval_ms,
        ])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--core-bin")
        .arg(v2ray_bin())
        .env("NEXPOINT_NODE_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.parse::<std::net::SocketAddr>().unwrap();
            }
        }
        panic!("agent exited before listening");
    })
    .await
    .expect("agent prints its readiness line");
    (child, addr)
}

/// What the control plane holds to talk to one node.
pub struct ControlPlaneSide {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub node_id: i64,
}

/// A gRPC client to the agent at `addr` over mutual TLS, pinned to
/// `pinned_node_cert` (as the control plane does).
pub async fn agent_client(
    addr: std::net::SocketAddr,
    cp: &ControlPlaneSide,
    pinned_node_cert: &str,
) -> Result<
    nexpoint_proto::agent::agent_client::AgentClient<tonic::transport::Channel>,
    tonic::transport::Error,
> {
    let config = nexpoint_certs::control_plane_client_config(
        &cp.ca_pem,
        &cp.cert_pem,
        &cp.key_pem,
        &nexpoint_certs::fingerprint_pem(pinned_node_cert).unwrap(),
    )
    .unwrap();
    let node_id = cp.node_id;
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let config: std::sync::Arc<rustls::ClientConfig> = config.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name =
                rustls::pki_types::ServerName::try_from(nexpoint_certs::node_server_name(node_id))
                    .unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = tonic::transport::Endpoint::from_static("http://agent.invalid")
        .connect_with_connector(connector)
        .await?;
    Ok(nexpoint_proto::agent::agent_client::AgentClient::new(
        channel,
    ))
}

/// SIGTERM, then the agent must exit 0.
pub async fn sigterm_and_wait(mut child: tokio::process::Child) {
    use nix::sys::signal::{Signal, kill};
    let pid = child.id().unwrap() as i32;
    kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("agent stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}
