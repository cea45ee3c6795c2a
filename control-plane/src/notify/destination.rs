//! A place notifications are delivered to, with its own cursor.

use reqwest::Url;

use super::telegram::TelegramSettings;
use super::{DeliveryError, NotifySettings, discord, telegram, webhook};
use crate::domain::Action;
use crate::store::Notification;

#[derive(Debug, Clone)]
pub enum Channel {
    Webhook {
        url: Url,
        secret: Option<String>,
    },
    Telegram {
        settings: TelegramSettings,
        chat_id: i64,
    },
    Discord {
        url: Url,
    },
}

#[derive(Debug, Clone)]
pub struct Destination {
    /// The cursor's name in the database. Secrets (a bot token, a Discord
    /// webhook's token) never appear in it: it is shown by `GET /api/jobs`.
    pub key: String,
    /// Only notifications about this admin's users (an admin's own chat).
    pub admin_id: Option<i64>,
    pub channel: Channel,
}

/// A short stable digest naming a secret-bearing URL without showing it.
fn fingerprint(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..6])
}

impl Destination {
    /// The destinations configured at start: every webhook address, every
    /// Telegram admin chat, the global Discord webhook.
    pub fn configured(settings: &NotifySettings) -> Vec<Self> {
        let mut all: Vec<Self> = settings
            .webhooks
            .iter()
            .map(|url| Self {
                key: format!(
                    "webhook:{}:{}",
                    url.host_str().unwrap_or_default(),
                    fingerprint(url.as_str())
                ),
                admin_id: None,
                channel: Channel::Webhook {
                    url: url.clone(),
                    secret: settings.webhook_secret.clone(),
                },
            })
            .collect();
        if let Some(tg) = &settings.telegram {
            all.extend(tg.chats.iter().map(|chat| Self {
                key: format!("telegram:{chat}"),
                admin_id: None,
                channel: Channel::Telegram {
                    settings: tg.clone(),
                    chat_id: *chat,
                },
            }));
        }
        if let Some(url) = &settings.discord_webhook {
            all.push(Self {
                key: format!("discord:{}", fingerprint(url.as_str())),
                admin_id: None,
                channel: Channel::Discord { url: url.clone() },
            });
        }
        all
    }

    /// An admin's own chats: its `telegram_id` (when a bot is configured)
    /// and its `discord_webhook` (when it is a valid URL).
    pub fn of_admin(
        settings: &NotifySettings,
        admin_id: i64,
        telegram_id: Option<i64>,
        discord_webhook: Option<&str>,
    ) -> Vec<Self> {
        let mut all = Vec::new();
        if let (Some(tg), Some(chat)) = (&settings.telegram, telegram_id) {
            all.push(Self {
                key: format!("telegram-admin:{admin_id}:{chat}"),
                admin_id: Some(admin_id),
                channel: Channel::Telegram {
                    settings: tg.clone(),
                    chat_id: chat,
                },
            });
        }
        if let Some(url) = discord_webhook.and_then(|u| super::parse_http_url(u).ok()) {
            all.push(Self {
                key: format!("discord-admin:{admin_id}:{}", fingerprint(url.as_str())),
                admin_id: Some(admin_id),
                channel: Channel::Discord { url },
            });
        }
        all
    }

    /// Notifications per delivery: webhooks take arrays, chats a message
    /// each.
    pub fn batch(&self) -> i64 {
        match self.channel {
            Channel::Webhook { .. } => webhook::BATCH,
            Channel::Telegram { .. } | Channel::Discord { .. } => 1,
        }
    }

    /// Marzban webhooks carry user actions only: their receivers expect a
    /// user in each item. Chats get everything.
    pub fn accepts(&self, action: Action) -> bool {
        match self.channel {
            Channel::Webhook { .. } => action.is_user_action(),
            Channel::Telegram { .. } | Channel::Discord { .. } => true,
        }
    }

    /// Delivers `batch` (accepted notifications, in order); `tries` counts
    /// this attempt.
    pub async fn deliver(
        &self,
        clients: &Clients,
        batch: &[&Notification],
        tries: i64,
    ) -> Result<(), DeliveryError> {
        match &self.channel {
            Channel::Webhook { url, secret } => {
                webhook::send(&clients.plain, url, secret.as_deref(), batch, tries).await
            }
            Channel::Telegram { settings, chat_id } => {
                for n in batch {
                    telegram::send(&clients.telegram, settings, *chat_id, n).await?;
                }
                Ok(())
            }
            Channel::Discord { url } => {
                for n in batch {
                    discord::send(&clients.plain, url, n).await?;
                }
                Ok(())
            }
        }
    }
}

/// HTTP clients: the Bot API may need its own proxy.
#[derive(Debug, Clone)]
pub struct Clients {
    pub plain: reqwest::Client,
    pub telegram: reqwest::Client,
}

impl Clients {
    pub fn new(settings: &NotifySettings) -> reqwest::Result<Self> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(settings.timeout)
                .user_agent(concat!("nexpoint/", env!("CARGO_PKG_VERSION")))
        };
        let mut telegram = builder();
        if let Some(proxy) = settings.telegram.as_ref().and_then(|t| t.proxy.clone()) {
            telegram = telegram.proxy(reqwest::Proxy::all(proxy)?);
        }
        Ok(Self {
            plain: builder().build()?,
            telegram: telegram.build()?,
        })
    }
}
