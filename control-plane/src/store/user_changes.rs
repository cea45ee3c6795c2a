//! Read-modify-write of users: the row is read and locked, the caller (the
//! API, through the domain rules) changes it, and it is written back under a
//! new revision, all in one transaction. A change that fails writes nothing.

use std::collections::BTreeMap;

use sqlx::{Any, Transaction};

use super::account_rows::{
    ACCOUNT_COLUMNS, ACCOUNT_FROM, Cell, deadline_of, earliest_of, lifecycle_diff, stored_account,
    write_diffs,
};
use super::outbox::{self, UserNote};
use super::reminders::{self, ReminderThresholds};
use super::users::{SELECT, by_id, json_text};
use super::{Backend, Store, StoreError, User, now, revision};
use crate::domain::{Account, Action, AutoDeletePolicy, Event};

/// A transaction that reads users and writes them back, with the revision
/// its changes carry.
///
/// Locks are taken in an order that cannot deadlock. On SQLite the
/// transaction holds the write lock from its start (`begin_write`): a read
/// snapshot could not be upgraded once another writer committed. On
/// PostgreSQL a user's counters row (`user_traffic`) is its lock: it is
/// locked first (`FOR UPDATE OF t`), the users row when it is written, and
/// the revision row last, the order usage ingestion takes them in.
pub(crate) struct UserWrite {
    pub(crate) tx: Transaction<'static, Any>,
    backend: Backend,
    revision: Option<i64>,
}

impl UserWrite {
    pub(crate) async fn begin(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tx: store.begin_write().await?,
            backend: store.backend,
            revision: None,
        })
    }

    /// Appended to a SELECT from [`ACCOUNT_FROM`]: locks the users it reads.
    pub(crate) fn lock(&self) -> &'static str {
        lock_clause(self.backend)
    }

    /// The new revision, bumped once per transaction.
    pub(crate) async fn revision(&mut self) -> Result<i64, StoreError> {
        if let Some(revision) = self.revision {
            return Ok(revision);
        }
        let revision = revision::bump(&mut self.tx).await?;
        self.revision = Some(revision);
        Ok(revision)
    }

    /// Dropping the transaction instead rolls everything back, revision
    /// included.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// The notes lifecycle `events` give, each made `by` an admin or not.
pub(super) fn event_notes(events: &[Event], by: Option<&str>) -> Vec<UserNote> {
    events
        .iter()
        .filter_map(Action::of_event)
        .map(|action| UserNote::new(action, by))
        .collect()
}

/// Locks the users a SELECT from [`ACCOUNT_FROM`] reads, through their
/// counters rows (see [`UserWrite`]).
pub(super) fn lock_clause(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE OF t",
        // The write lock is already held.
        Backend::Sqlite => "",
    }
}

/// Writes every column of `user` a change may touch (not its id, name or
/// creation time) under `revision`, with its lifecycle `deadline`.
async fn write_row(
    tx: &mut Transaction<'_, Any>,
    user: &User,
    revision: i64,
    deadline: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE user_traffic SET used_traffic = $1, lifetime_used_traffic = $2, online_at = $3 \
         WHERE user_id = $4",
    )
    .bind(user.used_traffic)
    .bind(user.lifetime_used_traffic)
    .bind(user.online_at)
    .bind(user.id)
    .execute(&mut **tx)
    .await?;
    // The list's sort key follows direct changes at once (see usage_order).
    sqlx::query("UPDATE user_traffic_order SET used_traffic = $1 WHERE user_id = $2")
        .bind(user.used_traffic)
        .bind(user.id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE users SET status = $1, proxies = $2, excluded_inbounds = $3, data_limit = $4, \
         data_limit_reset_strategy = $5, expire = $6, note = $7, admin_id = $8, \
         on_hold_expire_duration = $9, on_hold_timeout = $10, auto_delete_in_days = $11, \
         sub_revoked_at = $12, next_plan = $13, last_status_change = $14, \
         last_usage_reset_at = $15, edit_at = $16, revision = $17, deadline = $19 WHERE id = $18",
    )
    .bind(user.status.as_str())
    .bind(json_text(&user.proxies))
    .bind(json_text(&user.excluded_inbounds))
    .bind(user.data_limit)
    .bind(user.data_limit_reset_strategy.as_str())
    .bind(user.expire)
    .bind(&user.note)
    .bind(user.admin_id)
    .bind(user.on_hold_expire_duration)
    .bind(user.on_hold_timeout)
    .bind(user.auto_delete_in_days)
    .bind(user.sub_revoked_at)
    .bind(user.next_plan.as_ref().map(json_text))
    .bind(user.last_status_change)
    .bind(user.last_usage_reset_at)
    .bind(user.edit_at)
    .bind(revision)
    .bind(user.id)
    .bind(deadline)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes users and leaves a tombstone per user under `revision`, so nodes
