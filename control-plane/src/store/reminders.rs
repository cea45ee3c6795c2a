//! Reminders (Marzban's `reached_usage_percent` and `reached_days_left`):
//! sent once per (user, kind, threshold), remembered in `user_reminders`,
//! and forgotten when the condition no longer holds (usage reset or limit
//! raised, expiry extended), so they can be sent again.

use std::collections::BTreeMap;

use sqlx::{Any, Transaction};

use super::outbox::{self, UserNote};
use super::{Store, StoreError};
use crate::domain::{Account, Action};

const DAY: i64 = 86_400;
const USAGE: &str = "usage_percent";
const DAYS: &str = "days_left";

/// The thresholds reminders are sent at (Marzban's
/// NOTIFY_REACHED_USAGE_PERCENT and NOTIFY_DAYS_LEFT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderThresholds {
    /// Percents of the data limit, ascending.
    pub usage_percent: Vec<i64>,
    /// Days before the expiry, descending.
    pub days_left: Vec<i64>,
}

impl Default for ReminderThresholds {
    /// Marzban's defaults.
    fn default() -> Self {
        Self::new(vec![80], vec![3])
    }
}

impl ReminderThresholds {
    pub fn new(mut usage_percent: Vec<i64>, mut days_left: Vec<i64>) -> Self {
        usage_percent.retain(|p| *p > 0);
        usage_percent.sort_unstable();
        usage_percent.dedup();
        days_left.retain(|d| *d > 0);
        days_left.sort_unstable_by(|a, b| b.cmp(a));
        days_left.dedup();
        Self {
            usage_percent,
            days_left,
        }
    }

    /// The usage thresholds traffic crossed from `before` to `after`.
    pub(crate) fn usage_crossed(&self, before: &Account, after: &Account) -> Vec<i64> {
        let Some(limit) = after.effective_limit() else {
            return Vec::new();
        };
        self.usage_percent
            .iter()
            .copied()
            .filter(|t| {
                !reached(before.used_traffic, limit, *t) && reached(after.used_traffic, limit, *t)
            })
            .collect()
    }

    /// A SQL condition: the last `bytes` that brought usage to `used`
    /// crossed a threshold of `limit` (columns or expressions). Ingestion
    /// uses it to read, besides the users the rules may change, the few
    /// that owe a reminder. `None` without thresholds.
    pub(crate) fn crossed_sql(&self, used: &str, bytes: &str, limit: &str) -> Option<String> {
        let each: Vec<String> = self
            .usage_percent
            .iter()
            .map(|t| {
                format!(
                    "(({used} - {bytes}) * 100 < {limit} * {t} AND {used} * 100 >= {limit} * {t})"
                )
            })
            .collect();
        (!each.is_empty()).then(|| each.join(" OR "))
    }
}

/// Whether `used` bytes reach `percent` of `limit`: compared in bytes, not
/// in rounded percents.
fn reached(used: i64, limit: i64, percent: i64) -> bool {
    i128::from(used) * 100 >= i128::from(limit) * i128::from(percent)
}

/// Marks `thresholds` of `kind` as sent for the user and returns the most
/// severe one newly marked: crossing 80 % and 90 % at once reports 90 %.
async fn mark(
    tx: &mut Transaction<'_, Any>,
    user_id: i64,
    kind: &str,
    thresholds: &[i64],
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let mut newest = None;
    for t in thresholds {
        let inserted = sqlx::query(
            "INSERT INTO user_reminders (user_id, kind, threshold, sent_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, kind, threshold) DO NOTHING",
        )
        .bind(user_id)
        .bind(kind)
        .bind(*t)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted > 0 {
            newest = Some(*t);
        }
    }
    Ok(newest)
}

/// The usage reminder for traffic that moved a user from `before` to
/// `after`, if a threshold was crossed and not yet reported.
pub(crate) async fn usage_note(
    tx: &mut Transaction<'_, Any>,
    thresholds: &ReminderThresholds,
    user_id: i64,
    before: &Account,
    after: &Account,
    now: i64,
) -> Result<Option<UserNote>, StoreError> {
    let crossed = thresholds.usage_crossed(before, after);
    if crossed.is_empty() {
        return Ok(None);
    }
    Ok(mark(tx, user_id, USAGE, &crossed, now)
        .await?
        .map(|percent| UserNote {
            used_percent: Some(percent),
            ..UserNote::new(Action::ReachedUsagePercent, None)
        }))
}

