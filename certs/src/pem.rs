use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use crate::CertError;

/// The first certificate in a PEM document, as DER.
pub fn parse_certificate_pem(pem: &str) -> Result<CertificateDer<'static>, CertError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| CertError::Pem(format!("no certificate: {e}")))
}

/// Lower-case hex SHA-256 of a certificate's DER encoding.
pub fn fingerprint_der(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

pub fn fingerprint_pem(pem: &str) -> Result<String, CertError> {
    Ok(fingerprint_der(&parse_certificate_pem(pem)?))
}

/// When a certificate stops being valid (unix seconds).
pub fn certificate_not_after(pem: &str) -> Result<i64, CertError> {
    let der = parse_certificate_pem(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| CertError::Pem(format!("unreadable certificate: {e}")))?;
    Ok(cert.validity().not_after.timestamp())
}
