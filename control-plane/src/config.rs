//! Settings of the control-plane daemon: flags, `NEXPOINT_*` variables and
//! the `--config` TOML file (layered by `nexpoint-config`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use reqwest::Url;

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Directory for the embedded database, the CA and other state.
    #[arg(long, env = "NEXPOINT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL (sqlite://PATH or postgres://...). Default: SQLite in the data directory.
    #[arg(long, env = "NEXPOINT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => sqlite_url(&self.data_dir.join("nexpoint.db")),
        }
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A TOML settings file: keys are these flags' names in snake case
    /// (`nexpoint config example` prints them all). The environment and
    /// flags win over it.
    #[arg(long, env = "NEXPOINT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address for the REST API, subscriptions and node enrollment. Port 0 picks a free port.
    #[arg(long, env = "NEXPOINT_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The URL nodes and subscribers reach this server at (enrollment commands,
    /// subscription links). Default: http://<listen address>.
    #[arg(long, env = "NEXPOINT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// An Xray-format JSON template whose inbounds every node serves. Loaded at
    /// every start; without it the stored (or built-in) template is used.
    #[arg(long, env = "NEXPOINT_CORE_CONFIG")]
    pub core_config: Option<PathBuf>,
    /// How often each node task reconciles and collects usage (milliseconds).
    #[arg(long, env = "NEXPOINT_NODE_SYNC_INTERVAL_MS", default_value_t = 10_000)]
    pub node_sync_interval_ms: u64,
    /// Per-user usage is kept per hour for this many days, then per day.
    #[arg(long, env = "NEXPOINT_USAGE_HOURLY_DAYS", default_value_t = 31)]
    pub usage_hourly_days: u32,
    /// Per-user usage history older than this many days is dropped (0 keeps it).
    #[arg(long, env = "NEXPOINT_USAGE_RETENTION_DAYS", default_value_t = 365)]
    pub usage_retention_days: u32,
    /// Lifetime of admin access tokens, in minutes.
    #[arg(
        long,
        env = "NEXPOINT_JWT_ACCESS_TOKEN_EXPIRE_MINUTES",
        default_value_t = 1440
    )]
    pub jwt_expire_minutes: i64,
    /// Lifetime of node enrollment tokens, in minutes.
    #[arg(
        long,
        env = "NEXPOINT_ENROLLMENT_TOKEN_EXPIRE_MINUTES",
        default_value_t = 1440
    )]
    pub enrollment_expire_minutes: i64,
    /// Where the admin dashboard is served (any path but the root).
    #[arg(long, env = "NEXPOINT_DASHBOARD_PATH", default_value = "/dashboard/")]
    pub dashboard_path: String,
    /// Bearer token that `/metrics` requires. Without one, `/metrics`
    /// answers loopback clients only.
    #[arg(long, env = "NEXPOINT_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Also run a node agent on this host (with its local core), enrolled
    /// and reached like any other node: a one-server installation in one
    /// service. `NEXPOINT_NODE_*` variables configure the agent.
    #[arg(long, env = "NEXPOINT_LOCAL_NODE")]
    pub local_node: bool,
    /// The local node's mutual-TLS port, on loopback.
    #[arg(long, env = "NEXPOINT_LOCAL_NODE_PORT", default_value_t = 62050)]
    pub local_node_port: u16,
    /// The `nexpoint-node` binary; default: next to this one.
    #[arg(long, env = "NEXPOINT_LOCAL_NODE_BIN")]
    pub local_node_bin: Option<PathBuf>,
    #[command(flatten)]
    pub subscription: SubscriptionArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[command(flatten)]
    pub jobs: JobArgs,
}