/// drop them with a change set.
pub(crate) async fn remove(
    tx: &mut Transaction<'_, Any>,
    revision: i64,
    users: &[User],
) -> Result<(), StoreError> {
    for chunk in users.chunks(CHUNK) {
        let values = (1..=chunk.len())
            .map(|i| format!("($1, ${})", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO user_tombstones (revision, email) VALUES {values}");
        let mut insert = sqlx::query(&sql).bind(revision);
        for user in chunk {
            insert = insert.bind(user.email());
        }
        insert.execute(&mut **tx).await?;
        let ids = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("DELETE FROM users WHERE id IN ({ids})");
        let mut delete = sqlx::query(&sql);
        for user in chunk {
            delete = delete.bind(user.id);
        }
        delete.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rows per multi-row statement, well under SQLite's 32,766 parameters.
pub(super) const CHUNK: usize = 500;

/// Which users an operation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Anyone,
    /// Only the users of this admin id.
    Admin(i64),
}

impl Owner {
    /// A `WHERE` condition on `u.admin_id`, `$n` being the next placeholder.
    fn condition(self, n: usize) -> String {
        match self {
            Owner::Anyone => String::new(),
            Owner::Admin(_) => format!(" AND u.admin_id = ${n}"),
        }
    }

    fn id(self) -> Option<i64> {
        match self {
            Owner::Anyone => None,
            Owner::Admin(id) => Some(id),
        }
    }
}

/// Users whose expiry lies in `[after, before]` and who are out of the
/// cores because of it: expired, or limited (a limited user keeps that
/// status when its expiry passes too).
fn expired_sql(owner: Owner, lock: &str) -> String {
    format!(
        "{SELECT} WHERE u.status IN ('expired', 'limited') AND u.expire > 0 \
         AND u.expire >= $1 AND u.expire <= $2{} ORDER BY u.username_lower{lock}",
        owner.condition(3)
    )
}

impl Store {
    /// Reads the user (locked), lets `change` edit it, and writes it back
    /// under a new revision with the notifications of the actions `change`
    /// returns (made `by` an admin), in one transaction. When `change` fails
    /// nothing is written. A user that does not exist is
    /// `StoreError::NotFound`.
    pub async fn update_user<E>(
        &self,
        username: &str,
        by: Option<&str>,
        change: impl FnOnce(&mut User) -> Result<Vec<Action>, E>,
    ) -> Result<User, E>
    where
        E: From<StoreError>,
    {
        let mut write = UserWrite::begin(self).await?;
        let mut user = lock_user(&mut write, username).await?;
        let actions = change(&mut user)?;
        let now = now();
        let deadline = deadline_of(&user.account(), now);
        let notes = actions.into_iter().map(|a| UserNote::new(a, by)).collect();
        let saved = save(write, &user, deadline, notes, now).await?;
        self.deadlines.written(deadline);
        self.outbox.committed();
        Ok(saved)
    }

    /// Applies `change` to the lifecycle state of every user (optionally
    /// only one admin's) in one transaction, with the notifications of the
    /// events it returns (made `by` an admin). Users whose status changed
    /// carry one new revision, so nodes add or drop exactly them; the others
    /// keep theirs. Returns how many users changed status.
    pub async fn update_accounts(
        &self,
        owner: Owner,
        by: Option<&str>,
        mut change: impl FnMut(&mut Account) -> Vec<Event>,
    ) -> Result<usize, StoreError> {
        let mut write = UserWrite::begin(self).await?;
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM {ACCOUNT_FROM} WHERE 1 = 1{} ORDER BY u.id{}",
            owner.condition(1),
            write.lock()
        );
        let mut query = sqlx::query(&sql);
        if let Some(id) = owner.id() {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&mut *write.tx).await?;
        let now = now();
        let mut diffs: BTreeMap<Vec<(&'static str, Cell)>, Vec<i64>> = BTreeMap::new();
        let mut status_changed = 0;
        let mut earliest: Option<i64> = None;
        let mut notes = BTreeMap::new();
        for row in &rows {
            let stored = stored_account(row)?;
            let mut after = stored.account.clone();
            let events = change(&mut after);
            let (diff, deadline) = lifecycle_diff(&stored, &after, now);
            if diff.is_empty() {
                continue;
            }
            notes.insert(stored.id, event_notes(&events, by));
            if after.status != stored.account.status {
                status_changed += 1;
            }
            earliest = earliest_of(earliest, deadline);
            diffs.entry(diff).or_default().push(stored.id);
        }
        let revision = if status_changed > 0 {
            Some(write.revision().await?)
        } else {
            None
        };
        write_diffs(&mut write.tx, diffs, revision).await?;
        let changed: Vec<i64> = notes.keys().copied().collect();
        reminders::clear_reset(&mut write.tx, Some(&changed), now).await?;
        outbox::enqueue_for_users(&mut write.tx, &notes, now).await?;
        write.commit().await?;
        self.deadlines.written(earliest);
        self.outbox.committed();
        Ok(status_changed)
    }

    /// Usernames of the expired users whose expiry lies in `[after, before]`
    /// (see [`expired_sql`]), by name.
    pub async fn expired_users(
        &self,
        owner: Owner,
        after: i64,
        before: i64,
    ) -> Result<Vec<User>, StoreError> {
        let sql = expired_sql(owner, "");
        let mut query = sqlx::query_as(&sql).bind(after).bind(before);
        if let Some(id) = owner.id() {
            query = query.bind(id);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// Deletes the users [`Store::expired_users`] lists, with their
    /// tombstones under one revision and their notifications (deleted `by`
    /// an admin), in one transaction; returns them.
    pub async fn delete_expired_users(
        &self,
        owner: Owner,
        by: Option<&str>,
        after: i64,
        before: i64,
    ) -> Result<Vec<User>, StoreError> {
        let mut write = UserWrite::begin(self).await?;
        let sql = expired_sql(owner, write.lock());
        let mut query = sqlx::query_as(&sql).bind(after).bind(before);
        if let Some(id) = owner.id() {
            query = query.bind(id);
        }
        let users: Vec<User> = query.fetch_all(&mut *write.tx).await?;
        if users.is_empty() {
            return Ok(users);
        }
        let revision = write.revision().await?;
        let notes = deletion_notes(&users, by);
        outbox::enqueue_for_users(&mut write.tx, &notes, now()).await?;
        remove(&mut write.tx, revision, &users).await?;
        write.commit().await?;
        self.outbox.committed();
        Ok(users)
    }
}

impl Store {
    /// Deletes the users whose auto-delete time has come (their own
    /// `auto_delete_in_days`, else `policy`; see
    /// [`crate::domain::Account::auto_delete_at`]) with their tombstones
    /// and `user_deleted` notifications, in one transaction. Returns their
    /// names. Only limited and expired users are read.
    pub async fn delete_auto_deletable_users(
        &self,
        policy: &AutoDeletePolicy,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut write = UserWrite::begin(self).await?;
        let sql = format!(
            "{SELECT} WHERE u.status IN ('expired', 'limited') ORDER BY u.id{}",
            write.lock()
        );
        let users: Vec<User> = sqlx::query_as(&sql).fetch_all(&mut *write.tx).await?;
        let due: Vec<User> = users
            .into_iter()
            .filter(|u| u.account().auto_delete_due(policy, now))
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let revision = write.revision().await?;
        let mut notes = deletion_notes(&due, None);
        for note in notes.values_mut().flatten() {
            note.reason = Some("auto delete".into());
        }
        outbox::enqueue_for_users(&mut write.tx, &notes, now).await?;
        remove(&mut write.tx, revision, &due).await?;
        write.commit().await?;
        self.outbox.committed();
        Ok(due.into_iter().map(|u| u.username).collect())
    }
}

async fn lock_user(write: &mut UserWrite, username: &str) -> Result<User, StoreError> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE u.username_lower = $1{}",
        write.lock()
    ))
    .bind(username.to_lowercase())
    .fetch_optional(&mut *write.tx)
    .await?
    .ok_or(StoreError::NotFound)
}

/// `user_deleted` for each of `users`, written before they are removed.
pub(super) fn deletion_notes(users: &[User], by: Option<&str>) -> BTreeMap<i64, Vec<UserNote>> {
    users
        .iter()
        .map(|u| (u.id, vec![UserNote::new(Action::UserDeleted, by)]))
        .collect()
}

async fn save(
    mut write: UserWrite,
    user: &User,
    deadline: Option<i64>,
    notes: Vec<UserNote>,
    now: i64,
) -> Result<User, StoreError> {
    let revision = write.revision().await?;
    write_row(&mut write.tx, user, revision, deadline).await?;
    reminders::clear_reset(&mut write.tx, Some(&[user.id]), now).await?;
    outbox::enqueue_for_users(&mut write.tx, &BTreeMap::from([(user.id, notes)]), now).await?;
    let saved = by_id(&mut write.tx, user.id).await?;
    write.commit().await?;
    Ok(saved)
}

/// The lifecycle consequences of traffic already added to `used_traffic`
/// (by usage ingestion, additively): crossing the quota limits a user or
/// fires its next plan, first traffic starts an on-hold plan. Changed
/// columns are written back; users whose status changed carry one new
/// revision, taken after the user rows (the shared lock order). Returns
/// the users whose status changed and the earliest deadline written.
///
/// The notifications of those changes (limited, next plan, activation) and
/// of the usage reminders traffic crossed are written in `tx` too, last.
pub(crate) async fn apply_traffic(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    thresholds: &ReminderThresholds,
    bytes_by_user: &BTreeMap<i64, i64>,
    now: i64,
) -> Result<(Vec<i64>, Option<i64>), StoreError> {
    let ids: Vec<i64> = bytes_by_user.keys().copied().collect();
    let lock = lock_clause(backend);
    let mut diffs: BTreeMap<Vec<(&'static str, Cell)>, Vec<i64>> = BTreeMap::new();
    let mut status_changed = Vec::new();
    let mut earliest = None;
    let mut notes: BTreeMap<i64, Vec<UserNote>> = BTreeMap::new();
    for chunk in ids.chunks(CHUNK) {
        let placeholders = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM {ACCOUNT_FROM} WHERE u.id IN ({placeholders}){lock}"
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let stored = stored_account(&row)?;
            let bytes = bytes_by_user[&stored.id];
            // Replay the traffic through the rules from the state before it.
            let mut before = stored.account.clone();
            before.used_traffic = before.used_traffic.saturating_sub(bytes);
            before.lifetime_used_traffic = before.lifetime_used_traffic.saturating_sub(bytes);
            let mut after = before.clone();
            let events = after.record_usage(bytes, now);
            // Ingestion already set when the user was last seen.
            after.online_at = stored.account.online_at;
            let mut user_notes = event_notes(&events, None);
            let reminder =
                reminders::usage_note(tx, thresholds, stored.id, &before, &after, now).await?;
            user_notes.extend(reminder);
            if !user_notes.is_empty() {
                notes.insert(stored.id, user_notes);
            }
            let (diff, deadline) = lifecycle_diff(&stored, &after, now);
            if diff.is_empty() {
                continue;
            }
            if after.status != stored.account.status {
                status_changed.push(stored.id);
            }
            earliest = earliest_of(earliest, deadline);
            diffs.entry(diff).or_default().push(stored.id);
        }
    }
    let revision = if status_changed.is_empty() {
        None
    } else {
        Some(revision::bump(tx).await?)
    };
    write_diffs(tx, diffs, revision).await?;
    outbox::enqueue_for_users(tx, &notes, now).await?;
    Ok((status_changed, earliest))
}
