use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::CertError;

/// A fresh node key and a CSR for it. The key stays on the node; only the CSR
/// travels to the control plane, which decides the certificate's contents.
pub fn node_key_and_csr(common_name: &str) -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}
