//! Folds queued usage history into the hourly per-user, per-node rows (see
//! [`Store::fold_usage_history`]) off the ingestion path: woken by each
//! collection, then resting for a while so that the next fold merges the
//! collections of every node that arrived meanwhile into one upsert per row.
//! History reads fold first, so what they show is never behind. After a fold
//! it brings the users list's usage sort key up to date and reclaims the
//! counters' dead row versions on PostgreSQL.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// How long the job rests after a fold: collections arriving meanwhile are
/// merged into the next one.
pub const REST: Duration = Duration::from_secs(30);

/// Runs until `cancel`, folding at most once per `rest`.
pub async fn run(store: Store, rest: Duration, cancel: CancellationToken) {
    let queued = store.usage_history_queued();
    loop {
        // A collection queued before this task started left a permit.
        match store.fold_usage_history().await {
            Ok(folded) if folded > 0 => {
                tracing::debug!(folded, "usage history folded");
                if let Err(e) = store.refresh_usage_order().await {
                    tracing::warn!(error = %e, "refreshing the usage sort order failed; next pass retries");
                }
                if let Err(e) = store.compact_usage_counters().await {
                    tracing::warn!(error = %e, "vacuuming usage counters failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "folding usage history failed; next pass retries"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(rest) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = queued.notified() => {}
        }
    }
}
