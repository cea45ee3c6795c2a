//! Checks on certificates received from elsewhere (a rotation, a bundle)
//! before they are installed: the same checks the peers will make.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, Error as TlsError};

use crate::tls::{node_server_name, provider, roots};
use crate::{CertError, NodeCertificate, parse_certificate_pem};

/// `cert_pem` chains to `ca_pem`, is valid now, is a server certificate and
/// carries `node_id`'s name: exactly what the control plane checks when it
/// dials the node.
pub fn verify_node_certificate(
    ca_pem: &str,
    cert_pem: &str,
    node_id: i64,
) -> Result<(), CertError> {
    let cert = parse_certificate_pem(cert_pem)?;
    let name = node_server_name(node_id);
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| CertError::Pem(format!("node name {name}: {e}")))?;
    WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| CertError::Pem(format!("CA certificate: {e}")))?
        .verify_server_cert(&cert, &[], &server_name, &[], UnixTime::now())
        .map_err(|e| CertError::NotTrusted {
            what: format!("the node certificate (for {name})"),
            reason: describe(e),
        })?;
    Ok(())
}

/// `cert_pem` chains to `ca_pem`, is valid now and is a client certificate:
/// what the node checks before it pins the control plane.
pub fn verify_control_plane_certificate(ca_pem: &str, cert_pem: &str) -> Result<(), CertError> {
    let cert = parse_certificate_pem(cert_pem)?;
    WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()?
        .verify_client_cert(&cert, &[], UnixTime::now())
        .map_err(|e| CertError::NotTrusted {
            what: "the control plane's certificate".into(),
            reason: describe(e),
        })?;
    Ok(())
}

/// Ok when `key_pem` is the private key of `cert_pem`, else
/// [`CertError::KeyMismatch`].
pub fn verify_key_matches(cert_pem: &str, key_pem: &str) -> Result<(), CertError> {
    NodeCertificate::new(cert_pem, key_pem).map(drop)
}

/// webpki's verdict in words an operator understands, with the detail kept.
fn describe(error: TlsError) -> String {
    let detail = error.to_string();
    let summary = match &error {
        TlsError::InvalidCertificate(cert) => match cert {
            CertificateError::BadSignature | CertificateError::UnknownIssuer => {
                "not signed by this CA"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not valid yet"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "issued for another name"
            }
            _ => return detail,
        },
        _ => return detail,
    };
    format!("{summary} ({detail})")
}
