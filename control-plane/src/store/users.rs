use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::account_rows::deadline_of;
use super::outbox::{self, Notice, UserNote};
use super::{Backend, Store, StoreError, now, revision};
use crate::domain::{Account, Action, NextPlan, Proxies, ResetStrategy, UserStatus, user_email};

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub status: UserStatus,
    pub proxies: Proxies,
    /// Inbound tags the user is kept out of, by protocol. Stored as exclusions
    /// so inbounds added later reach existing users.
    pub excluded_inbounds: BTreeMap<String, Vec<String>>,
    pub used_traffic: i64,
    pub lifetime_used_traffic: i64,
    pub data_limit: Option<i64>,
    pub data_limit_reset_strategy: ResetStrategy,
    pub expire: Option<i64>,
    pub note: Option<String>,
    pub admin_id: Option<i64>,
    pub admin_username: Option<String>,
    pub on_hold_expire_duration: Option<i64>,
    pub on_hold_timeout: Option<i64>,
    pub auto_delete_in_days: Option<i64>,
    pub sub_revoked_at: Option<i64>,
    pub sub_updated_at: Option<i64>,
    pub sub_last_user_agent: Option<String>,
    pub online_at: Option<i64>,
    pub created_at: i64,
    pub edit_at: Option<i64>,
    /// Marzban's next_plan, stored as JSON.
    pub next_plan: Option<NextPlan>,
    /// When `status` last changed; `None` (rows from before it was kept)
    /// counts from `created_at`.
    pub last_status_change: Option<i64>,
    /// Start of the current usage period; `None` counts from `created_at`.
    pub last_usage_reset_at: Option<i64>,
}

impl User {
    pub fn email(&self) -> String {
        user_email(self.id, &self.username)
    }

    /// The lifecycle state the domain rules work on.
    pub fn account(&self) -> Account {
        Account {
            status: self.status,
            used_traffic: self.used_traffic,
            lifetime_used_traffic: self.lifetime_used_traffic,
            data_limit: self.data_limit,
            expire: self.expire,
            data_limit_reset_strategy: self.data_limit_reset_strategy,
            last_usage_reset_at: self.last_usage_reset_at,
            created_at: self.created_at,
            on_hold_expire_duration: self.on_hold_expire_duration,
            on_hold_timeout: self.on_hold_timeout,
            next_plan: self.next_plan.clone(),
            online_at: self.online_at,
            auto_delete_in_days: self.auto_delete_in_days,
            last_status_change: self.last_status_change,
        }
    }

    /// Takes the lifecycle state back from the domain (`created_at` is the
    /// row's and stays).
    pub fn set_account(&mut self, account: Account) {
        self.status = account.status;
        self.used_traffic = account.used_traffic;
        self.lifetime_used_traffic = account.lifetime_used_traffic;
        self.data_limit = account.data_limit;
        self.expire = account.expire;
        self.data_limit_reset_strategy = account.data_limit_reset_strategy;
        self.last_usage_reset_at = account.last_usage_reset_at;
        self.on_hold_expire_duration = account.on_hold_expire_duration;
        self.on_hold_timeout = account.on_hold_timeout;
        self.next_plan = account.next_plan;
        self.online_at = account.online_at;
        self.auto_delete_in_days = account.auto_delete_in_days;
        self.last_status_change = account.last_status_change;
    }
}

fn decode_err(column: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.into(),
        source: e.to_string().into(),
    }
}

/// What a node's core needs of a user (see [`Store::served_users`]).
#[derive(Debug, Clone)]
pub struct ServedUser {
    pub id: i64,
    pub username: String,
    pub status: UserStatus,
    pub proxies: Proxies,
    pub excluded_inbounds: BTreeMap<String, Vec<String>>,
}

impl<'r> sqlx::FromRow<'r, AnyRow> for ServedUser {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        let proxies: String = row.try_get("proxies")?;
        let excluded: String = row.try_get("excluded_inbounds")?;
        Ok(Self {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            status: UserStatus::parse(&status).ok_or_else(|| decode_err("status", &status))?,
            proxies: serde_json::from_str(&proxies).map_err(|e| decode_err("proxies", e))?,
            excluded_inbounds: serde_json::from_str(&excluded)
                .map_err(|e| decode_err("excluded_inbounds", e))?,
        })
    }
}