/// Where notifications go (Marzban's WEBHOOK_*, TELEGRAM_*, DISCORD_* and
/// NOTIFY_* settings, under `NEXPOINT_`).
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// Webhook addresses (Marzban's WEBHOOK_ADDRESS), comma-separated: each
    /// receives every user event as a JSON array, in order, retried until
    /// it answers 2xx.
    #[arg(long, env = "NEXPOINT_WEBHOOK_ADDRESS", value_delimiter = ',',
        value_parser = crate::notify::parse_http_url)]
    pub webhook_address: Vec<Url>,
    /// Sent as `x-webhook-secret` (Marzban's WEBHOOK_SECRET) and the key of
    /// the `x-nexpoint-signature` HMAC.
    #[arg(long, env = "NEXPOINT_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Telegram bot token (Marzban's TELEGRAM_API_TOKEN); without it nothing
    /// goes to Telegram.
    #[arg(long, env = "NEXPOINT_TELEGRAM_API_TOKEN", hide_env_values = true)]
    pub telegram_api_token: Option<String>,
    /// Chat ids that receive every notification (Marzban's
    /// TELEGRAM_ADMIN_ID), comma-separated. Admins with a `telegram_id`
    /// also receive those about their own users. Group chats are negative.
    #[arg(
        long,
        env = "NEXPOINT_TELEGRAM_ADMIN_ID",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub telegram_admin_id: Vec<i64>,
    /// The Bot API's base URL (a local Bot API server, a mirror).
    #[arg(long, env = "NEXPOINT_TELEGRAM_API_BASE", default_value = "https://api.telegram.org",
        value_parser = crate::notify::parse_http_url)]
    pub telegram_api_base: Url,
    /// An HTTP(S) proxy for the Bot API only (Marzban's TELEGRAM_PROXY_URL).
    #[arg(long, env = "NEXPOINT_TELEGRAM_PROXY_URL", value_parser = crate::notify::parse_http_url)]
    pub telegram_proxy_url: Option<Url>,
    /// A Discord webhook that receives every notification (Marzban's
    /// DISCORD_WEBHOOK_URL). Admins' own `discord_webhook`s receive those
    /// about their users.
    #[arg(long, env = "NEXPOINT_DISCORD_WEBHOOK_URL", value_parser = crate::notify::parse_http_url)]
    pub discord_webhook_url: Option<Url>,
    /// Usage percents a user is reminded at, comma-separated (Marzban's
    /// NOTIFY_REACHED_USAGE_PERCENT).
    #[arg(long, env = "NEXPOINT_NOTIFY_REACHED_USAGE_PERCENT", value_delimiter = ',',
        default_value = "80", value_parser = clap::value_parser!(i64).range(1..=100))]
    pub notify_reached_usage_percent: Vec<i64>,
    /// Days before expiry a user is reminded at, comma-separated (Marzban's
    /// NOTIFY_DAYS_LEFT).
    #[arg(long, env = "NEXPOINT_NOTIFY_DAYS_LEFT", value_delimiter = ',', default_value = "3",
        value_parser = clap::value_parser!(i64).range(1..))]
    pub notify_days_left: Vec<i64>,
    /// The longest wait between two delivery attempts to a failing
    /// destination (seconds); waits double from one second up to it.
    #[arg(long, env = "NEXPOINT_NOTIFY_RETRY_MAX_SECONDS", default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub notify_retry_max_seconds: u64,
    /// How long one delivery request may take (seconds).
    #[arg(long, env = "NEXPOINT_NOTIFY_TIMEOUT_SECONDS", default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub notify_timeout_seconds: u64,
}

impl NotifyArgs {
    pub fn settings(&self) -> crate::notify::NotifySettings {
        use std::time::Duration;

        use crate::notify::{NotifySettings, backoff::Backoff, telegram::TelegramSettings};
        NotifySettings {
            webhooks: self.webhook_address.clone(),
            webhook_secret: self.webhook_secret.clone().filter(|s| !s.is_empty()),
            telegram: self
                .telegram_api_token
                .clone()
                .filter(|t| !t.is_empty())
                .map(|token| TelegramSettings {
                    api_base: self.telegram_api_base.clone(),
                    token,
                    chats: self.telegram_admin_id.clone(),
                    proxy: self.telegram_proxy_url.clone(),
                }),
            discord_webhook: self.discord_webhook_url.clone(),
            backoff: Backoff {
                first: Duration::from_secs(1),
                max: Duration::from_secs(self.notify_retry_max_seconds),
            },
            timeout: Duration::from_secs(self.notify_timeout_seconds),
        }
    }

    pub fn reminder_thresholds(&self) -> crate::store::ReminderThresholds {
        crate::store::ReminderThresholds::new(
            self.notify_reached_usage_percent.clone(),
            self.notify_days_left.clone(),
        )
    }
}