/// Forgets the reminders whose condition no longer holds, for the users in
/// `ids` (all users when `None`): usage below the threshold (reset, limit
/// raised or removed), expiry further away than the threshold (extended or
/// removed).
pub(crate) async fn clear_reset(
    tx: &mut Transaction<'_, Any>,
    ids: Option<&[i64]>,
    now: i64,
) -> Result<(), StoreError> {
    let chunks: Vec<&[i64]> = match ids {
        Some([]) => return Ok(()),
        Some(ids) => ids.chunks(super::user_changes::CHUNK).collect(),
        None => vec![&[]],
    };
    for chunk in chunks {
        let only = if ids.is_some() {
            let placeholders = (0..chunk.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            format!(" AND user_id IN ({placeholders})")
        } else {
            String::new()
        };
        let sql = format!(
            "DELETE FROM user_reminders WHERE ((kind = '{USAGE}' AND EXISTS (SELECT 1 FROM users u \
             JOIN user_traffic t ON t.user_id = u.id WHERE u.id = user_reminders.user_id AND (u.data_limit IS NULL OR u.data_limit <= 0 \
             OR t.used_traffic * 100 < u.data_limit * user_reminders.threshold))) \
             OR (kind = '{DAYS}' AND EXISTS (SELECT 1 FROM users u \
             WHERE u.id = user_reminders.user_id AND (u.expire IS NULL OR u.expire <= 0 \
             OR u.expire - $1 > user_reminders.threshold * {DAY})))){only}"
        );
        let mut query = sqlx::query(&sql).bind(now);
        for id in chunk {
            query = query.bind(*id);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// The thresholds usage ingestion and the reminder job use.
    pub fn with_reminder_thresholds(mut self, thresholds: ReminderThresholds) -> Self {
        self.reminders = std::sync::Arc::new(thresholds);
        self
    }

    /// One pass of the days-left reminders: forgets those whose condition
    /// reset, then reminds every active user whose expiry is within a
    /// threshold and who was not reminded of it yet. Returns how many
    /// reminders were written.
    pub async fn send_days_left_reminders(&self, now: i64) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        clear_reset(&mut tx, None, now).await?;
        let mut due: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for days in &self.reminders.days_left {
            let ids: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT u.id FROM users u WHERE u.status = 'active' AND u.expire > $1 \
                 AND u.expire <= $2 AND NOT EXISTS (SELECT 1 FROM user_reminders r \
                 WHERE r.user_id = u.id AND r.kind = '{DAYS}' AND r.threshold = $3)"
            ))
            .bind(now)
            .bind(now + days * DAY)
            .bind(*days)
            .fetch_all(&mut *tx)
            .await?;
            for id in ids {
                due.entry(id).or_default().push(*days);
            }
        }
        let mut notes: BTreeMap<i64, Vec<UserNote>> = BTreeMap::new();
        for (id, thresholds) in due {
            // Descending: the last marked is the nearest.
            if let Some(days) = mark(&mut tx, id, DAYS, &thresholds, now).await? {
                notes.insert(
                    id,
                    vec![UserNote {
                        days_left: Some(days),
                        ..UserNote::new(Action::ReachedDaysLeft, None)
                    }],
                );
            }
        }
        outbox::enqueue_for_users(&mut tx, &notes, now).await?;
        tx.commit().await?;
        if !notes.is_empty() {
            self.outbox.committed();
        }
        Ok(notes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(used: i64, limit: Option<i64>) -> Account {
        Account {
            used_traffic: used,
            data_limit: limit,
            ..Account::new(0)
        }
    }

    #[test]
    fn thresholds_are_crossed_in_bytes() {
        let t = ReminderThresholds::new(vec![90, 80, 0, 80], vec![1, 3]);
        assert_eq!(t.usage_percent, vec![80, 90]);
        assert_eq!(t.days_left, vec![3, 1]);
        let limit = Some(1000);
        assert_eq!(
            t.usage_crossed(&account(799, limit), &account(800, limit)),
            vec![80]
        );
        assert_eq!(
            t.usage_crossed(&account(100, limit), &account(950, limit)),
            vec![80, 90]
        );
        assert!(
            t.usage_crossed(&account(800, limit), &account(850, limit))
                .is_empty()
        );
        assert!(
            t.usage_crossed(&account(0, None), &account(10_000, None))
                .is_empty()
        );
    }
}
