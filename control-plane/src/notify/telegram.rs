//! Telegram: one message per notification through the Bot API's
//! `sendMessage`, HTML parse mode, to the configured admin chats and to the
//! owning admin's `telegram_id`.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use super::DeliveryError;
use super::message::Message;
use crate::store::Notification;

/// Telegram's limit on a message's text.
pub const MAX_TEXT_CHARS: usize = 4096;

#[derive(Debug, Clone)]
pub struct TelegramSettings {
    /// The Bot API base, `https://api.telegram.org` unless a local Bot API
    /// server or a mirror is used.
    pub api_base: Url,
    pub token: String,
    /// Chats every notification goes to (Marzban's TELEGRAM_ADMIN_ID).
    pub chats: Vec<i64>,
    /// A proxy for the Bot API only (where it is blocked).
    pub proxy: Option<Url>,
}

impl TelegramSettings {
    /// `{api_base}/bot{token}/sendMessage`.
    fn send_message_url(&self) -> Result<Url, DeliveryError> {
        let base = self.api_base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/bot{}/sendMessage", self.token))
            .map_err(|e| DeliveryError::Rejected(format!("Bot API URL: {e}")))
    }
}

/// The `sendMessage` body for `n`.
pub fn request_body(chat_id: i64, n: &Notification) -> Value {
    let mut text = Message::of(n).html();
    if text.chars().count() > MAX_TEXT_CHARS {
        // Values are clipped already; this only guards the invariant.
        text = Message {
            fields: Vec::new(),
            ..Message::of(n)
        }
        .html();
    }
    json!({
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
}

pub async fn send(
    client: &reqwest::Client,
    settings: &TelegramSettings,
    chat_id: i64,
    n: &Notification,
) -> Result<(), DeliveryError> {
    let response = client
        .post(settings.send_message_url()?)
        .json(&request_body(chat_id, n))
        .send()
        .await?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // The Bot API explains itself: {"ok": false, "description": ...,
    // "parameters": {"retry_after": N}}. The token is in the URL, never in
    // what is logged here.
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let description = answer["description"].as_str().unwrap_or("").to_owned();
    let message = format!("Telegram answered {status}: {description}");
    match status {
        StatusCode::TOO_MANY_REQUESTS => Err(DeliveryError::Retry {
            message,
            after: answer["parameters"]["retry_after"]
                .as_u64()
                .map(Duration::from_secs),
        }),
        // A chat that does not exist or blocked the bot, a malformed
        // message: sending it again cannot work.
        StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
            Err(DeliveryError::Rejected(message))
        }
        _ => Err(DeliveryError::retry(message)),
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::Action;

    use super::*;

    #[test]
    fn the_url_carries_the_token_under_the_api_base() {
        let settings = TelegramSettings {
            api_base: Url::parse("http://127.0.0.1:9/tg/").unwrap(),
            token: "123:abc".into(),
            chats: vec![],
            proxy: None,
        };
        assert_eq!(
            settings.send_message_url().unwrap().as_str(),
            "http://127.0.0.1:9/tg/bot123:abc/sendMessage"
        );
    }

    #[test]
    fn failed_logins_name_the_user_and_address_only() {
        let n = Notification {
            id: 1,
            created_at: 0,
            action: Action::LoginFailed,
            subject: "root".into(),
            admin_id: None,
            payload: json!({"username": "root", "address": "192.0.2.7"}),
        };
        let body = request_body(-100, &n);
        assert_eq!(body["chat_id"], -100);
        assert_eq!(body["parse_mode"], "HTML");
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("root") && text.contains("192.0.2.7"),
            "{text}"
        );
    }
}
