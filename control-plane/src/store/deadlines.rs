//! Time-driven lifecycle changes without scans: every user row carries the
//! second at which time alone next changes it (`deadline`, kept by every
//! write of its lifecycle, migration 0009). The lifecycle clock settles the
//! users due now through an index range and sleeps until the next deadline;
//! writes that set an earlier one wake it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;

use super::account_rows::{
    ACCOUNT_COLUMNS, ACCOUNT_FROM, Cell, StoredAccount, earliest_of, lifecycle_diff,
    stored_account, write_diffs,
};
use super::outbox::{self, UserNote};
use super::reminders;
use super::user_changes::{UserWrite, event_notes};
use super::{Store, StoreError};
use crate::domain::{Event, UserStatus};

/// Where the clock sleeps until, and how writes wake it early.
#[derive(Debug)]
pub(crate) struct DeadlineWatch {
    /// The second the clock sleeps until; `i64::MAX` when it sleeps for long.
    scheduled: AtomicI64,
    wake: Notify,
}

impl Default for DeadlineWatch {
    fn default() -> Self {
        Self {
            scheduled: AtomicI64::new(i64::MAX),
            wake: Notify::new(),
        }
    }
}

impl DeadlineWatch {
    /// Called after a write committed `deadline` for some user.
    pub(crate) fn written(&self, deadline: Option<i64>) {
        if deadline.is_some_and(|d| d < self.scheduled.load(Ordering::Acquire)) {
            // A stored permit covers a clock that is between passes.
            self.wake.notify_one();
        }
    }
}

/// What one pass of the clock changed.
#[derive(Debug, Default)]
pub struct DuePass {
    /// Users looked at (at most the pass's limit; fewer means none is left).
    pub settled: usize,
    /// Users whose status changed, with their new status.
    pub status_changed: Vec<(i64, UserStatus)>,
    /// What happened to each user, in order, for notifications.
    pub events: Vec<(i64, Event)>,
}

impl Store {
    /// Settles at most `limit` users whose deadline is due at `now` (expiry,
    /// hold timeout, periodic reset, next plan) in one transaction. Users
    /// whose status changed carry one new revision, so nodes drop or add
    /// exactly them; what happened is written to the outbox in the same
    /// transaction.
    pub async fn settle_due_users(&self, now: i64, limit: i64) -> Result<DuePass, StoreError> {
        let mut write = UserWrite::begin(self).await?;
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM {ACCOUNT_FROM} WHERE u.deadline <= $1 \
             ORDER BY u.deadline LIMIT $2{}",
            write.lock()
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *write.tx)
            .await?;
        let mut pass = DuePass {
            settled: rows.len(),
            ..DuePass::default()
        };
        let mut diffs: BTreeMap<Vec<(&'static str, Cell)>, Vec<i64>> = BTreeMap::new();
        let mut earliest = None;
        let mut notes: BTreeMap<i64, Vec<UserNote>> = BTreeMap::new();
        for row in &rows {
            let stored: StoredAccount = stored_account(row)?;
            let mut after = stored.account.clone();
            let events = after.evaluate_at(now);
            let (diff, deadline) = lifecycle_diff(&stored, &after, now);
            earliest = earliest_of(earliest, deadline);
            if after.status != stored.account.status {
                pass.status_changed.push((stored.id, after.status));
            }
            let user_notes = event_notes(&events, None);
            if !user_notes.is_empty() {
                notes.insert(stored.id, user_notes);
            }
            pass.events
                .extend(events.into_iter().map(|event| (stored.id, event)));
            if !diff.is_empty() {
                diffs.entry(diff).or_default().push(stored.id);
            }
        }
        let revision = if pass.status_changed.is_empty() {
            None
        } else {
            Some(write.revision().await?)
        };
        write_diffs(&mut write.tx, diffs, revision).await?;
        let changed: Vec<i64> = notes.keys().copied().collect();
        reminders::clear_reset(&mut write.tx, Some(&changed), now).await?;
        outbox::enqueue_for_users(&mut write.tx, &notes, now).await?;
        write.commit().await?;
        self.deadlines.written(earliest);
        if !notes.is_empty() {
            self.outbox.committed();
        }
        Ok(pass)
    }

    /// The earliest deadline of any user, `None` when no user has one.
    pub async fn earliest_deadline(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(deadline) FROM users WHERE deadline IS NOT NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Waits until a write in this process sets a deadline before
    /// `scheduled` (the second the caller sleeps until). Writes by other
    /// processes are not seen: callers bound their sleep.
    pub async fn deadline_before(&self, scheduled: i64) {
        self.deadlines.scheduled.store(scheduled, Ordering::Release);
        self.deadlines.wake.notified().await;
    }
}
