//! All SQL lives here. One code path serves SQLite and PostgreSQL through
//! sqlx's Any driver: portable SQL with `$n` placeholders (in order), unix-second
//! timestamps and integer booleans, so both backends behave the same.

mod account_rows;
mod admins;
mod deadlines;
mod error;
mod health;
mod hosts;
mod node_config;
mod nodes;
mod outbox;
mod reminders;
mod revision;
mod settings;
mod system;
mod templates;
mod usage;
mod usage_order;
mod user_changes;
mod user_list;
mod user_usage;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use admins::{Admin, AdminContact, AdminUpdate, NewAdmin};
pub use deadlines::DuePass;
pub use error::StoreError;
pub use hosts::{Host, NewHost};
pub use node_config::IssuedNodeCertificate;
pub use nodes::{NewNode, Node, NodeHealth, NodeUpdate, NodeUsage};
pub use outbox::{DeliveryState, Notice, Notification, UserNote};
pub use reminders::ReminderThresholds;
pub use revision::UserChanges;
pub use system::{ONLINE_WINDOW_SECS, Traffic, UserCounts};
pub use templates::{TemplateFields, UserTemplate};
pub use usage::{UsageBatch, UsageRetention, UserUsageDelta};
pub use user_changes::Owner;
pub use user_list::{Sort, SortKey, UserFilter};
pub use user_usage::{NodeTraffic, TrafficOf};
pub use users::{NewUser, ServedUser, User, UserDraft};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Figures GET /api/system keeps between calls.
    system: std::sync::Arc<system::SystemCache>,
    /// The core config template, read on nearly every request.
    config: std::sync::Arc<settings::ConfigCache>,
    /// The enabled hosts, read by every user response and subscription.
    hosts_cache: std::sync::Arc<hosts::HostsCache>,
    admin_auth: std::sync::Arc<admins::AdminAuthCache>,
    /// Wakes the lifecycle clock when a write sets an earlier deadline.
    deadlines: std::sync::Arc<deadlines::DeadlineWatch>,
    /// Wakes the notification dispatcher after a commit that enqueued.
    outbox: std::sync::Arc<outbox::OutboxWatch>,
    reminders: std::sync::Arc<ReminderThresholds>,
    /// Wakes the usage history fold when a collection queued history.
    usage_history: std::sync::Arc<tokio::sync::Notify>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL {url:?}: use sqlite://PATH or postgres://..."
            )));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool_options = match backend {
            // SQLite allows one writer at a time; a small pool plus a busy
            // timeout turns contention into waiting instead of
            // "database is locked" errors.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(4)
                // An embedded database has no connection to lose: pinging it
                // before every query would only double the round trips.
                .test_before_acquire(false)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                             PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; \
                             PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            // Persistent in the file: readers never block the writer.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Self {
            pool,
            backend,
            system: Default::default(),
            config: Default::default(),
            hosts_cache: Default::default(),
            admin_auth: Default::default(),
            deadlines: Default::default(),
            outbox: Default::default(),
            reminders: Default::default(),
            usage_history: Default::default(),
        })
    }

    /// A transaction that writes. On SQLite it takes the write lock at once
    /// (BEGIN IMMEDIATE), waiting under the busy timeout: a deferred
    /// transaction that read first could not upgrade once another writer
    /// committed, and would fail with "database is locked" however long the
    /// timeout.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
