//! The lifecycle clock: applies what time alone changes (a user expiring, an
//! on-hold user's timeout, a periodic usage reset, a next plan waiting for
//! the expiry) at the second it is due, and wakes the node tasks so the
//! changed users leave or rejoin every core at once.
//!
//! It never scans the users: each pass reads the users whose stored
//! deadline has come (an index range), and between passes it sleeps until
//! the earliest deadline. A write in this process that sets an earlier one
//! wakes it; writes by other processes (the CLI, another replica) are seen
//! within [`MAX_SLEEP`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::nodes::NodeManager;
use crate::store::{Store, StoreError};

/// Users settled per transaction, so a burst (many users expiring in the
/// same second) never holds the write lock for long.
const BATCH: i64 = 1_000;
/// The longest sleep between looks at the earliest deadline.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);
/// After a database error.
const RETRY: Duration = Duration::from_secs(1);

/// Runs until `cancel`.
pub async fn run(store: Store, nodes: NodeManager, cancel: CancellationToken) {
    loop {
        let wait = match pass(&store, &nodes).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle clock pass failed; retrying");
                Some(RETRY)
            }
        };
        let Some(wait) = wait else { continue };
        let until = unix_now_ms().saturating_add(wait.as_millis() as i64) / 1000;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = store.deadline_before(until) => {}
        }
    }
}

/// Settles the users due now; returns how long to sleep, `None` to go on
/// at once (more users are due).
async fn pass(store: &Store, nodes: &NodeManager) -> Result<Option<Duration>, StoreError> {
    let now_ms = unix_now_ms();
    let now = now_ms / 1000;
    let due = store.settle_due_users(now, BATCH).await?;
    if !due.status_changed.is_empty() {
        nodes.desired_state_changed();
    }
    for (user, event) in &due.events {
        tracing::info!(user, ?event, "user changed on time");
    }
    if due.settled as i64 == BATCH {
        return Ok(None);
    }
    let next = store.earliest_deadline().await?;
    // Measured after the pass, not before it: the pass's own time must not
    // make the clock wake late.
    let now_ms = unix_now_ms();
    Ok(Some(match next {
        // A deadline is due when its second starts.
        Some(next) => {
            Duration::from_millis(next.saturating_mul(1000).saturating_sub(now_ms).max(0) as u64)
                .min(MAX_SLEEP)
        }
        None => MAX_SLEEP,
    }))
}

fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
