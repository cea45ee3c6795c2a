use std::collections::BTreeMap;

use super::{Store, StoreError, now};

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
        let touched = add_user_usage(&mut tx, &per_user).await?;
        add_admin_usage(&mut tx, &touched).await?;
        let existing: BTreeMap<i64, i64> = touched.iter().map(|t| (t.0, t.1)).collect();
        let hours: Vec<((i64, i64), i64)> = per_user_hour
            .into_iter()
            .filter(|((user_id, _), _)| existing.contains_key(user_id))
            .collect();
        add_hourly_usage(&mut tx, batch.node_id, &hours).await?;
        // Only users whose lifecycle this traffic can change go through the
        // rules (a row re-read each); the rest just count, which is nearly
        // everyone in a large collection.
        let now = now();
        let bytes_by_user: BTreeMap<i64, i64> = touched
            .iter()
            .filter(|t| {
                t.3.may_change(now)
                    || (t.3.active
                        && self.reminders.crossed_by(
                            t.3.used_traffic,
                            per_user[&t.0].0,
                            t.3.data_limit,
                        ))
            })
            .map(|t| (t.0, per_user[&t.0].0))
            .collect();
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
        self.outbox.committed();
        Ok(AppliedUsage { status_changed })
    }
}

/// Rows per multi-row statement: few round trips, well under SQLite's
/// 32,766-parameter limit.
const CHUNK: usize = 500;

fn values_list(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the usage update tells about a user's lifecycle after it.
#[derive(Debug, Clone, Copy)]
struct AfterTraffic {
    on_hold: bool,
    active: bool,
    used_traffic: i64,
    data_limit: Option<i64>,
    deadline: Option<i64>,
}

impl AfterTraffic {
    /// Whether the rules could change the user now: first traffic of an
    /// on-hold user, an active user at her limit (limited, or her next
    /// plan), or a deadline already due (time-based changes come before the
    /// bytes). Any other user's traffic only counts.
    fn may_change(&self, now: i64) -> bool {
        self.on_hold
            || (self.active
                && self
                    .data_limit
                    .is_some_and(|l| l > 0 && self.used_traffic >= l))
            || self.deadline.is_some_and(|d| d <= now)
    }
}

/// Adds each user's bytes (additively, so concurrent writes compose) and
/// returns (user id, bytes, owning admin, lifecycle after) for the users
/// that still exist.
async fn add_user_usage(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    per_user: &BTreeMap<i64, (i64, i64)>,
) -> Result<Vec<(i64, i64, Option<i64>, AfterTraffic)>, StoreError> {
    let rows: Vec<(&i64, &(i64, i64))> = per_user.iter().collect();
    let mut touched = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "WITH v (id, bytes, seen) AS (VALUES {}) \
             UPDATE users SET used_traffic = users.used_traffic + v.bytes, \
             lifetime_used_traffic = users.lifetime_used_traffic + v.bytes, online_at = v.seen \
             FROM v WHERE users.id = v.id RETURNING users.id, users.admin_id, users.status, \
             users.used_traffic, users.data_limit, users.deadline",
            values_list(chunk.len(), 3)
        );
        type Row = (i64, Option<i64>, String, i64, Option<i64>, Option<i64>);
        let mut query = sqlx::query_as::<_, Row>(&sql);
        for (id, (bytes, seen)) in chunk {
            query = query.bind(**id).bind(*bytes).bind(*seen);
        }
        // SQLite's RETURNING sees only the updated table: take bytes from here.
        for (id, admin, status, used_traffic, data_limit, deadline) in
            query.fetch_all(&mut **tx).await?
        {
            let after = AfterTraffic {
                on_hold: status == "on_hold",
                active: status == "active",
                used_traffic,
                data_limit,
                deadline,
            };
            touched.push((id, per_user[&id].0, admin, after));
        }
    }
    // Deleted users' bytes still count for the node, not for anyone else.
    Ok(touched)
}

async fn add_admin_usage(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    touched: &[(i64, i64, Option<i64>, AfterTraffic)],
) -> Result<(), StoreError> {
    let mut per_admin: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, bytes, admin, _) in touched {
        if let Some(admin) = admin {
            *per_admin.entry(*admin).or_default() += bytes;
        }
    }
    for (admin, bytes) in per_admin {
        sqlx::query("UPDATE admins SET users_usage = users_usage + $1 WHERE id = $2")
            .bind(bytes)
            .bind(admin)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn add_hourly_usage(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    node_id: i64,
    hours: &[((i64, i64), i64)],
) -> Result<(), StoreError> {
    for chunk in hours.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO node_user_usages (user_id, node_id, hour, used_traffic) VALUES {} \
             ON CONFLICT (user_id, node_id, hour) \
             DO UPDATE SET used_traffic = node_user_usages.used_traffic + excluded.used_traffic",
            values_list(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for ((user_id, hour), bytes) in chunk {
            query = query.bind(*user_id).bind(node_id).bind(*hour).bind(*bytes);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
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
