use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Notify;

use super::{Backend, ReminderThresholds, Store, StoreError, now};

/// Usage one node reported for one user in one journal entry.
#[derive(Debug, Clone)]
pub struct UserUsageDelta {
    pub user_id: i64,
    pub uplink: i64,
    pub downlink: i64,
    pub recorded_at: i64,
}

/// Journal entries from one node, applied as one unit.
#[derive(Debug)]
pub struct UsageBatch {
    pub node_id: i64,
    /// The node's committed sequence the batch continues from.
    pub after_sequence: i64,
    /// The last sequence the batch covers.
    pub last_sequence: i64,
    pub coefficient: f64,
    pub deltas: Vec<UserUsageDelta>,
}

#[derive(Debug, Default)]
pub struct AppliedUsage {
    /// Users whose status changed because of this usage (e.g. limited).
    pub status_changed: Vec<i64>,
}

fn scaled(bytes: i64, coefficient: f64) -> i64 {
    (bytes as f64 * coefficient).round() as i64
}

impl Store {
    /// Applies a node's usage and records its new journal sequence in the same
    /// transaction. A batch that does not continue from the stored sequence
    /// (a re-delivery after a crash) changes nothing and is a conflict.
    ///
    /// The batch travels to the database as one JSON parameter per
    /// statement: a handful of statements for any number of users, where
    /// rows of bound values took hundreds. The per-user, per-node hourly
    /// history is queued with the batch and folded later
    /// ([`Store::fold_usage_history`]).
    pub async fn apply_usage(&self, batch: &UsageBatch) -> Result<AppliedUsage, StoreError> {
        let mut tx = self.begin_write().await?;
        let (up, down) = batch
            .deltas
            .iter()
            .fold((0, 0), |(u, d), x| (u + x.uplink, d + x.downlink));
        let moved = sqlx::query(
            "UPDATE nodes SET usage_sequence = $1, uplink = uplink + $2, downlink = downlink + $3 \
             WHERE id = $4 AND usage_sequence = $5",
        )
        .bind(batch.last_sequence)
        .bind(up)
        .bind(down)
        .bind(batch.node_id)
        .bind(batch.after_sequence)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Err(StoreError::Conflict(format!(
                "node {} usage sequence is not {}",
                batch.node_id, batch.after_sequence
            )));
        }

        // One row per user and hour, however many entries the batch has.
        let mut per_user_hour: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        let mut per_user: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for d in &batch.deltas {
            let bytes = scaled(d.uplink + d.downlink, batch.coefficient);
            *per_user_hour
                .entry((d.user_id, d.recorded_at - d.recorded_at.rem_euclid(3600)))
                .or_default() += bytes;
            let e = per_user.entry(d.user_id).or_default();
            e.0 += bytes;
            e.1 = e.1.max(d.recorded_at);
        }
        if per_user.is_empty() {
            tx.commit().await?;
            return Ok(AppliedUsage::default());
        }
        let rows = Deltas::new(self.backend);
        let counters = json_rows(
            per_user
                .iter()
                .map(|(id, (bytes, seen))| [*id, *bytes, *seen]),
        );
        // Only users whose lifecycle this traffic can change go through the
        // rules (a row re-read each); the rest just count, which is nearly
        // everyone in a large collection.
        let now = now();
        let may_change: Vec<(i64, i64)> = match self.backend {
            // One statement: the batch is parsed and joined with users once.
            Backend::Postgres => {
                let hash_joins = covers_many_users(&mut tx, per_user.len()).await?;
                if hash_joins {
                    set_nested_loops(&mut tx, false).await?;
                }
                let may_change = sqlx::query_as(&rows.count_all(&self.reminders))
                    .bind(&counters)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                if hash_joins {
                    set_nested_loops(&mut tx, true).await?;
                }
                may_change
            }
            // SQLite has no data-modifying CTEs; its statements are cheap.
            Backend::Sqlite => {
                sqlx::query(&rows.add_to_counters())
                    .bind(&counters)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&rows.add_to_admins())
                    .bind(&counters)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query_as(&rows.may_change(&self.reminders))
                    .bind(&counters)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        let bytes_by_user: BTreeMap<i64, i64> = may_change.into_iter().collect();
        sqlx::query("INSERT INTO usage_pending (node_id, deltas) VALUES ($1, $2)")
            .bind(batch.node_id)
            .bind(json_rows(
                per_user_hour
                    .iter()
                    .map(|((user, hour), bytes)| [*user, *hour, *bytes]),
            ))
            .execute(&mut *tx)
            .await?;
        let (status_changed, earliest_deadline) = super::user_changes::apply_traffic(
            &mut tx,
            self.backend,
            &self.reminders,
            &bytes_by_user,
            now,
        )
        .await?;
        tx.commit().await?;
        self.deadlines.written(earliest_deadline);
        self.usage_history.notify_one();
        self.outbox.committed();
        Ok(AppliedUsage { status_changed })
    }

