//! The notification outbox: every notification is written by the
//! transaction of the change that caused it (so a crash neither loses nor
//! invents one), and each destination reads it in order through its own
//! cursor, which advances only after a delivery succeeded.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tokio::sync::watch;

use super::users::SELECT;
use super::{Store, StoreError, User, now};
use crate::domain::Action;

/// A notification about to be written. Its payload is complete now: what
/// the user looks like later does not change what is reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub action: Action,
    /// A username, an admin's or a node's name.
    pub subject: String,
    /// The owner of the user it is about, whose own chats receive it too.
    pub admin_id: Option<i64>,
    pub payload: Value,
}

/// A user event with what Marzban's webhook item says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserNote {
    pub action: Action,
    /// The admin who made the change; `None` when time or traffic did.
    pub by: Option<String>,
    pub used_percent: Option<i64>,
    pub days_left: Option<i64>,
    pub reason: Option<String>,
}

impl UserNote {
    pub fn new(action: Action, by: Option<&str>) -> Self {
        Self {
            action,
            by: by.map(str::to_owned),
            used_percent: None,
            days_left: None,
            reason: None,
        }
    }
}

/// What a notification says about a user. Credentials (proxies, links,
/// the subscription token) are left out: a notification never carries a
/// secret.
fn user_snapshot(user: &User) -> Value {
    json!({
        "username": user.username,
        "status": user.status.as_str(),
        "used_traffic": user.used_traffic,
        "lifetime_used_traffic": user.lifetime_used_traffic,
        "data_limit": user.data_limit,
        "data_limit_reset_strategy": user.data_limit_reset_strategy.as_str(),
        "expire": user.expire,
        "note": user.note,
        "admin": user.admin_username,
        "on_hold_expire_duration": user.on_hold_expire_duration,
        "on_hold_timeout": user.on_hold_timeout,
        "online_at": user.online_at,
        "created_at": user.created_at,
    })
}

impl Notice {
    /// A Marzban webhook item, less what delivery adds (`id`, `send_at`,
    /// `tries`).
    pub fn user(user: &User, note: &UserNote, now: i64) -> Self {
        Self {
            action: note.action,
            subject: user.username.clone(),
            admin_id: user.admin_id,
            payload: json!({
                "username": user.username,
                "action": note.action.as_str(),
                "enqueued_at": now,
                "user": user_snapshot(user),
                "by": note.by.as_ref().map(|username| json!({ "username": username })),
                "used_percent": note.used_percent,
                "days_left": note.days_left,
                "reason": note.reason,
            }),
        }
    }

    /// A node connected, was lost or reported an error.
    pub fn node(action: Action, name: &str, message: Option<&str>, now: i64) -> Self {
        Self {
            action,
            subject: name.to_owned(),
            admin_id: None,
            payload: json!({
                "action": action.as_str(),
                "node": name,
                "message": message,
                "enqueued_at": now,
            }),
        }
    }

    /// An admin login. Only who and from where: never the password tried.
    pub fn login(succeeded: bool, username: &str, address: &str, now: i64) -> Self {
        let action = if succeeded {
            Action::LoginSucceeded
        } else {
            Action::LoginFailed
        };
        Self {
            action,
            subject: username.to_owned(),
            admin_id: None,
            payload: json!({
                "action": action.as_str(),
                "username": username,
                "address": address,
                "enqueued_at": now,
            }),
        }
    }
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Increasing in commit order; the idempotency key receivers dedupe by.
    pub id: i64,
    pub created_at: i64,
    pub action: Action,
    pub subject: String,
    pub admin_id: Option<i64>,
    pub payload: Value,
}

impl<'r> sqlx::FromRow<'r, AnyRow> for Notification {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let action: String = row.try_get("action")?;
        let payload: String = row.try_get("payload")?;
        let decode = |column: &str, e: String| sqlx::Error::ColumnDecode {
            index: column.into(),
            source: e.into(),
        };
        Ok(Self {
            id: row.try_get("id")?,
            created_at: row.try_get("created_at")?,
            action: Action::parse(&action).ok_or_else(|| decode("action", action.clone()))?,
            subject: row.try_get("subject")?,
            admin_id: row.try_get("admin_id")?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| decode("payload", e.to_string()))?,
        })
    }
}

/// Where a destination stands.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryState {
    pub destination: String,
    /// Everything up to this notification id was delivered.
    pub last_id: i64,
    /// Failures of the current batch in a row.
    pub attempts: i64,
    /// When the current batch is tried again (unix seconds; 0: at once).
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<i64>,
}

/// Tells the dispatcher, after a commit, that notifications were written.
#[derive(Debug)]
pub(crate) struct OutboxWatch(watch::Sender<u64>);

impl Default for OutboxWatch {
    fn default() -> Self {
        Self(watch::channel(0).0)
    }
}