impl<'r> sqlx::FromRow<'r, AnyRow> for User {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        let strategy: String = row.try_get("data_limit_reset_strategy")?;
        let proxies: String = row.try_get("proxies")?;
        let excluded: String = row.try_get("excluded_inbounds")?;
        let next_plan: Option<String> = row.try_get("next_plan")?;
        Ok(Self {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            status: UserStatus::parse(&status).ok_or_else(|| decode_err("status", &status))?,
            proxies: serde_json::from_str(&proxies).map_err(|e| decode_err("proxies", e))?,
            excluded_inbounds: serde_json::from_str(&excluded)
                .map_err(|e| decode_err("excluded_inbounds", e))?,
            used_traffic: row.try_get("used_traffic")?,
            lifetime_used_traffic: row.try_get("lifetime_used_traffic")?,
            data_limit: row.try_get("data_limit")?,
            data_limit_reset_strategy: ResetStrategy::parse(&strategy)
                .ok_or_else(|| decode_err("data_limit_reset_strategy", &strategy))?,
            expire: row.try_get("expire")?,
            note: row.try_get("note")?,
            admin_id: row.try_get("admin_id")?,
            admin_username: row.try_get("admin_username")?,
            on_hold_expire_duration: row.try_get("on_hold_expire_duration")?,
            on_hold_timeout: row.try_get("on_hold_timeout")?,
            auto_delete_in_days: row.try_get("auto_delete_in_days")?,
            sub_revoked_at: row.try_get("sub_revoked_at")?,
            sub_updated_at: row.try_get("sub_updated_at")?,
            sub_last_user_agent: row.try_get("sub_last_user_agent")?,
            online_at: row.try_get("online_at")?,
            created_at: row.try_get("created_at")?,
            edit_at: row.try_get("edit_at")?,
            next_plan: next_plan
                .map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(|e| decode_err("next_plan", e))?,
            last_status_change: row.try_get("last_status_change")?,
            last_usage_reset_at: row.try_get("last_usage_reset_at")?,
        })
    }
}

pub(crate) const SELECT: &str = "SELECT u.id, u.username, u.status, u.proxies, u.excluded_inbounds, \
    t.used_traffic, t.lifetime_used_traffic, u.data_limit, u.data_limit_reset_strategy, u.expire, \
    u.note, u.admin_id, a.username AS admin_username, u.on_hold_expire_duration, \
    u.on_hold_timeout, u.auto_delete_in_days, u.sub_revoked_at, u.sub_updated_at, \
    u.sub_last_user_agent, t.online_at, u.created_at, u.edit_at, u.next_plan, \
    u.last_status_change, u.last_usage_reset_at \
    FROM users u JOIN user_traffic t ON t.user_id = u.id LEFT JOIN admins a ON a.id = u.admin_id";

/// A user to insert as given, status included (imports, fixtures,
/// benchmarks). The API creates users through the domain: [`UserDraft`].
#[derive(Debug)]
pub struct NewUser {
    pub username: String,
    pub status: UserStatus,
    pub proxies: Proxies,
    pub excluded_inbounds: BTreeMap<String, Vec<String>>,
    pub data_limit: Option<i64>,
    pub data_limit_reset_strategy: ResetStrategy,
    pub expire: Option<i64>,
    pub note: Option<String>,
    pub admin_id: Option<i64>,
    pub on_hold_expire_duration: Option<i64>,
    pub on_hold_timeout: Option<i64>,
    pub auto_delete_in_days: Option<i64>,
}

impl NewUser {
    /// The lifecycle state the bulk insert writes, created at `created_at`.
    fn account(&self, created_at: i64) -> Account {
        Account {
            status: self.status,
            data_limit: self.data_limit,
            expire: self.expire,
            data_limit_reset_strategy: self.data_limit_reset_strategy,
            on_hold_expire_duration: self.on_hold_expire_duration,
            on_hold_timeout: self.on_hold_timeout,
            auto_delete_in_days: self.auto_delete_in_days,
            ..Account::new(created_at)
        }
    }
}

/// A user about to be inserted: who it is, and its lifecycle state as the
/// domain created it (`account.created_at` is the creation time).
#[derive(Debug, Clone)]
pub struct UserDraft {
    pub username: String,
    pub proxies: Proxies,
    pub excluded_inbounds: BTreeMap<String, Vec<String>>,
    pub note: Option<String>,
    pub admin_id: Option<i64>,
    pub account: Account,
}

impl From<NewUser> for UserDraft {
    fn from(u: NewUser) -> Self {
        Self {
            username: u.username,
            proxies: u.proxies,
            excluded_inbounds: u.excluded_inbounds,
            note: u.note,
            admin_id: u.admin_id,
            account: Account {
                status: u.status,
                data_limit: u.data_limit,
                expire: u.expire,
                data_limit_reset_strategy: u.data_limit_reset_strategy,
                on_hold_expire_duration: u.on_hold_expire_duration,
                on_hold_timeout: u.on_hold_timeout,
                auto_delete_in_days: u.auto_delete_in_days,
                ..Account::new(now())
            },
        }
    }
}

pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

