//! Subscription tokens. Nexpoint issues `PAYLOAD.MAC`: PAYLOAD is
//! base64url("username,unix_ts"), MAC the full HMAC-SHA256 of it under the
//! server's secret (base64url). It also accepts Marzban's format, so links
//! handed out by an imported Marzban keep working: the same PAYLOAD followed
//! by the first 10 characters of base64url(sha256(PAYLOAD + secret)), no dot.
//! Either way the issue time is what revocation compares against.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const MARZBAN_SIGNATURE_LEN: usize = 10;
/// Keeps these MACs apart from any other use of the same secret.
const MAC_CONTEXT: &[u8] = b"nexpoint subscription token v1\n";

fn marzban_signature(payload_b64: &str, secret: &str) -> String {
    let digest = Sha256::digest(format!("{payload_b64}{secret}").as_bytes());
    let mut sig = URL_SAFE_NO_PAD.encode(digest);
    sig.truncate(MARZBAN_SIGNATURE_LEN);
    sig
}

fn mac(payload_b64: &str, secret: &str) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(MAC_CONTEXT);
    mac.update(payload_b64.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn payload(username: &str, unix_ts: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{username},{unix_ts}"))
}

pub fn issue(username: &str, secret: &str) -> String {
    issue_at(username, crate::store::now(), secret)
}

/// A token for `user` that is valid now: never older than the user's last
/// revocation (which is stored a second ahead, so that a token handed out in
/// the same second as the revocation is not one it revoked).
pub fn issue_for(user: &crate::store::User, secret: &str) -> String {
    let issued_at = crate::store::now().max(user.sub_revoked_at.unwrap_or(0));
    issue_at(&user.username, issued_at, secret)
}

/// A Nexpoint token issued at `unix_ts`.
pub fn issue_at(username: &str, unix_ts: i64, secret: &str) -> String {
    let payload = payload(username, unix_ts);
    let mac = URL_SAFE_NO_PAD.encode(mac(&payload, secret));
    format!("{payload}.{mac}")
}

/// A token in Marzban's format, as an imported Marzban handed them out.
pub fn issue_marzban_at(username: &str, unix_ts: i64, secret: &str) -> String {
    let payload = payload(username, unix_ts);
    let sig = marzban_signature(&payload, secret);
    format!("{payload}{sig}")
}

/// The username and issue time of a token with a valid signature, in
/// either format.
pub fn verify(token: &str, secret: &str) -> Option<(String, i64)> {
    if token.len() < 15 || !token.is_ascii() {
        return None;
    }
    let payload = match token.split_once('.') {
        Some((payload, mac_b64)) => {
            let given = URL_SAFE_NO_PAD.decode(mac_b64).ok()?;
            // Compared in constant time so response timing leaks nothing of the MAC.
            if !constant_time_eq(&mac(payload, secret), &given) {
                return None;
            }
            payload
        }
        None => {
            let (payload, sig) = token.split_at(token.len() - MARZBAN_SIGNATURE_LEN);
            let expected = marzban_signature(payload, secret);
            if !constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
                return None;
            }
            payload
        }
    };
    let decoded = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, ts) = text.rsplit_once(',')?;
    Some((username.to_owned(), ts.parse().ok()?))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_forgeries_do_not() {
        for issue in [issue_at, issue_marzban_at] {
            let token = issue("alice", 1_700_000_000, "s3cret");
            assert_eq!(
                verify(&token, "s3cret"),
                Some(("alice".into(), 1_700_000_000))
            );
            assert_eq!(verify(&token, "other"), None);
            let forged = issue("mallory", 1_700_000_000, "guess");
            assert_eq!(verify(&forged, "s3cret"), None);
        }
        assert_eq!(verify("short", "s3cret"), None);
        assert_eq!(verify("ünïcödé-ünïcödé-ü", "s3cret"), None);
        // A Nexpoint payload with a Marzban signature glued on, or a MAC
        // cut short, is no token.
        let token = issue_at("alice", 1_700_000_000, "s3cret");
        let (payload, mac) = token.split_once('.').unwrap();
        assert_eq!(verify(&format!("{payload}.{}", &mac[..10]), "s3cret"), None);
        let swapped = issue_at("alice", 1_700_000_001, "s3cret");
        let (_, other_mac) = swapped.split_once('.').unwrap();
        assert_eq!(verify(&format!("{payload}.{other_mac}"), "s3cret"), None);
    }

    #[test]
    fn nexpoint_tokens_are_url_safe_and_carry_a_full_mac() {
        let token = issue_at("alice", 1_700_000_000, "k");
        let (payload, mac) = token.split_once('.').unwrap();
        assert_eq!(payload, "YWxpY2UsMTcwMDAwMDAwMA");
        assert_eq!(URL_SAFE_NO_PAD.decode(mac).unwrap().len(), 32);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
    }

    #[test]
    fn matches_marzbans_construction() {
        // base64url("alice,1700000000") without padding, then the signature.
        let token = issue_marzban_at("alice", 1_700_000_000, "k");
        assert!(token.starts_with("YWxpY2UsMTcwMDAwMDAwMA"));
        assert_eq!(token.len(), "YWxpY2UsMTcwMDAwMDAwMA".len() + 10);
        assert!(!token.contains('.'));
    }
}
