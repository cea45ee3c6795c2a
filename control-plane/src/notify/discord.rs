//! Discord: an embed per notification, to the global webhook and to each
//! admin's `discord_webhook`.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use super::DeliveryError;
use super::message::Message;
use crate::store::Notification;

/// Discord's limits: 256 characters of title, 1024 per field value.
fn embed(n: &Notification) -> Value {
    let m = Message::of(n);
    let fields: Vec<Value> = m
        .fields
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value, "inline": true }))
        .collect();
    json!({
        "title": m.title,
        "color": m.color,
        "fields": fields,
        "timestamp": crate::time_fmt::iso_utc(n.created_at),
    })
}

pub fn request_body(n: &Notification) -> Value {
    json!({ "embeds": [embed(n)] })
}

pub async fn send(
    client: &reqwest::Client,
    url: &Url,
    n: &Notification,
) -> Result<(), DeliveryError> {
    let response = client
        .post(url.clone())
        .json(&request_body(n))
        .send()
        .await?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let message = format!("Discord answered {status}: {}", answer["message"]);
    match status {
        StatusCode::TOO_MANY_REQUESTS => Err(DeliveryError::Retry {
            message,
            after: answer["retry_after"]
                .as_f64()
                .map(|s| Duration::from_secs_f64(s.max(0.0))),
        }),
        // A deleted webhook or a malformed embed stays so.
        s if s.is_client_error() => Err(DeliveryError::Rejected(message)),
        _ => Err(DeliveryError::retry(message)),
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::Action;

    use super::*;

    #[test]
    fn an_embed_per_notification() {
        let n = Notification {
            id: 1,
            created_at: 0,
            action: Action::NodeLost,
            subject: "edge-1".into(),
            admin_id: None,
            payload: json!({"message": "connection reset"}),
        };
        let body = request_body(&n);
        assert_eq!(body["embeds"][0]["title"], "Node lost");
        assert_eq!(body["embeds"][0]["fields"][0]["value"], "edge-1");
    }
}