pub(crate) async fn changed_since(
    tx: &mut Transaction<'_, Any>,
    base: i64,
) -> Result<Vec<User>, StoreError> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE u.revision > $1"))
        .bind(base)
        .fetch_all(&mut **tx)
        .await?)
}

pub(crate) async fn by_id(tx: &mut Transaction<'_, Any>, id: i64) -> Result<User, StoreError> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE u.id = $1"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?)
}

impl Store {
    /// Creates a user as given (see [`NewUser`]).
    pub async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.insert_user(user.into()).await
    }

    /// Inserts a user under a new revision with its `user_created`
    /// notification (by its owner); a taken username (in any case) is a
    /// conflict.
    pub async fn insert_user(&self, user: UserDraft) -> Result<User, StoreError> {
        let now = now();
        let deadline = deadline_of(&user.account, now);
        let mut tx = self.begin_write().await?;
        let returned: (i64, Option<String>) = match self.backend {
            // One statement (migration 0008 moves the revision counter).
            Backend::Sqlite => bind_new_user(
                sqlx::query_as(&insert_user_sql(
                    "(SELECT value + 1 FROM revision WHERE id = 1)",
                )),
                &user,
                deadline,
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::unique("User already exists"))?,
            Backend::Postgres => {
                let revision = revision::bump(&mut tx).await?;
                bind_new_user(sqlx::query_as(&insert_user_sql("$19")), &user, deadline)
                    .bind(revision)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::unique("User already exists"))?
            }
        };
        let (id, admin_username) = returned;
        let created = UserNote::new(Action::UserCreated, admin_username.as_deref());
        let user = inserted(id, admin_username, user);
        outbox::enqueue(&mut tx, &[Notice::user(&user, &created, now)], now).await?;
        tx.commit().await?;
        self.deadlines.written(deadline);
        self.outbox.committed();
        Ok(user)
    }
}

/// The user `insert_user` stored as `id`: everything but the id and the
/// owner's name is what was sent, so the row is not read back.
fn inserted(id: i64, admin_username: Option<String>, user: UserDraft) -> User {
    let a = user.account;
    User {
        id,
        username: user.username,
        status: a.status,
        proxies: user.proxies,
        excluded_inbounds: user.excluded_inbounds,
        // A new user's counters start at zero (see insert_user_sql).
        used_traffic: 0,
        lifetime_used_traffic: 0,
        data_limit: a.data_limit,
        data_limit_reset_strategy: a.data_limit_reset_strategy,
        expire: a.expire,
        note: user.note,
        admin_id: user.admin_id,
        admin_username,
        on_hold_expire_duration: a.on_hold_expire_duration,
        on_hold_timeout: a.on_hold_timeout,
        auto_delete_in_days: a.auto_delete_in_days,
        sub_revoked_at: None,
        sub_updated_at: None,
        sub_last_user_agent: None,
        online_at: None,
        created_at: a.created_at,
        edit_at: None,
        next_plan: a.next_plan,
        last_status_change: a.last_status_change,
        last_usage_reset_at: a.last_usage_reset_at,
    }
}

