//! Keeps the per-user usage history from growing without bound: hourly rows
//! older than the hourly horizon become daily rows, and rows older than the
//! retention horizon are dropped (see [`Store::apply_usage_retention`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Store, now};

const DAY: i64 = 86_400;

/// The horizons, in days (`retention_days` 0 keeps daily rows forever).
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    pub hourly_days: u32,
    pub retention_days: u32,
}

impl RetentionPolicy {
    /// (hourly rows before this are rolled up, rows before this are dropped) at `now`.
    pub fn cutoffs(&self, now: i64) -> (i64, Option<i64>) {
        let hourly = now - i64::from(self.hourly_days) * DAY;
        let prune = (self.retention_days > 0).then(|| now - i64::from(self.retention_days) * DAY);
        (hourly, prune)
    }
}

/// Runs a pass at start and then every `every`, until `cancel`.
pub async fn run(
    store: Store,
    policy: RetentionPolicy,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let (hourly, prune) = policy.cutoffs(now());
        match store.apply_usage_retention(hourly, prune).await {
            Ok(done) if done.hours_rolled_up + done.rows_pruned > 0 => {
                tracing::info!(?done, "usage history rolled up and pruned");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "usage retention failed; next pass retries"),
        }
    }
}
