//! rustls configurations with certificate pinning on both ends.
//!
//! Chain validation against our CA alone is not enough: any node holds a
//! certificate from that CA. So each side also compares the peer's end-entity
//! certificate with the one it expects (SHA-256 of the DER).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::{CertError, NodeCertificate, fingerprint_der, parse_certificate_pem};

/// The DNS name a node's certificate is issued for and the control plane
/// dials (as SNI), whatever address the node is reached at.
pub fn node_server_name(node_id: i64) -> String {
    format!("node-{node_id}.nexpoint.internal")
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

pub(crate) fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, CertError> {
    let mut roots = RootCertStore::empty();
    roots.add(parse_certificate_pem(ca_pem)?)?;
    Ok(Arc::new(roots))
}

pub(crate) fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| CertError::Pem(format!("no private key: {e}")))
}

fn mismatch(expected: &str, got: &[u8]) -> rustls::Error {
    rustls::Error::General(format!(
        "peer certificate {} is not the pinned certificate {expected}",
        fingerprint_der(got)
    ))
}

/// The node agent's server config: a client certificate is required, it must
/// chain to our CA, carry clientAuth, and be exactly the control plane's.
pub fn node_server_config(
    ca_pem: &str,
    node_cert_pem: &str,
    node_key_pem: &str,
    pinned_control_plane_cert_pem: &str,
) -> Result<Arc<ServerConfig>, CertError> {
    let certificate = NodeCertificate::new(node_cert_pem, node_key_pem)?;
    node_server_config_with_certificate(ca_pem, certificate, pinned_control_plane_cert_pem)
}

/// [`node_server_config`] presenting whatever `certificate` currently holds:
/// [`NodeCertificate::replace`] changes the certificate of every handshake
/// from then on, without a restart and without touching open connections.
pub fn node_server_config_with_certificate(
    ca_pem: &str,
    certificate: Arc<NodeCertificate>,
    pinned_control_plane_cert_pem: &str,
) -> Result<Arc<ServerConfig>, CertError> {
    let inner = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider()).build()?;
    let verifier = Arc::new(PinnedClientVerifier {
        inner,
        pinned: fingerprint_der(&parse_certificate_pem(pinned_control_plane_cert_pem)?),
    });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificate);
    // No session resumption: a resumed session skips the certificate
    // exchange, so after a rotation a client could go on "seeing" the old
    // certificate, and the client certificate would not be checked again.
    // The control plane keeps one long-lived connection per node; a full
    // handshake per connection costs nothing that matters.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The control plane's client config for one node: the server must chain to
/// our CA, be issued for that node's name, and be exactly the pinned
/// certificate (given as its SHA-256 fingerprint).
pub fn control_plane_client_config(
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
    pinned_node_fingerprint: &str,
) -> Result<Arc<ClientConfig>, CertError> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider()).build()?;
    let verifier = Arc::new(PinnedServerVerifier {
        inner,
        pinned: pinned_node_fingerprint.to_ascii_lowercase(),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            vec![parse_certificate_pem(client_cert_pem)?],
            private_key(client_key_pem)?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct PinnedClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    pinned: String,
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if fingerprint_der(end_entity) != self.pinned {
            return Err(mismatch(&self.pinned, end_entity));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct PinnedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pinned: String,
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if fingerprint_der(end_entity) != self.pinned {
            return Err(mismatch(&self.pinned, end_entity));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
