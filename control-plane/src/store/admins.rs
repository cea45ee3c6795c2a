use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now};

#[derive(Debug, Clone)]
pub struct Admin {
    pub id: i64,
    pub username: String,
    pub hashed_password: String,
    pub is_sudo: bool,
    pub password_reset_at: Option<i64>,
    pub telegram_id: Option<i64>,
    pub discord_webhook: Option<String>,
    pub users_usage: i64,
}

impl<'r> sqlx::FromRow<'r, AnyRow> for Admin {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            hashed_password: row.try_get("hashed_password")?,
            is_sudo: row.try_get::<i64, _>("is_sudo")? != 0,
            password_reset_at: row.try_get("password_reset_at")?,
            telegram_id: row.try_get("telegram_id")?,
            discord_webhook: row.try_get("discord_webhook")?,
            users_usage: row.try_get("users_usage")?,
        })
    }
}

pub struct NewAdmin<'a> {
    pub username: &'a str,
    pub hashed_password: &'a str,
    pub is_sudo: bool,
}

/// How an admin is reached (Marzban's notification settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminContact {
    pub telegram_id: Option<i64>,
    pub discord_webhook: Option<String>,
}

/// The full new state of an admin's editable fields.
pub struct AdminUpdate<'a> {
    pub is_sudo: bool,
    pub contact: AdminContact,
    /// A new password hash; tokens issued before the change stop working.
    pub hashed_password: Option<&'a str>,
}

/// How long an authenticated admin is reused. Every admin change through
/// this process drops it at once; another replica's change (a deletion, a
/// password reset) takes effect here within this.
const AUTH_FRESH_FOR: Duration = Duration::from_secs(1);

/// Admins as authentication last read them: every API request resolves its
/// token's admin, and a database round trip for that is a tenth of a cheap
/// request's time.
#[derive(Default)]
pub(crate) struct AdminAuthCache(Mutex<HashMap<String, (Instant, Admin)>>);

impl AdminAuthCache {
    fn get(&self, username_lower: &str) -> Option<Admin> {
        let map = self.0.lock().expect("admin cache poisoned");
        let (at, admin) = map.get(username_lower)?;
        (at.elapsed() < AUTH_FRESH_FOR).then(|| admin.clone())
    }

    fn put(&self, username_lower: String, admin: Admin) {
        let mut map = self.0.lock().expect("admin cache poisoned");
        // Bounded by the number of admins; stale entries go on any write.
        map.insert(username_lower, (Instant::now(), admin));
    }

    pub(crate) fn clear(&self) {
        self.0.lock().expect("admin cache poisoned").clear();
    }
}

const COLUMNS: &str = "id, username, hashed_password, is_sudo, password_reset_at, telegram_id, \
                       discord_webhook, users_usage";

impl Store {
    pub async fn create_admin(&self, admin: NewAdmin<'_>) -> Result<Admin, StoreError> {
        self.create_admin_with_contact(admin, AdminContact::default())
            .await
    }

    /// Admins with a Telegram chat or a Discord webhook of their own, by id.
    pub async fn admin_contacts(&self) -> Result<Vec<(i64, AdminContact)>, StoreError> {
        let rows: Vec<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT id, telegram_id, discord_webhook FROM admins \
             WHERE telegram_id IS NOT NULL OR discord_webhook IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, telegram_id, discord_webhook)| {
                let contact = AdminContact {
                    telegram_id,
                    discord_webhook,
                };
                (id, contact)
            })
            .collect())
    }

    pub async fn create_admin_with_contact(
        &self,
        admin: NewAdmin<'_>,
        contact: AdminContact,
    ) -> Result<Admin, StoreError> {
        sqlx::query_as(&format!(
            "INSERT INTO admins (username, username_lower, hashed_password, is_sudo, telegram_id, \
             discord_webhook, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(admin.username)
        .bind(admin.username.to_lowercase())
        .bind(admin.hashed_password)
        .bind(i64::from(admin.is_sudo))
        .bind(contact.telegram_id)
        .bind(contact.discord_webhook)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::unique("Admin already exists"))
    }

    /// The admin a token names, for authentication: may be up to
    /// [`AUTH_FRESH_FOR`] old, so fields that change with traffic
    /// (`users_usage`) must be read with [`Store::admin_by_username`].
    pub async fn admin_for_auth(&self, username: &str) -> Result<Option<Admin>, StoreError> {
        let key = username.to_lowercase();
        if let Some(admin) = self.admin_auth.get(&key) {
            return Ok(Some(admin));
        }
        let admin = self.admin_by_username(username).await?;
        if let Some(admin) = &admin {
            self.admin_auth.put(key, admin.clone());
        }
        Ok(admin)
    }

    pub async fn admin_by_username(&self, username: &str) -> Result<Option<Admin>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM admins WHERE username_lower = $1"
        ))
        .bind(username.to_lowercase())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Sets a new password hash; tokens issued before now stop working.
    pub async fn set_admin_password(
        &self,
        username: &str,
        hashed_password: &str,
        is_sudo: bool,
    ) -> Result<Admin, StoreError> {
        let changed: Result<Admin, StoreError> = sqlx::query_as(&format!(
            "UPDATE admins SET hashed_password = $1, is_sudo = $2, password_reset_at = $3 \
             WHERE username_lower = $4 RETURNING {COLUMNS}"
        ))
        .bind(hashed_password)
        .bind(i64::from(is_sudo))
        .bind(now())
        .bind(username.to_lowercase())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound);
        // After the write: an authentication racing it cannot re-cache the
        // old admin for longer than AUTH_FRESH_FOR.
        self.admin_auth.clear();
        changed
    }
}

