//! The node's server certificate as a value that can be replaced while the
//! TLS server runs (certificate rotation without downtime).

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::tls::{private_key, provider};
use crate::{CertError, fingerprint_der, parse_certificate_pem};

/// Answers every handshake with the current certificate and key. Handshakes
/// read it once, so a replacement affects only handshakes that start later;
/// established connections keep their session keys and go on.
#[derive(Debug)]
pub struct NodeCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl NodeCertificate {
    /// Fails when the key does not belong to the certificate.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<Self>, CertError> {
        Ok(Arc::new(Self {
            current: RwLock::new(certified_key(cert_pem, key_pem)?),
        }))
    }

    /// Serves `cert_pem`/`key_pem` from the next handshake on. On error the
    /// current certificate stays.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<(), CertError> {
        let next = certified_key(cert_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// SHA-256 fingerprint of the certificate new handshakes present.
    pub fn fingerprint(&self) -> String {
        let current = self.current();
        fingerprint_der(current.cert.first().map(|c| c.as_ref()).unwrap_or_default())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        // A panic while holding the lock cannot leave a half-written Arc.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for NodeCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, CertError> {
    let key = provider()
        .key_provider
        .load_private_key(private_key(key_pem)?)?;
    let certified = CertifiedKey::new(vec![parse_certificate_pem(cert_pem)?], key);
    certified.keys_match().map_err(|_| CertError::KeyMismatch)?;
    Ok(Arc::new(certified))
}
