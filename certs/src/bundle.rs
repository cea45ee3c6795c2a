//! Offline enrollment bundle: everything a node needs to serve the control
//! plane, in one copy-pasteable line, for hosts that cannot reach the control
//! plane while they are set up.
//!
//! Format: `nexpoint-bundle-v1:` followed by the base64url (no padding)
//! encoding of a JSON object with the fields of [`NodeBundle`]. The prefix
//! names the version so a later format can be told apart; base64url has no
//! characters a shell or a chat window mangles.
//!
//! Unlike token enrollment, the node's private key travels inside the bundle
//! (the control plane generated it), so a bundle is a secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::verify::{
    verify_control_plane_certificate, verify_key_matches, verify_node_certificate,
};
use crate::{CertError, parse_certificate_pem};

/// What every bundle starts with.
pub const BUNDLE_PREFIX: &str = "nexpoint-bundle-v1:";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBundle {
    pub node_id: i64,
    pub node_name: String,
    /// The control plane's URL, informational only; may be empty.
    #[serde(default)]
    pub control_plane: String,
    /// PEM of the control plane's CA.
    pub ca_certificate: String,
    /// PEM of the node's server certificate.
    pub certificate: String,
    /// PEM of the node's private key.
    pub key: String,
    /// PEM of the control plane's client certificate, which the node pins.
    pub control_plane_certificate: String,
}

/// Why a text is not a usable bundle (the certificate checks are
/// [`CertError::NotTrusted`] / [`CertError::KeyMismatch`]).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a node bundle: it must start with {BUNDLE_PREFIX:?} (was the whole line copied?)")]
    WrongPrefix,
    // The causes are part of the message, not `source`: printed with their
    // chain (anyhow's `{:#}`) they would appear twice.
    #[error("node bundle is damaged: not valid base64url ({0}); was the whole line copied?")]
    Base64(base64::DecodeError),
    #[error("node bundle is damaged: its contents are not the expected JSON ({0})")]
    Json(serde_json::Error),
    #[error("node bundle: {what} is not a PEM certificate ({reason})")]
    Certificate { what: &'static str, reason: String },
}

impl NodeBundle {
    /// The one-line form: prefix + base64url(JSON).
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a bundle always serializes");
        format!("{BUNDLE_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Parses and checks a bundle: the node certificate must be issued by the
    /// bundle's CA for `node_id`'s name and be valid now, the key must be the
    /// certificate's, and the control plane's certificate must be a client
    /// certificate of the same CA. Whitespace anywhere is ignored (terminals
    /// and mail clients wrap long lines), as is base64 padding.
    pub fn decode(text: &str) -> Result<NodeBundle, CertError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let payload = compact
            .strip_prefix(BUNDLE_PREFIX)
            .ok_or(BundleError::WrongPrefix)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(BundleError::Base64)?;
        let bundle: NodeBundle = serde_json::from_slice(&json).map_err(BundleError::Json)?;
        bundle.verify()?;
        Ok(bundle)
    }

    fn verify(&self) -> Result<(), CertError> {
        for (what, pem) in [
            ("the CA certificate", &self.ca_certificate),
            ("the node certificate", &self.certificate),
            (
                "the control plane's certificate",
                &self.control_plane_certificate,
            ),
        ] {
            parse_certificate_pem(pem).map_err(|e| BundleError::Certificate {
                what,
                reason: e.to_string(),
            })?;
        }
        verify_node_certificate(&self.ca_certificate, &self.certificate, self.node_id)?;
        verify_key_matches(&self.certificate, &self.key)?;
        verify_control_plane_certificate(&self.ca_certificate, &self.control_plane_certificate)?;
        Ok(())
    }
}

