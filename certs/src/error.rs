use std::path::PathBuf;

use crate::bundle::BundleError;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A certificate that does not chain to the expected CA, is expired, or
    /// is not issued for the expected name/purpose.
    #[error("{what} is refused: {reason}")]
    NotTrusted { what: String, reason: String },
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl CertError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
