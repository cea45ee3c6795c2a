//! The node's server certificate replaced while the server runs: new
//! handshakes present the new certificate, an open connection keeps going.

use std::sync::Arc;

use nexpoint_certs::{
    CertError, CertificateAuthority, NodeCertificate, control_plane_client_config, fingerprint_pem,
    node_key_and_csr, node_server_config_with_certificate, node_server_name, verify_key_matches,
    verify_node_certificate,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const NODE_ID: i64 = 5;

fn node_cert(ca: &CertificateAuthority) -> (String, String) {
    let (key, csr) = node_key_and_csr("n").unwrap();
    (
        ca.sign_node_csr(&csr, NODE_ID, time::Duration::days(1))
            .unwrap(),
        key,
    )
}

/// An echo server over TLS that accepts forever.
async fn echo_server(config: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 64];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Connects with the control plane's config pinned to `pinned_cert`.
async fn connect(
    addr: std::net::SocketAddr,
    ca: &CertificateAuthority,
    cp: &nexpoint_certs::IssuedCertificate,
    pinned_cert: &str,
) -> Result<TlsStream<TcpStream>, String> {
    let config = control_plane_client_config(
        ca.cert_pem(),
        &cp.cert_pem,
        &cp.key_pem,
        &fingerprint_pem(pinned_cert).unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = TlsConnector::from(config)
        .connect(
            ServerName::try_from(node_server_name(NODE_ID)).unwrap(),
            tcp,
        )
        .await
        .map_err(|e| e.to_string())?;
    echo(&mut tls).await?;
    Ok(tls)
}

async fn echo(tls: &mut TlsStream<TcpStream>) -> Result<(), String> {
    tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut reply = [0u8; 4];
    tls.read_exact(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(&reply, b"ping");
    Ok(())
}

fn presented(tls: &TlsStream<TcpStream>) -> String {
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    nexpoint_certs::fingerprint_der(&der)
}

#[tokio::test]
async fn new_handshakes_get_the_new_certificate_and_open_ones_keep_going() {
    let ca = CertificateAuthority::generate().unwrap();
    let cp = ca
        .issue_client("nexpoint-control-plane", time::Duration::days(1))
        .unwrap();
    let (old_cert, old_key) = node_cert(&ca);
    let (new_cert, new_key) = node_cert(&ca);
    let certificate = NodeCertificate::new(&old_cert, &old_key).unwrap();
    let config =
        node_server_config_with_certificate(ca.cert_pem(), certificate.clone(), &cp.cert_pem)
            .unwrap();
    let addr = echo_server(config).await;

    let mut old_connection = connect(addr, &ca, &cp, &old_cert).await.unwrap();
    assert_eq!(
        presented(&old_connection),
        fingerprint_pem(&old_cert).unwrap()
    );
    assert!(connect(addr, &ca, &cp, &new_cert).await.is_err());

    certificate.replace(&new_cert, &new_key).unwrap();
    assert_eq!(
        certificate.fingerprint(),
        fingerprint_pem(&new_cert).unwrap()
    );

    let new_connection = connect(addr, &ca, &cp, &new_cert).await.unwrap();
    assert_eq!(
        presented(&new_connection),
        fingerprint_pem(&new_cert).unwrap()
    );
    let refused = connect(addr, &ca, &cp, &old_cert).await.unwrap_err();
    assert!(refused.contains("not the pinned certificate"), "{refused}");
    // The connection made before the swap still works.
    echo(&mut old_connection).await.unwrap();

    // A mismatched pair is refused and the current certificate stays.
    let error = certificate.replace(&old_cert, &new_key).unwrap_err();
    assert!(matches!(error, CertError::KeyMismatch), "{error}");
    assert_eq!(
        certificate.fingerprint(),
        fingerprint_pem(&new_cert).unwrap()
    );
    connect(addr, &ca, &cp, &new_cert).await.unwrap();
}

#[test]
fn checks_before_installing_a_certificate() {
    let ca = CertificateAuthority::generate().unwrap();
    let (cert, key) = node_cert(&ca);
    let (_, other_key) = node_cert(&ca);
    verify_node_certificate(ca.cert_pem(), &cert, NODE_ID).unwrap();
    verify_key_matches(&cert, &key).unwrap();
    assert!(matches!(
        verify_key_matches(&cert, &other_key),
        Err(CertError::KeyMismatch)
    ));
    let other_ca = CertificateAuthority::generate().unwrap();
    let error = verify_node_certificate(other_ca.cert_pem(), &cert, NODE_ID).unwrap_err();
    assert!(matches!(error, CertError::NotTrusted { .. }), "{error}");
    assert!(matches!(
        verify_node_certificate(ca.cert_pem(), &cert, NODE_ID + 1),
        Err(CertError::NotTrusted { .. })
    ));
    // A client certificate is not a node (server) certificate.
    let client = ca
        .issue_client("nexpoint-control-plane", time::Duration::days(1))
        .unwrap();
    assert!(verify_node_certificate(ca.cert_pem(), &client.cert_pem, NODE_ID).is_err());
    assert!(verify_node_certificate(ca.cert_pem(), "garbage", NODE_ID).is_err());
    assert!(verify_key_matches(&cert, "garbage").is_err());
}
