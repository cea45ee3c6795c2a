//! Settings of the control-plane daemon, from flags and `NEXPOINT_*` variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Directory for the embedded database, the CA and other state.
    #[arg(long, env = "NEXPOINT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL (sqlite://PATH or postgres://...). Default: SQLite in the data directory.
    #[arg(long, env = "NEXPOINT_DATABASE_URL")]
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
    #[command(flatten)]
    pub subscription: SubscriptionArgs,
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