impl Store {
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(
            sqlx::query_as(&format!("{SELECT} WHERE u.username_lower = $1"))
                .bind(username.to_lowercase())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Deletes a user and records its removal for the nodes and its
    /// notification (deleted `by` an admin), atomically.
    pub async fn delete_user(&self, username: &str, by: Option<&str>) -> Result<User, StoreError> {
        let mut write = super::user_changes::UserWrite::begin(self).await?;
        let user: User = sqlx::query_as(&format!(
            "{SELECT} WHERE u.username_lower = $1{}",
            write.lock()
        ))
        .bind(username.to_lowercase())
        .fetch_optional(&mut *write.tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let revision = write.revision().await?;
        let users = std::slice::from_ref(&user);
        let notes = super::user_changes::deletion_notes(users, by);
        outbox::enqueue_for_users(&mut write.tx, &notes, now()).await?;
        super::user_changes::remove(&mut write.tx, revision, users).await?;
        write.commit().await?;
        self.outbox.committed();
        Ok(user)
    }

    /// Every user cores must currently accept, with the revision they reflect.
    pub async fn served_users(&self) -> Result<(i64, Vec<ServedUser>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let revision: i64 = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        // Only what a core needs: a full snapshot of 100,000 users decodes
        // five columns per row, not every column and the owner's name.
        let users = sqlx::query_as(
            "SELECT id, username, status, proxies, excluded_inbounds FROM users \
             WHERE status IN ('active', 'on_hold') ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((revision, users))
    }
}

impl Store {
    pub async fn record_subscription_fetch(
        &self,
        user_id: i64,
        user_agent: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET sub_updated_at = $1, sub_last_user_agent = $2 WHERE id = $3")
            .bind(now())
            .bind(user_agent.chars().take(512).collect::<String>())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Inserts many users in one transaction under one revision (imports and
    /// benchmarks). Fails as a whole on any duplicate username.
    pub async fn create_users_bulk(&self, users: &[NewUser]) -> Result<u64, StoreError> {
        const COLUMNS: usize = 16;
        // SQLite allows 32,766 parameters per statement.
        const ROWS_PER_STATEMENT: usize = 1000;
        let mut tx = self.begin_write().await?;
        let revision = revision::bump(&mut tx).await?;
        let created_at = now();
        let mut inserted = 0;
        for chunk in users.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO users (username, username_lower, status, proxies, excluded_inbounds, \
                 data_limit, data_limit_reset_strategy, expire, note, admin_id, \
                 on_hold_expire_duration, on_hold_timeout, auto_delete_in_days, created_at, revision, \
                 deadline) VALUES ",
            );
            for row in 0..chunk.len() {
                if row > 0 {
                    sql.push_str(", ");
                }
                let placeholders: Vec<String> = (1..=COLUMNS)
                    .map(|c| format!("${}", row * COLUMNS + c))
                    .collect();
                sql.push('(');
                sql.push_str(&placeholders.join(", "));
                sql.push(')');
            }
            let mut query = sqlx::query(&sql);
            for user in chunk {
                query = query
                    .bind(&user.username)
                    .bind(user.username.to_lowercase())
                    .bind(user.status.as_str())
                    .bind(serde_json::to_string(&user.proxies).expect("proxies serialize"))
                    .bind(serde_json::to_string(&user.excluded_inbounds).expect("maps serialize"))
                    .bind(user.data_limit)
                    .bind(user.data_limit_reset_strategy.as_str())
                    .bind(user.expire)
                    .bind(&user.note)
                    .bind(user.admin_id)
                    .bind(user.on_hold_expire_duration)
                    .bind(user.on_hold_timeout)
                    .bind(user.auto_delete_in_days)
                    .bind(created_at)
                    .bind(revision)
                    .bind(deadline_of(&user.account(created_at), created_at));
            }
            inserted += query
                .execute(&mut *tx)
                .await
                .map_err(StoreError::unique("User already exists"))?
                .rows_affected();
        }
        tx.commit().await?;
        self.deadlines.written(
            users
                .iter()
                .filter_map(|u| deadline_of(&u.account(created_at), created_at))
                .min(),
        );
        // A large import changes the table's shape: refresh PostgreSQL's
        // planner statistics now rather than whenever autovacuum gets to it.
        // (Not SQLite: with statistics its planner walks the sort index and
        // probes the search index per row, 100x slower than without.)
        if inserted >= 1_000 {
            let maintenance = match self.backend {
                super::Backend::Postgres => "ANALYZE users, user_traffic, user_traffic_order",
                // A large import leaves a large write-ahead log that every
                // later commit's checkpoint would wade through: fold it in now.
                super::Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
            };
            sqlx::query(maintenance).execute(&self.pool).await?;
        }
        Ok(inserted)
    }
}

/// The INSERT of a new user, with `revision` as the revision's SQL. Its
/// counters start at zero: the `user_traffic_insert` trigger adds their row.
fn insert_user_sql(revision: &str) -> String {
    format!(
        "INSERT INTO users (username, username_lower, status, proxies, excluded_inbounds, \
         data_limit, data_limit_reset_strategy, expire, note, admin_id, on_hold_expire_duration, \
         on_hold_timeout, auto_delete_in_days, next_plan, last_status_change, \
         last_usage_reset_at, created_at, deadline, revision) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, {revision}) \
         RETURNING id, (SELECT username FROM admins WHERE admins.id = users.admin_id)"
    )
}

type NewUserQuery<'q> =
    sqlx::query::QueryAs<'q, Any, (i64, Option<String>), sqlx::any::AnyArguments<'q>>;

/// Binds $1..$18 of [`insert_user_sql`].
fn bind_new_user<'q>(
    query: NewUserQuery<'q>,
    user: &'q UserDraft,
    deadline: Option<i64>,
) -> NewUserQuery<'q> {
    let a = &user.account;
    query
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(a.status.as_str())
        .bind(json_text(&user.proxies))
        .bind(json_text(&user.excluded_inbounds))
        .bind(a.data_limit)
        .bind(a.data_limit_reset_strategy.as_str())
        .bind(a.expire)
        .bind(&user.note)
        .bind(user.admin_id)
        .bind(a.on_hold_expire_duration)
        .bind(a.on_hold_timeout)
        .bind(a.auto_delete_in_days)
        .bind(a.next_plan.as_ref().map(json_text))
        .bind(a.last_status_change)
        .bind(a.last_usage_reset_at)
        .bind(a.created_at)
        .bind(deadline)
}