/// LIKE pattern for a case-insensitive substring, with the pattern
/// characters escaped by a backslash.
fn contains_pattern(s: &str) -> String {
    let escaped = s
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Store {
    /// Admins in creation order; `username` matches a substring, ignoring case.
    /// `limit` None means no limit.
    pub async fn admins(
        &self,
        username: Option<&str>,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<Vec<Admin>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM admins WHERE username_lower LIKE $1 ESCAPE '\\' \
             ORDER BY id LIMIT $2 OFFSET $3"
        ))
        .bind(contains_pattern(username.unwrap_or("")))
        // Both backends need a LIMIT before OFFSET; the largest value is "none".
        .bind(limit.unwrap_or(i64::MAX))
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn update_admin(
        &self,
        username: &str,
        update: AdminUpdate<'_>,
    ) -> Result<Admin, StoreError> {
        let changed: Result<Admin, StoreError> = sqlx::query_as(&format!(
            "UPDATE admins SET is_sudo = $1, telegram_id = $2, discord_webhook = $3, \
             hashed_password = CASE WHEN $4 = 1 THEN $5 ELSE hashed_password END, \
             password_reset_at = CASE WHEN $4 = 1 THEN $6 ELSE password_reset_at END \
             WHERE username_lower = $7 RETURNING {COLUMNS}"
        ))
        .bind(i64::from(update.is_sudo))
        .bind(update.contact.telegram_id)
        .bind(update.contact.discord_webhook)
        .bind(i64::from(update.hashed_password.is_some()))
        .bind(update.hashed_password.unwrap_or_default())
        .bind(now())
        .bind(username.to_lowercase())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound);
        // After the write: an authentication racing it cannot re-cache the
        // old admin for longer than AUTH_FRESH_FOR.
        self.admin_auth.clear();
        changed
    }

    /// Removes an admin; its users stay, without an owner.
    pub async fn delete_admin(&self, username: &str) -> Result<Admin, StoreError> {
        let changed: Result<Admin, StoreError> = sqlx::query_as(&format!(
            "DELETE FROM admins WHERE username_lower = $1 RETURNING {COLUMNS}"
        ))
        .bind(username.to_lowercase())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound);
        // After the write: an authentication racing it cannot re-cache the
        // old admin for longer than AUTH_FRESH_FOR.
        self.admin_auth.clear();
        changed
    }

    pub async fn reset_admin_usage(&self, username: &str) -> Result<Admin, StoreError> {
        sqlx::query_as(&format!(
            "UPDATE admins SET users_usage = 0 WHERE username_lower = $1 RETURNING {COLUMNS}"
        ))
        .bind(username.to_lowercase())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Disables every active or on-hold user of the admin. The changed users
    /// carry one new revision, so nodes drop them live. Returns how many changed.
    pub async fn disable_admin_users(
        &self,
        admin_id: i64,
        by: Option<&str>,
    ) -> Result<u64, StoreError> {
        let now = now();
        let changed = self
            .update_accounts(super::Owner::Admin(admin_id), by, |account| {
                account.disable(now)
            })
            .await?;
        Ok(changed as u64)
    }

    /// Re-enables every disabled user of the admin, in one new revision,
    /// through the domain's rules (a plan that never started goes back on
    /// hold; a user over quota or past expiry comes back limited or expired).
    pub async fn activate_admin_users(
        &self,
        admin_id: i64,
        by: Option<&str>,
    ) -> Result<u64, StoreError> {
        let now = now();
        let changed = self
            .update_accounts(super::Owner::Admin(admin_id), by, |account| {
                if account.status == crate::domain::UserStatus::Disabled {
                    account.enable(now)
                } else {
                    Vec::new()
                }
            })
            .await?;
        Ok(changed as u64)
    }
}