impl OutboxWatch {
    /// Called after a transaction that enqueued committed.
    pub(crate) fn committed(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Writes `notices` in the caller's transaction. Taken last in every
/// transaction (after user rows and the revision row): the counter row it
/// locks until commit hands ids out in commit order.
pub(crate) async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    notices: &[Notice],
    now: i64,
) -> Result<(), StoreError> {
    if notices.is_empty() {
        return Ok(());
    }
    let last: i64 = sqlx::query_scalar(
        "UPDATE notification_seq SET value = value + $1 WHERE id = 1 RETURNING value",
    )
    .bind(notices.len() as i64)
    .fetch_one(&mut **tx)
    .await?;
    let mut id = last - notices.len() as i64;
    for chunk in notices.chunks(super::user_changes::CHUNK / 6) {
        let values = (0..chunk.len())
            .map(|i| {
                let n = i * 6;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO notifications (id, created_at, action, subject, admin_id, payload) \
             VALUES {values}"
        );
        let mut insert = sqlx::query(&sql);
        for notice in chunk {
            id += 1;
            insert = insert
                .bind(id)
                .bind(now)
                .bind(notice.action.as_str())
                .bind(notice.subject.clone())
                .bind(notice.admin_id)
                .bind(notice.payload.to_string());
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes the notes of each user (by id), each with the user as it is now
/// in the transaction (after the change, before a deletion).
pub(crate) async fn enqueue_for_users(
    tx: &mut Transaction<'_, Any>,
    notes: &BTreeMap<i64, Vec<UserNote>>,
    now: i64,
) -> Result<(), StoreError> {
    if notes.values().all(Vec::is_empty) {
        return Ok(());
    }
    let mut notices = Vec::new();
    let ids: Vec<i64> = notes.keys().copied().collect();
    for chunk in ids.chunks(super::user_changes::CHUNK) {
        let placeholders = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("{SELECT} WHERE u.id IN ({placeholders}) ORDER BY u.id");
        let mut query = sqlx::query_as::<_, User>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for user in query.fetch_all(&mut **tx).await? {
            notices.extend(notes[&user.id].iter().map(|n| Notice::user(&user, n, now)));
        }
    }
    enqueue(tx, &notices, now).await
}

impl Store {
    /// Writes notifications in a transaction of their own (events that
    /// change nothing else, such as a login).
    pub async fn enqueue_notices(&self, notices: &[Notice]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        enqueue(&mut tx, notices, now()).await?;
        tx.commit().await?;
        self.outbox.committed();
        Ok(())
    }

    /// Changes whenever this process commits notifications.
    pub fn outbox_changes(&self) -> watch::Receiver<u64> {
        self.outbox.0.subscribe()
    }

    /// Up to `limit` notifications after id `after`, in order; only those
    /// about users of `admin_id` when given.
    pub async fn notifications_after(
        &self,
        after: i64,
        admin_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        const COLUMNS: &str = "id, created_at, action, subject, admin_id, payload";
        let rows = match admin_id {
            None => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM notifications WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(admin) => {
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM notifications WHERE admin_id = $1 AND id > $2 \
                     ORDER BY id LIMIT $3"
                ))
                .bind(admin)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows)
    }

    /// The destination's state, created on first sight at the newest
    /// notification: a destination added later does not replay history.
    pub async fn ensure_destination(&self, destination: &str) -> Result<DeliveryState, StoreError> {
        self.ensure_destination_since(destination, i64::MAX).await
    }

    /// The destination's state, created on first sight after the last
    /// notification created before `since` (unix seconds): an admin's chat
    /// found a little after it was set still gets what happened meanwhile.
    pub async fn ensure_destination_since(
        &self,
        destination: &str,
        since: i64,
    ) -> Result<DeliveryState, StoreError> {
        if let Some(state) = self.delivery_state(destination).await? {
            return Ok(state);
        }
        sqlx::query(
            "INSERT INTO notification_cursors (destination, last_id, updated_at) \
             VALUES ($1, CASE WHEN $2 >= $3 THEN (SELECT value FROM notification_seq WHERE id = 1) \
             ELSE (SELECT COALESCE(MAX(id), 0) FROM notifications WHERE created_at < $2) END, $3) \
             ON CONFLICT (destination) DO NOTHING",
        )
        .bind(destination)
        .bind(since)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.delivery_state(destination)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The destination's state, if it has one.
    pub async fn delivery_state(
        &self,
        destination: &str,
    ) -> Result<Option<DeliveryState>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT destination, last_id, attempts, next_attempt_at, last_error, \
             last_delivered_at FROM notification_cursors WHERE destination = $1",
        )
        .bind(destination)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every destination's state, by name.
    pub async fn delivery_states(&self) -> Result<Vec<DeliveryState>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT destination, last_id, attempts, next_attempt_at, last_error, \
             last_delivered_at FROM notification_cursors ORDER BY destination",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Everything up to `last_id` reached `destination`.
    pub async fn record_delivered(
        &self,
        destination: &str,
        last_id: i64,
    ) -> Result<(), StoreError> {
        let now = now();
        sqlx::query(
            "UPDATE notification_cursors SET last_id = $1, attempts = 0, next_attempt_at = 0, \
             last_error = NULL, last_delivered_at = $2, updated_at = $2 \
             WHERE destination = $3 AND last_id < $1",
        )
        .bind(last_id)
        .bind(now)
        .bind(destination)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The next batch of `destination` failed; it is tried again at
    /// `retry_at`. Returns the failures in a row.
    pub async fn record_failure(
        &self,
        destination: &str,
        error: &str,
        retry_at: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE notification_cursors SET attempts = attempts + 1, next_attempt_at = $1, \
             last_error = $2, updated_at = $3 WHERE destination = $4 RETURNING attempts",
        )
        .bind(retry_at)
        .bind(error)
        .bind(now())
        .bind(destination)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Drops notifications created before `before` that every destination
    /// in `destinations` (those configured now) has delivered. Returns how
    /// many.
    pub async fn prune_notifications(
        &self,
        destinations: &[String],
        before: i64,
    ) -> Result<u64, StoreError> {
        let mut delivered: i64 = sqlx::query_scalar("SELECT value FROM notification_seq")
            .fetch_one(&self.pool)
            .await?;
        for destination in destinations {
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT last_id FROM notification_cursors WHERE destination = $1",
            )
            .bind(destination)
            .fetch_optional(&self.pool)
            .await?;
            // A destination without a cursor yet starts after what exists.
            delivered = delivered.min(last.unwrap_or(delivered));
        }
        let pruned = sqlx::query("DELETE FROM notifications WHERE id <= $1 AND created_at < $2")
            .bind(delivered)
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(pruned)
    }
}
