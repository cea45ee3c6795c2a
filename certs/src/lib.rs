//! Nexpoint's internal PKI.
//!
//! The control plane owns a CA. It issues itself a client certificate and signs
//! each node's CSR (the node's key never leaves the node). Both sides then pin:
//! the control plane accepts only the node certificate it issued for that node,
//! and the agent accepts only the control plane's client certificate.

mod authority;
mod bundle;
mod error;
mod files;
mod pem;
mod request;
mod server_cert;
mod tls;
mod verify;

pub use authority::{CONTROL_PLANE_COMMON_NAME, CertificateAuthority, IssuedCertificate};
pub use bundle::{BUNDLE_PREFIX, BundleError, NodeBundle};
pub use error::CertError;
pub use files::write_private_file;
pub use pem::{certificate_not_after, fingerprint_der, fingerprint_pem, parse_certificate_pem};
pub use request::node_key_and_csr;
pub use server_cert::NodeCertificate;
pub use tls::{
    control_plane_client_config, node_server_config, node_server_config_with_certificate,
    node_server_name,
};
pub use verify::{verify_control_plane_certificate, verify_key_matches, verify_node_certificate};
