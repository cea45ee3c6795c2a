//! A throwaway certificate authority and a server certificate it signs, for
//! inbounds served over TLS. Clients trust the CA through `SSL_CERT_FILE`,
//! which every Go client here (V2Ray, sing-box, mihomo) reads for its roots,
//! as a subscriber's device trusts an operator's real certificate.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The name the server certificate is for.
pub const SERVER_NAME: &str = "nexpoint.test";

pub struct TestCa {
    /// The CA certificate (PEM): what clients trust.
    pub ca_file: PathBuf,
    /// The server certificate and key (PEM) for [`SERVER_NAME`].
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCa {
    /// Writes the CA and a server certificate for [`SERVER_NAME`] into `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "Nexpoint test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        server
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAME);
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = server.signed_by(&key, &issuer)?;

        let out = Self {
            ca_file: dir.join("test-ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
        };
        std::fs::write(&out.ca_file, ca_cert.pem())?;
        std::fs::write(&out.cert_file, cert.pem())?;
        std::fs::write(&out.key_file, key.serialize_pem())?;
        Ok(out)
    }
}
