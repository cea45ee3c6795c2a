//! Keeps the per-user usage history from growing without bound: hourly rows
//! older than the hourly horizon become daily rows, and rows older than the
//! retention horizon are dropped (see [`crate::store::Store::apply_usage_retention`]).
//! Run by the `usage_retention` periodic job.

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
