//! Subscription tokens in Marzban's format, so links handed out by an
//! imported Marzban keep working: base64url("username,unix_ts") followed by
//! the first 10 characters of base64url(sha256(b64 + secret)).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const SIGNATURE_LEN: usize = 10;

fn signature(payload_b64: &str, secret: &str) -> String {
    let digest = Sha256::digest(format!("{payload_b64}{secret}").as_bytes());
    let mut sig = URL_SAFE_NO_PAD.encode(digest);
    sig.truncate(SIGNATURE_LEN);
    sig
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

pub fn issue_at(username: &str, unix_ts: i64, secret: &str) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!("{username},{unix_ts}"));
    let sig = signature(&payload, secret);
    format!("{payload}{sig}")
}

/// The username and issue time of a token with a valid signature.
pub fn verify(token: &str, secret: &str) -> Option<(String, i64)> {
    if token.len() < 15 || !token.is_ascii() {
        return None;
    }
    let (payload, sig) = token.split_at(token.len() - SIGNATURE_LEN);
    // Compared in constant time so response timing leaks nothing of the MAC.
    let expected = signature(payload, secret);
    if !constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
        return None;
    }
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
        let token = issue_at("alice", 1_700_000_000, "s3cret");
        assert_eq!(
            verify(&token, "s3cret"),
            Some(("alice".into(), 1_700_000_000))
        );
        assert_eq!(verify(&token, "other"), None);
        let forged = issue_at("mallory", 1_700_000_000, "guess");
        assert_eq!(verify(&forged, "s3cret"), None);
        assert_eq!(verify("short", "s3cret"), None);
        assert_eq!(verify("ünïcödé-ünïcödé-ü", "s3cret"), None);
    }

    #[test]
    fn matches_marzbans_construction() {
        // base64url("alice,1700000000") without padding, then the signature.
        let token = issue_at("alice", 1_700_000_000, "k");
        assert!(token.starts_with("YWxpY2UsMTcwMDAwMDAwMA"));
        assert_eq!(token.len(), "YWxpY2UsMTcwMDAwMDAwMA".len() + 10);
    }
}
