//! The control plane's CA and client certificate, kept under the data dir.

use std::path::Path;

use nexpoint_certs::{CertError, CertificateAuthority, IssuedCertificate};

pub struct Pki {
    pub ca: CertificateAuthority,
    pub client: IssuedCertificate,
}

impl Pki {
    pub fn load_or_create(data_dir: &Path) -> Result<Self, CertError> {
        let dir = data_dir.join("pki");
        let ca = CertificateAuthority::load_or_create(&dir)?;
        let client = ca.load_or_issue_control_plane(&dir)?;
        Ok(Self { ca, client })
    }
}
