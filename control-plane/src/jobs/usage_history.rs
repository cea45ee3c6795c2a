//! Folds queued usage history into the hourly per-user, per-node rows (see
//! [`Store::fold_usage_history`]) off the ingestion path: woken by each
//! collection, then resting for a while so that the next fold merges the
//! collections of every node that arrived meanwhile into one upsert per row.
//! History reads fold first, so what they show is never behind.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Runs until `cancel`, folding at most once per `rest`.
pub async fn run(store: Store, rest: Duration, cancel: CancellationToken) {
    let queued = store.usage_history_queued();
    loop {
        // A collection queued before this task started left a permit.
        match store.fold_usage_history().await {
            Ok(folded) if folded > 0 => tracing::debug!(folded, "usage history folded"),
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
