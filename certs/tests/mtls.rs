//! Real TLS handshakes over loopback between the configurations the daemons use.

use std::sync::Arc;

use nexpoint_certs::{
    CertificateAuthority, IssuedCertificate, control_plane_client_config, fingerprint_pem,
    node_key_and_csr, node_server_config, node_server_name,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

struct Node {
    id: i64,
    cert_pem: String,
    key_pem: String,
}

fn enroll_node(ca: &CertificateAuthority, id: i64) -> Node {
    let (key_pem, csr_pem) = node_key_and_csr("anything the node asks for").unwrap();
    let cert_pem = ca
        .sign_node_csr(&csr_pem, id, time::Duration::days(30))
        .unwrap();
    Node {
        id,
        cert_pem,
        key_pem,
    }
}

fn control_plane(ca: &CertificateAuthority) -> IssuedCertificate {
    ca.issue_client("nexpoint-control-plane", time::Duration::days(30))
        .unwrap()
}

/// Runs one handshake: the server echoes a byte; returns the client's and the
/// server's outcome.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: String,
) -> (Result<(), String>, Result<(), String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        tls.write_all(&byte).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    });
    let client_side = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let server_name = ServerName::try_from(name).unwrap();
        let mut tls = TlsConnector::from(client)
            .connect(server_name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"x").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        // In TLS 1.3 the server rejects the client certificate after the
        // client considers the handshake done; the failure shows up here.
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    }
    .await;
    (client_side, server_side.await.unwrap())
}

fn node_server(
    ca: &CertificateAuthority,
    node: &Node,
    cp: &IssuedCertificate,
) -> Arc<rustls::ServerConfig> {
    node_server_config(ca.cert_pem(), &node.cert_pem, &node.key_pem, &cp.cert_pem).unwrap()
}

fn cp_client(
    ca: &CertificateAuthority,
    cp: &IssuedCertificate,
    pinned: &Node,
) -> Arc<rustls::ClientConfig> {
    control_plane_client_config(
        ca.cert_pem(),
        &cp.cert_pem,
        &cp.key_pem,
        &fingerprint_pem(&pinned.cert_pem).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn pinned_peers_complete_the_handshake() {
    let ca = CertificateAuthority::generate().unwrap();
    let cp = control_plane(&ca);
    let node = enroll_node(&ca, 7);
    let (client, server) = handshake(
        node_server(&ca, &node, &cp),
        cp_client(&ca, &cp, &node),
        node_server_name(node.id),
    )
    .await;
    assert_eq!(client, Ok(()));
    assert_eq!(server, Ok(()));
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let ca = CertificateAuthority::generate().unwrap();
    let cp = control_plane(&ca);
    let node = enroll_node(&ca, 1);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(nexpoint_certs::parse_certificate_pem(ca.cert_pem()).unwrap())
        .unwrap();
    let mut anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    anonymous.alpn_protocols = vec![b"h2".to_vec()];
    let (client, server) = handshake(
        node_server(&ca, &node, &cp),
        Arc::new(anonymous),
        node_server_name(node.id),
    )
    .await;
    assert!(client.is_err());
    let server = server.unwrap_err();
    assert!(
        server.contains("no certificate") || server.contains("NoCertificate"),
        "{server}"
    );
}

#[tokio::test]
async fn client_signed_by_another_ca_is_refused() {
    let ca = CertificateAuthority::generate().unwrap();
    let rogue_ca = CertificateAuthority::generate().unwrap();
    let cp = control_plane(&ca);
    let rogue = control_plane(&rogue_ca);
    let node = enroll_node(&ca, 1);
    // The rogue client trusts our CA for the server, but its own certificate
    // comes from elsewhere.
    let client = cp_client(&ca, &rogue, &node);
    let (client, server) = handshake(
        node_server(&ca, &node, &cp),
        client,
        node_server_name(node.id),
    )
    .await;
    assert!(client.is_err());
    let server = server.unwrap_err();
    // Both CAs share a subject name, so webpki finds a candidate issuer and
    // rejects its signature; a differently named rogue CA gives UnknownIssuer.
    assert!(
        server.contains("BadSignature") || server.contains("UnknownIssuer"),
        "{server}"
    );
}

#[tokio::test]
async fn client_from_our_ca_that_is_not_the_control_plane_is_refused() {
    let ca = CertificateAuthority::generate().unwrap();
    let cp = control_plane(&ca);
    let impostor = control_plane(&ca);
    let node = enroll_node(&ca, 1);
    let (client, server) = handshake(
        node_server(&ca, &node, &cp),
        cp_client(&ca, &impostor, &node),
        node_server_name(node.id),
    )
    .await;
    assert!(client.is_err());
    let server = server.unwrap_err();
    assert!(server.contains("not the pinned certificate"), "{server}");
}

#[tokio::test]
async fn node_certificate_cannot_act_as_a_client() {
    let ca = CertificateAuthority::generate().unwrap();
    let cp = control_plane(&ca);
    let node = enroll_node(&ca, 1);
    let other = enroll_node(&ca, 2);
    // Another node tries to drive this one with its own (serverAuth) cert.
    let as_client = IssuedCertificate {
        cert_pem: other.cert_pem.clone(),
        key_pem: other.key_pem.clone(),
    };
    let (client, server) = handshake(
        node_server(&ca, &node, &cp),
        cp_client(&ca, &as_client, &node),
        node_server_name(node.id),
    )
    .await;
    assert!(client.is_err());
    assert!(server.is_err());
}

#[tokio::test]
async fn agent_presenting_another_certificate_than_the_pinned_one_is_refused() {
    let ca = CertificateAuthority::generate().unwrap();
    let cp = control_plane(&ca);
    let pinned = enroll_node(&ca, 1);
    // Same CA, same node id, but not the certificate the control plane pinned.
    let replacement = enroll_node(&ca, 1);
    let (client, _server) = handshake(
        node_server(&ca, &replacement, &cp),
        cp_client(&ca, &cp, &pinned),
        node_server_name(pinned.id),
    )
    .await;
    let client = client.unwrap_err();
    assert!(client.contains("not the pinned certificate"), "{client}");
}

#[tokio::test]
async fn agent_certificate_for_another_node_name_is_refused() {
    let ca = CertificateAuthority::generate().unwrap();
    let cp = control_plane(&ca);
    let node = enroll_node(&ca, 1);
    let (client, _server) = handshake(
        node_server(&ca, &node, &cp),
        cp_client(&ca, &cp, &node),
        node_server_name(2),
    )
    .await;
    assert!(client.is_err());
}

#[test]
fn ca_and_control_plane_files_are_private_and_reloaded() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
    let cp = ca.load_or_issue_control_plane(dir.path()).unwrap();
    for key in ["ca.key", "control-plane.key"] {
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let again = CertificateAuthority::load_or_create(dir.path()).unwrap();
    assert_eq!(again.fingerprint(), ca.fingerprint());
    let cp_again = again.load_or_issue_control_plane(dir.path()).unwrap();
    assert_eq!(cp_again.cert_pem, cp.cert_pem);
    // A CA reloaded from disk still signs certificates its old self's peers accept.
    let node = enroll_node(&again, 3);
    assert!(nexpoint_certs::certificate_not_after(&node.cert_pem).unwrap() > 0);
}

#[test]
fn garbage_csr_is_an_error_not_a_panic() {
    let ca = CertificateAuthority::generate().unwrap();
    assert!(
        ca.sign_node_csr("not a csr", 1, time::Duration::days(1))
            .is_err()
    );
    assert!(fingerprint_pem("nope").is_err());
}