    /// Wakes when usage history is waiting to be folded.
    pub fn usage_history_queued(&self) -> Arc<Notify> {
        self.usage_history.clone()
    }

    /// Folds the queued usage history into the per-user, per-node hourly
    /// rows: several collections at a time, merged into one upsert per
    /// (user, node, hour), in transactions of bounded size. Users deleted in
    /// the meantime are skipped. Returns how many collections it folded.
    pub async fn fold_usage_history(&self) -> Result<u64, StoreError> {
        // Most calls (every history read) find nothing to do: a plain read.
        let queued: Option<i64> = sqlx::query_scalar("SELECT id FROM usage_pending LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if queued.is_none() {
            return Ok(0);
        }
        let rows = Deltas::new(self.backend);
        let mut folded = 0;
        loop {
            let mut tx = self.begin_write().await?;
            // PostgreSQL: a concurrent fold waits here and then skips what
            // this one deleted; SQLite's write lock is already held.
            let lock = match self.backend {
                Backend::Postgres => " FOR UPDATE",
                Backend::Sqlite => "",
            };
            let queued: Vec<(i64, i64, String)> = sqlx::query_as(&format!(
                "SELECT id, node_id, deltas FROM usage_pending ORDER BY id LIMIT {FOLD_COLLECTIONS}{lock}"
            ))
            .fetch_all(&mut *tx)
            .await?;
            if queued.is_empty() {
                return Ok(folded);
            }
            let mut merged: BTreeMap<(i64, i64, i64), i64> = BTreeMap::new();
            for (id, node_id, deltas) in &queued {
                let deltas: Vec<[i64; 3]> = serde_json::from_str(deltas)
                    .map_err(|e| StoreError::Corrupt(format!("queued usage history {id}: {e}")))?;
                for [user, hour, bytes] in deltas {
                    *merged.entry((user, *node_id, hour)).or_default() += bytes;
                }
            }
            sqlx::query(&rows.add_to_history())
                .bind(json_rows(merged.iter().map(
                    |((user, node, hour), bytes)| [*user, *node, *hour, *bytes],
                )))
                .execute(&mut *tx)
                .await?;
            let ids: Vec<String> = queued.iter().map(|(id, ..)| id.to_string()).collect();
            sqlx::query(&format!(
                "DELETE FROM usage_pending WHERE id IN ({})",
                ids.join(", ")
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            folded += queued.len() as u64;
        }
    }
}

impl Store {
    /// PostgreSQL: vacuums the counters and their sort key. Every
    /// collection (and every refresh of the key) leaves a dead row version
    /// per user there, and the next ones slow down until they are
    /// reclaimed; servers run with autovacuum off or slow still need that.
    /// It blocks neither reads nor writes. SQLite updates in place: nothing
    /// to do.
    pub async fn compact_usage_counters(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::raw_sql("VACUUM user_traffic, user_traffic_order")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

/// PostgreSQL: whether a collection of `users` covers a large share of all
/// users (counted by the `user_counts` triggers). The planner
/// takes any JSON array for 100 rows and joins it by one index lookup per
/// user; for a collection of most users, hashing both sides is faster (a
/// third less time for 100,000 of 100,000 users).
async fn covers_many_users(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    users: usize,
) -> Result<bool, StoreError> {
    const AT_LEAST: usize = 10_000;
    if users < AT_LEAST {
        return Ok(false);
    }
    let all: Option<i64> = sqlx::query_scalar("SELECT CAST(SUM(n) AS BIGINT) FROM user_counts")
        .fetch_one(&mut **tx)
        .await?;
    Ok(users as i64 * 4 >= all.unwrap_or(0))
}

/// PostgreSQL: allows or forbids nested-loop joins for the rest of the
/// transaction (`set_config(..., true)` is `SET LOCAL`).
async fn set_nested_loops(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    on: bool,
) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('enable_nestloop', $1, true)")
        .bind(if on { "on" } else { "off" })
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Collections folded per transaction. Two collections of 100,000 users
/// hold SQLite's write lock for about 0.7 s (2 cores): ingestion and API
/// writes wait that long at most.
const FOLD_COLLECTIONS: usize = 2;

/// Whether the rules could change user `u` now (`$2`) that has `used`
/// bytes after this traffic's `bytes`: first traffic of an on-hold user, an
/// active user at her limit (limited, or her next plan), or a deadline
/// already due (time-based changes come before the bytes). Any other user's
/// traffic only counts. Must agree with the domain's traffic rules. An
/// active user whose bytes crossed a usage reminder threshold is read too.
fn may_change_condition(used: &str, bytes: &str, reminders: &ReminderThresholds) -> String {
    let crossed = reminders
        .crossed_sql(used, bytes, "u.data_limit")
        .map(|c| format!(" OR (u.status = 'active' AND u.data_limit > 0 AND ({c}))"))
        .unwrap_or_default();
    format!(
        "(u.status = 'on_hold' \
         OR (u.status = 'active' AND u.data_limit > 0 AND {used} >= u.data_limit) \
         OR u.deadline <= $2{crossed})"
    )
}

/// `[[a, b, ...], ...]`: rows of integers as one JSON text.
fn json_rows<const N: usize>(rows: impl Iterator<Item = [i64; N]>) -> String {
    use std::fmt::Write;
    let mut json = String::from("[");
    for (i, row) in rows.enumerate() {
        json.push_str(if i == 0 { "[" } else { ",[" });
        for (j, cell) in row.iter().enumerate() {
            if j > 0 {
                json.push(',');
            }
            write!(json, "{cell}").expect("writing to a String");
        }
        json.push(']');
    }
    json.push(']');
    json
}

/// The statements that read a batch passed as one JSON array of integer
/// rows (`$1`), in each backend's JSON functions.
struct Deltas {
    backend: Backend,
}

impl Deltas {
    fn new(backend: Backend) -> Self {
        Self { backend }
    }

    /// A subquery `d` with the named integer columns of `$1`'s rows.
    fn rows(&self, columns: &[&str]) -> String {
        let cells: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match self.backend {
                Backend::Sqlite => format!("value ->> {i} AS {c}"),
                Backend::Postgres => format!("CAST(e ->> {i} AS BIGINT) AS {c}"),
            })
            .collect();
        let from = match self.backend {
            Backend::Sqlite => "json_each($1)",
            Backend::Postgres => "json_array_elements(CAST($1 AS JSON)) AS e",
        };
        format!("(SELECT {} FROM {from}) AS d", cells.join(", "))
    }

    /// Adds `[user, bytes, seen]` rows to the users' counters (additively,
    /// so concurrent writes compose); `online_at` only moves forward.
    fn add_to_counters(&self) -> String {
        let seen = match self.backend {
            Backend::Sqlite => "MAX(COALESCE(user_traffic.online_at, d.seen), d.seen)",
            Backend::Postgres => "GREATEST(user_traffic.online_at, d.seen)",
        };
        format!(
            "UPDATE user_traffic SET used_traffic = user_traffic.used_traffic + d.bytes, \
             lifetime_used_traffic = user_traffic.lifetime_used_traffic + d.bytes, \
             online_at = {seen} FROM {} WHERE user_traffic.user_id = d.id",
            self.rows(&["id", "bytes", "seen"])
        )
    }

    /// PostgreSQL: [`Self::add_to_counters`], [`Self::add_to_admins`] and
    /// [`Self::may_change`] as one statement.
    fn count_all(&self, reminders: &ReminderThresholds) -> String {
        format!(
            "WITH c AS ({} RETURNING user_traffic.user_id AS id, d.bytes AS bytes, \
             user_traffic.used_traffic AS used_traffic), \
             j AS MATERIALIZED (SELECT c.id, c.bytes, u.admin_id, {} AS may_change \
             FROM c JOIN users u ON u.id = c.id), \
             a AS (UPDATE admins SET users_usage = admins.users_usage + s.bytes \
             FROM (SELECT admin_id, SUM(bytes) AS bytes FROM j WHERE admin_id IS NOT NULL \
             GROUP BY admin_id) AS s WHERE admins.id = s.admin_id) \
             SELECT id, bytes FROM j WHERE may_change",
            self.add_to_counters(),
            may_change_condition("c.used_traffic", "c.bytes", reminders),
        )
    }

    /// Adds the same rows to the owning admins' totals. Deleted users'
    /// bytes still count for the node, not for anyone else.
    fn add_to_admins(&self) -> String {
        format!(
            "UPDATE admins SET users_usage = admins.users_usage + s.bytes \
             FROM (SELECT u.admin_id AS admin_id, SUM(d.bytes) AS bytes FROM {} \
             JOIN users u ON u.id = d.id WHERE u.admin_id IS NOT NULL GROUP BY u.admin_id) AS s \
             WHERE admins.id = s.admin_id",
            self.rows(&["id", "bytes", "seen"])
        )
    }

    /// (user, bytes) of the rows whose user the rules could change now
    /// (see [`may_change_condition`]).
    fn may_change(&self, reminders: &ReminderThresholds) -> String {
        format!(
            "SELECT d.id, d.bytes FROM {} JOIN users u ON u.id = d.id \
             JOIN user_traffic t ON t.user_id = d.id WHERE {}",
            self.rows(&["id", "bytes", "seen"]),
            may_change_condition("t.used_traffic", "d.bytes", reminders),
        )
    }

    /// Adds `[user, node, hour, bytes]` rows to the hourly history.
    fn add_to_history(&self) -> String {
        format!(
            "INSERT INTO node_user_usages (user_id, node_id, hour, used_traffic) \
             SELECT d.user_id, d.node_id, d.hour, d.bytes FROM {} \
             WHERE EXISTS (SELECT 1 FROM users WHERE users.id = d.user_id) \
             ON CONFLICT (user_id, node_id, hour) \
             DO UPDATE SET used_traffic = node_user_usages.used_traffic + excluded.used_traffic",
            self.rows(&["user_id", "node_id", "hour", "bytes"])
        )
    }
}

/// What a retention pass did to the per-user, per-node usage history.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UsageRetention {
    /// Hourly rows folded into their day's row.
    pub hours_rolled_up: u64,
    /// Rows dropped for being older than the horizon.
    pub rows_pruned: u64,
}

impl Store {
    /// Folds hourly usage rows older than `hourly_before` into one row per
    /// user, node and day (at the day's first hour, so range queries keep
    /// working at day precision) and drops rows older than `prune_before`,
    /// in one transaction. Both cut-offs are unix seconds and are rounded
    /// down to a day boundary; running it again changes nothing.
    pub async fn apply_usage_retention(
        &self,
        hourly_before: i64,
        prune_before: Option<i64>,
    ) -> Result<UsageRetention, StoreError> {
        const DAY: i64 = 86_400;
        // Queued collections may hold hours this pass rolls up or prunes.
        self.fold_usage_history().await?;
        let hourly_before = hourly_before - hourly_before.rem_euclid(DAY);
        let mut tx = self.begin_write().await?;
        let rows_pruned = match prune_before {
            Some(before) => sqlx::query("DELETE FROM node_user_usages WHERE hour < $1")
                .bind(before - before.rem_euclid(DAY))
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            None => 0,
        };
        // `hour % 86400 <> 0`: the day's first hour is where the day is kept.
        sqlx::query(
            "INSERT INTO node_user_usages (user_id, node_id, hour, used_traffic) \
             SELECT user_id, node_id, hour - (hour % 86400), SUM(used_traffic) \
             FROM node_user_usages WHERE hour < $1 AND hour % 86400 <> 0 \
             GROUP BY user_id, node_id, hour - (hour % 86400) \
             ON CONFLICT (user_id, node_id, hour) \
             DO UPDATE SET used_traffic = node_user_usages.used_traffic + excluded.used_traffic",
        )
        .bind(hourly_before)
        .execute(&mut *tx)
        .await?;
        let hours_rolled_up =
            sqlx::query("DELETE FROM node_user_usages WHERE hour < $1 AND hour % 86400 <> 0")
                .bind(hourly_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(UsageRetention {
            hours_rolled_up,
            rows_pruned,
        })
    }
}
