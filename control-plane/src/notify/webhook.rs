//! Marzban-compatible webhooks: a JSON array of items POSTed with the
//! shared secret in `x-webhook-secret`, plus an HMAC-SHA256 signature over
//! the timestamp and the body so receivers can reject forgeries (without
//! the secret on the wire) and replays (an old timestamp).

use hmac::{Hmac, Mac};
use reqwest::Url;
use serde_json::{Value, json};
use sha2::Sha256;

use super::DeliveryError;
use crate::store::Notification;

pub const SECRET_HEADER: &str = "x-webhook-secret";
pub const TIMESTAMP_HEADER: &str = "x-nexpoint-timestamp";
pub const SIGNATURE_HEADER: &str = "x-nexpoint-signature";

/// Items per POST.
pub const BATCH: i64 = 50;

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Marzban's item (username, action, enqueued_at, send_at, tries, user,
/// by, used_percent, days_left, reason) plus `id`, the idempotency key: the
/// same notification always carries the same id, however often it is sent.
pub fn item(n: &Notification, send_at: i64, tries: i64) -> Value {
    let mut item = n.payload.clone();
    if let Value::Object(map) = &mut item {
        map.insert("id".into(), json!(n.id));
        map.insert("send_at".into(), json!(send_at));
        map.insert("tries".into(), json!(tries));
    }
    item
}

/// The request body for `batch`.
pub fn body(batch: &[&Notification], send_at: i64, tries: i64) -> Vec<u8> {
    let items: Vec<Value> = batch.iter().map(|n| item(n, send_at, tries)).collect();
    serde_json::to_vec(&items).expect("JSON values serialize")
}

/// POSTs `batch`; any 2xx is a delivery, anything else is retried (a
/// webhook receiver that refuses is as likely misconfigured for a while as
/// for good, and skipping would lose notifications).
pub async fn send(
    client: &reqwest::Client,
    url: &Url,
    secret: Option<&str>,
    batch: &[&Notification],
    tries: i64,
) -> Result<(), DeliveryError> {
    let now = crate::store::now();
    let body = body(batch, now, tries);
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(secret) = secret {
        request = request
            .header(SECRET_HEADER, secret)
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, signature(secret, now, &body));
    }
    let response = request.body(body).send().await?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(DeliveryError::retry(format!("HTTP {status}")))
}

#[cfg(test)]
mod tests {
    use crate::domain::Action;

    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Independently computed: printf '1700000000.[]' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature("s3cret", 1_700_000_000, b"[]"),
            "sha256=512e49db73a127cba8a4f4b6ef10cb123f09ca2f7a456f76681f1ee914c4a30c"
        );
        assert_ne!(
            signature("s3cret", 1_700_000_000, b"[]"),
            signature("s3cret", 1_700_000_001, b"[]"),
            "a replayed body with a new timestamp needs a new signature"
        );
        assert_ne!(
            signature("s3cret", 1_700_000_000, b"[]"),
            signature("other", 1_700_000_000, b"[]")
        );
    }

    #[test]
    fn items_are_marzban_shaped_with_a_stable_id() {
        let n = Notification {
            id: 42,
            created_at: 1,
            action: Action::UserLimited,
            subject: "alice".into(),
            admin_id: Some(1),
            payload: json!({"username": "alice", "action": "user_limited", "enqueued_at": 1,
                "user": {"username": "alice"}, "by": null, "used_percent": null,
                "days_left": null, "reason": null}),
        };
        let first: Value = serde_json::from_slice(&body(&[&n], 5, 1)).unwrap();
        let again: Value = serde_json::from_slice(&body(&[&n], 9, 2)).unwrap();
        assert_eq!(first[0]["id"], 42);
        assert_eq!(again[0]["id"], 42);
        assert_eq!(again[0]["tries"], 2);
        for key in [
            "username",
            "action",
            "enqueued_at",
            "send_at",
            "tries",
            "user",
            "by",
            "used_percent",
            "days_left",
            "reason",
        ] {
            assert!(first[0].get(key).is_some(), "{key}");
        }
    }
}
