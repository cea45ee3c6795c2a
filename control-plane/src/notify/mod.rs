//! Delivery of the notification outbox (see `store::outbox`): Marzban
//! webhooks, Telegram and Discord. Each destination reads the outbox in
//! order through its own cursor and advances it only after a delivery
//! succeeded, so a receiver that was down gets everything once it is back,
//! and a crash re-sends (receivers dedupe by each item's `id`) rather than
//! loses.

pub mod backoff;
pub mod destination;
pub mod discord;
pub mod dispatcher;
pub mod message;
pub mod telegram;
pub mod webhook;

use std::time::Duration;

use reqwest::Url;

/// Where notifications go and how deliveries are retried.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub webhooks: Vec<Url>,
    pub webhook_secret: Option<String>,
    pub telegram: Option<telegram::TelegramSettings>,
    pub discord_webhook: Option<Url>,
    pub backoff: backoff::Backoff,
    /// Per request.
    pub timeout: Duration,
}

/// Why a delivery did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another try later (network, 5xx, 429): the batch is kept.
    #[error("{message}")]
    Retry {
        message: String,
        /// The receiver asked to wait at least this long (Telegram's and
        /// Discord's `retry_after`).
        after: Option<Duration>,
    },
    /// The receiver refuses this notification for good (a chat that does
    /// not exist, a deleted Discord webhook): retrying would block every
    /// later one, so it is skipped and logged.
    #[error("{0}")]
    Rejected(String),
}

impl DeliveryError {
    fn retry(message: impl Into<String>) -> Self {
        Self::Retry {
            message: message.into(),
            after: None,
        }
    }
}

impl From<reqwest::Error> for DeliveryError {
    fn from(e: reqwest::Error) -> Self {
        // The whole chain: "error sending request" alone says nothing.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::retry(message)
    }
}

/// Parses an http(s) URL setting, for clap: a malformed address is a clear
/// error naming the setting at start, not a failure at the first delivery.
pub fn parse_http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("must be an http:// or https:// URL with a host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_settings() {
        assert!(parse_http_url("https://hooks.example/x?y=1").is_ok());
        assert!(parse_http_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_http_url("hooks.example/x").is_err());
        assert!(parse_http_url("ftp://hooks.example").is_err());
        assert!(parse_http_url("http://").is_err());
    }
}