/// The periodic jobs: what they keep and how often they run.
#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    /// Days a user stays expired before it is deleted, unless it has its own
    /// `auto_delete_in_days` (Marzban's USERS_AUTODELETE_DAYS); negative: never.
    #[arg(long, env = "NEXPOINT_USERS_AUTODELETE_DAYS", default_value_t = -1,
        allow_negative_numbers = true)]
    pub users_autodelete_days: i64,
    /// Whether limited users are auto-deleted too (Marzban's
    /// USER_AUTODELETE_INCLUDE_LIMITED_ACCOUNTS).
    #[arg(long, env = "NEXPOINT_USER_AUTODELETE_INCLUDE_LIMITED_ACCOUNTS",
        default_value_t = false, action = clap::ArgAction::Set)]
    pub user_autodelete_include_limited_accounts: bool,
    /// Seconds between auto-delete passes.
    #[arg(long, env = "NEXPOINT_JOB_AUTO_DELETE_INTERVAL_SECONDS", default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub job_auto_delete_interval_seconds: u64,
    /// Seconds between days-left reminder passes.
    #[arg(long, env = "NEXPOINT_JOB_REMINDERS_INTERVAL_SECONDS", default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub job_reminders_interval_seconds: u64,
    /// Seconds between usage history roll-ups.
    #[arg(long, env = "NEXPOINT_JOB_USAGE_RETENTION_INTERVAL_SECONDS", default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub job_usage_retention_interval_seconds: u64,
    /// Seconds between prunings of delivered notifications.
    #[arg(long, env = "NEXPOINT_JOB_NOTIFICATION_PRUNE_INTERVAL_SECONDS", default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub job_notification_prune_interval_seconds: u64,
    /// Delivered notifications are kept this many days.
    #[arg(
        long,
        env = "NEXPOINT_NOTIFICATION_RETENTION_DAYS",
        default_value_t = 7
    )]
    pub notification_retention_days: u32,
}

/// How subscriptions are served (Marzban's SUB_* settings).
#[derive(Debug, Clone, Args)]
pub struct SubscriptionArgs {
    /// A JSON file of User-Agent rules replacing the built-in ones: an array
    /// of {"pattern": REGEX, "format": v2ray|v2ray-json|clash|clash-meta|sing-box|outline,
    /// "min_version"?: "1.2"}; the first match wins, no match gives v2ray.
    #[arg(long, env = "NEXPOINT_SUBSCRIPTION_RULES")]
    pub subscription_rules: Option<PathBuf>,
    /// `profile-update-interval` sent to apps, in hours.
    #[arg(
        long,
        env = "NEXPOINT_SUB_UPDATE_INTERVAL",
        default_value_t = 12,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub subscription_update_interval: u32,
    /// `support-url` sent to apps.
    #[arg(long, env = "NEXPOINT_SUB_SUPPORT_URL")]
    pub subscription_support_url: Option<String>,
    /// `profile-web-page-url` sent to apps; default: the subscription URL (its page).
    #[arg(long, env = "NEXPOINT_SUB_PROFILE_PAGE_URL")]
    pub subscription_page_url: Option<String>,
    /// Operator templates: `subscription/index.html` replaces the subscription
    /// page, `home/index.html` the home page (Jinja2, as Marzban's).
    #[arg(long, env = "NEXPOINT_CUSTOM_TEMPLATES_DIRECTORY")]
    pub templates_dir: Option<PathBuf>,
    /// What an expired user's app shows instead of servers (remark variables apply).
    #[arg(long, env = "NEXPOINT_SUB_EXPIRED_REMARK")]
    pub expired_remark: Option<String>,
    /// What a user over her data limit sees instead of servers.
    #[arg(long, env = "NEXPOINT_SUB_LIMITED_REMARK")]
    pub limited_remark: Option<String>,
    /// What a disabled user sees instead of servers.
    #[arg(long, env = "NEXPOINT_SUB_DISABLED_REMARK")]
    pub disabled_remark: Option<String>,
}

impl SubscriptionArgs {
    pub fn settings(
        &self,
    ) -> Result<crate::subscription::SubscriptionSettings, crate::subscription::format::RulesError>
    {
        use crate::subscription::format::FormatRules;
        use crate::subscription::{InactiveRemarks, SubscriptionSettings};
        let defaults = InactiveRemarks::default();
        Ok(SubscriptionSettings {
            rules: match &self.subscription_rules {
                Some(path) => FormatRules::load(path)?,
                None => FormatRules::default(),
            },
            update_interval_hours: self.subscription_update_interval,
            support_url: self.subscription_support_url.clone(),
            page_url: self.subscription_page_url.clone(),
            inactive_remarks: InactiveRemarks {
                expired: self.expired_remark.clone().unwrap_or(defaults.expired),
                limited: self.limited_remark.clone().unwrap_or(defaults.limited),
                disabled: self.disabled_remark.clone().unwrap_or(defaults.disabled),
            },
            templates_dir: self.templates_dir.clone(),
        })
    }
}