impl std::fmt::Debug for NodeBundle {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBundle")
            .field("node_id", &self.node_id)
            .field("node_name", &self.node_name)
            .field("control_plane", &self.control_plane)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CONTROL_PLANE_COMMON_NAME, CertificateAuthority, node_key_and_csr};

    fn bundle(ca: &CertificateAuthority, node_id: i64) -> NodeBundle {
        let (key, csr) = node_key_and_csr("n").unwrap();
        let certificate = ca
            .sign_node_csr(&csr, node_id, time::Duration::days(1))
            .unwrap();
        let cp = ca
            .issue_client(CONTROL_PLANE_COMMON_NAME, time::Duration::days(1))
            .unwrap();
        NodeBundle {
            node_id,
            node_name: "edge-1".into(),
            control_plane: "https://panel.example.com".into(),
            ca_certificate: ca.cert_pem().into(),
            certificate,
            key,
            control_plane_certificate: cp.cert_pem,
        }
    }

    fn reencode(json: &serde_json::Value) -> String {
        format!(
            "{BUNDLE_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(json.to_string())
        )
    }

    #[test]
    fn round_trips_as_one_line() {
        let ca = CertificateAuthority::generate().unwrap();
        let original = bundle(&ca, 9);
        let text = original.encode();
        assert!(text.starts_with("nexpoint-bundle-v1:"));
        assert!(
            text[BUNDLE_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "base64url without padding"
        );
        assert_eq!(NodeBundle::decode(&text).unwrap(), original);

        // Wrapped by a terminal, with a trailing newline: still the same.
        let wrapped: String = text
            .as_bytes()
            .chunks(76)
            .map(|c| format!("  {}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(NodeBundle::decode(&wrapped).unwrap(), original);
    }

    #[test]
    fn the_json_fields_are_the_documented_ones() {
        let ca = CertificateAuthority::generate().unwrap();
        let original = bundle(&ca, 3);
        let text = original.encode();
        let json: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(&text[BUNDLE_PREFIX.len()..])
                .unwrap(),
        )
        .unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "ca_certificate",
                "certificate",
                "control_plane",
                "control_plane_certificate",
                "key",
                "node_id",
                "node_name"
            ]
        );
        assert_eq!(json["node_id"], 3);
        // An empty (or missing) control plane URL is fine.
        let mut without_url = json.clone();
        without_url.as_object_mut().unwrap().remove("control_plane");
        assert_eq!(
            NodeBundle::decode(&reencode(&without_url))
                .unwrap()
                .control_plane,
            ""
        );
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let ca = CertificateAuthority::generate().unwrap();
        let b = bundle(&ca, 1);
        let debug = format!("{b:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(debug.contains("edge-1"));
    }

    #[test]
    fn wrong_prefix() {
        let ca = CertificateAuthority::generate().unwrap();
        let text = bundle(&ca, 1).encode();
        for bad in [
            &text[1..],
            &text.replace("-v1:", "-v2:"),
            "",
            "eyJub2RlX2lkIjox",
        ] {
            let error = NodeBundle::decode(bad).unwrap_err();
            assert!(
                matches!(error, CertError::Bundle(BundleError::WrongPrefix)),
                "{error}"
            );
            assert!(error.to_string().contains("nexpoint-bundle-v1:"), "{error}");
        }
    }

    #[test]
    fn bad_base64() {
        let error = NodeBundle::decode("nexpoint-bundle-v1:not*base64!").unwrap_err();
        assert!(
            matches!(error, CertError::Bundle(BundleError::Base64(_))),
            "{error}"
        );
        // Cut off mid-way: one leftover character is never valid base64.
        let ca = CertificateAuthority::generate().unwrap();
        let text = bundle(&ca, 1).encode();
        let cut = &text[..BUNDLE_PREFIX.len() + 4 * 20 + 1];
        assert!(matches!(
            NodeBundle::decode(cut).unwrap_err(),
            CertError::Bundle(BundleError::Base64(_))
        ));
    }

    #[test]
    fn bad_json() {
        let not_json = format!("{BUNDLE_PREFIX}{}", URL_SAFE_NO_PAD.encode("hello"));
        let missing_field = reencode(&serde_json::json!({"node_id": 1}));
        for text in [not_json, missing_field] {
            let error = NodeBundle::decode(&text).unwrap_err();
            assert!(
                matches!(error, CertError::Bundle(BundleError::Json(_))),
                "{error}"
            );
        }
    }

    #[test]
    fn garbage_instead_of_a_certificate() {
        let ca = CertificateAuthority::generate().unwrap();
        let mut b = bundle(&ca, 1);
        b.control_plane_certificate = "nope".into();
        let error = NodeBundle::decode(&b.encode()).unwrap_err();
        assert!(
            matches!(
                error,
                CertError::Bundle(BundleError::Certificate {
                    what: "the control plane's certificate",
                    ..
                })
            ),
            "{error}"
        );
    }

    #[test]
    fn certificate_not_signed_by_the_ca() {
        let ca = CertificateAuthority::generate().unwrap();
        let other = CertificateAuthority::generate().unwrap();
        let mut b = bundle(&ca, 1);
        b.ca_certificate = other.cert_pem().into();
        let error = NodeBundle::decode(&b.encode()).unwrap_err();
        assert!(matches!(error, CertError::NotTrusted { .. }), "{error}");
        assert!(
            error.to_string().contains("node-1.nexpoint.internal"),
            "{error}"
        );

        // A control plane certificate from another CA is refused too.
        let mut b = bundle(&ca, 1);
        b.control_plane_certificate = bundle(&other, 1).control_plane_certificate;
        let error = NodeBundle::decode(&b.encode()).unwrap_err();
        assert!(matches!(error, CertError::NotTrusted { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("control plane's certificate is refused: not signed by this CA"),
            "{error}"
        );
    }

    #[test]
    fn certificate_for_another_node() {
        let ca = CertificateAuthority::generate().unwrap();
        let mut b = bundle(&ca, 1);
        b.node_id = 2;
        let error = NodeBundle::decode(&b.encode()).unwrap_err();
        assert!(matches!(error, CertError::NotTrusted { .. }), "{error}");
    }

    #[test]
    fn key_not_matching_the_certificate() {
        let ca = CertificateAuthority::generate().unwrap();
        let mut b = bundle(&ca, 1);
        b.key = bundle(&ca, 1).key;
        let error = NodeBundle::decode(&b.encode()).unwrap_err();
        assert!(matches!(error, CertError::KeyMismatch), "{error}");
    }
}
