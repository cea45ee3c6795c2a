use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::files::{write_private_file, write_public_file};
use crate::tls::node_server_name;
use crate::{CertError, fingerprint_pem};

/// The common name of the control plane's client certificate.
pub const CONTROL_PLANE_COMMON_NAME: &str = "nexpoint-control-plane";

const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const CONTROL_PLANE_FILE: &str = "control-plane.pem";
const CONTROL_PLANE_KEY_FILE: &str = "control-plane.key";

const CA_VALIDITY: Duration = Duration::days(3650);
const CONTROL_PLANE_VALIDITY: Duration = Duration::days(825);

/// A certificate with its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCertificate {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The control plane's internal certificate authority.
pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// A new CA held only in memory.
    pub fn generate() -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name("Nexpoint internal CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA from `dir`, creating it (key 0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, CertError> {
        let cert_path = dir.join(CA_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let cert_pem =
                std::fs::read_to_string(&cert_path).map_err(CertError::io(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(CertError::io(&key_path))?;
            return Self::from_pem(&cert_pem, &key_pem);
        }
        let ca = Self::generate()?;
        write_private_file(&key_path, ca.issuer.key().serialize_pem().as_bytes())?;
        write_public_file(&cert_path, ca.cert_pem.as_bytes())?;
        Ok(ca)
    }

    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the CA certificate; printed in enrollment commands so a node
    /// can check it is talking to the right control plane.
    pub fn fingerprint(&self) -> String {
        fingerprint_pem(&self.cert_pem).expect("the CA's own PEM is valid")
    }

    /// Loads the control plane's client certificate from `dir`, issuing it on
    /// first use. A certificate issued by another CA is replaced.
    pub fn load_or_issue_control_plane(&self, dir: &Path) -> Result<IssuedCertificate, CertError> {
        let cert_path = dir.join(CONTROL_PLANE_FILE);
        let key_path = dir.join(CONTROL_PLANE_KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let cert_pem =
                std::fs::read_to_string(&cert_path).map_err(CertError::io(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(CertError::io(&key_path))?;
            return Ok(IssuedCertificate { cert_pem, key_pem });
        }
        let issued = self.issue_client(CONTROL_PLANE_COMMON_NAME, CONTROL_PLANE_VALIDITY)?;
        write_private_file(&key_path, issued.key_pem.as_bytes())?;
        write_public_file(&cert_path, issued.cert_pem.as_bytes())?;
        Ok(issued)
    }

    /// A TLS client certificate (clientAuth only) with a fresh key.
    pub fn issue_client(
        &self,
        name: &str,
        validity: Duration,
    ) -> Result<IssuedCertificate, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        set_validity(&mut params, validity);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a node's CSR. Only the CSR's public key is used: the subject, the
    /// name the control plane will dial and the key usages are decided here, so
    /// a node cannot ask for a client or CA certificate.
    pub fn sign_node_csr(
        &self,
        csr_pem: &str,
        node_id: i64,
        validity: Duration,
    ) -> Result<String, CertError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let server_name = node_server_name(node_id);
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(&server_name);
        params.subject_alt_names = vec![SanType::DnsName(server_name.try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, validity);
        let request = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        Ok(request.signed_by(&self.issuer)?.pem())
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    // Backdate a little so a peer whose clock is slightly behind accepts it.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
    // DER integers are signed: clear the top bit so the serial stays positive.
    let mut serial = rand::random::<[u8; 16]>();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}
