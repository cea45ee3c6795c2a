//! The periodic jobs of `nexpoint serve`. Expiry and periodic usage resets
//! are not among them: the lifecycle clock applies those at their exact
//! second from per-user deadlines, without scanning users.

use std::time::Duration;

use super::scheduler::PeriodicJob;
use super::usage_retention::RetentionPolicy;
use crate::domain::AutoDeletePolicy;
use crate::nodes::NodeManager;
use crate::store::{Store, now};

const DAY: i64 = 86_400;

/// How often each job runs, and what it keeps.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub retention: RetentionPolicy,
    pub retention_every: Duration,
    pub auto_delete: AutoDeletePolicy,
    pub auto_delete_every: Duration,
    pub reminders_every: Duration,
    /// Delivered notifications older than this many days are dropped.
    pub outbox_retention_days: u32,
    pub outbox_prune_every: Duration,
}

/// The jobs, ready for [`super::scheduler::start`]. `destinations` are the
/// configured notification destinations whose cursors bound pruning.
pub fn jobs(
    store: &Store,
    nodes: &NodeManager,
    settings: &JobSettings,
    destinations: Vec<String>,
) -> Vec<PeriodicJob> {
    let (s, policy) = (store.clone(), settings.retention);
    let usage_retention = PeriodicJob {
        name: "usage_retention",
        every: settings.retention_every,
        run: Box::new(move || {
            let s = s.clone();
            Box::pin(async move {
                let (hourly, prune) = policy.cutoffs(now());
                let done = s.apply_usage_retention(hourly, prune).await?;
                Ok(format!("{done:?}"))
            })
        }),
    };
    let (s, n, policy) = (store.clone(), nodes.clone(), settings.auto_delete);
    let auto_delete = PeriodicJob {
        name: "auto_delete",
        every: settings.auto_delete_every,
        run: Box::new(move || {
            let (s, n) = (s.clone(), n.clone());
            Box::pin(async move {
                let deleted = s.delete_auto_deletable_users(&policy, now()).await?;
                if !deleted.is_empty() {
                    n.desired_state_changed();
                    tracing::info!(users = ?deleted, "users auto-deleted");
                }
                Ok(format!("{} users deleted", deleted.len()))
            })
        }),
    };
    let s = store.clone();
    let reminders = PeriodicJob {
        name: "days_left_reminders",
        every: settings.reminders_every,
        run: Box::new(move || {
            let s = s.clone();
            Box::pin(async move {
                let sent = s.send_days_left_reminders(now()).await?;
                Ok(format!("{sent} reminders"))
            })
        }),
    };
    let (s, days) = (store.clone(), i64::from(settings.outbox_retention_days));
    let outbox_prune = PeriodicJob {
        name: "notification_prune",
        every: settings.outbox_prune_every,
        run: Box::new(move || {
            let (s, destinations) = (s.clone(), destinations.clone());
            Box::pin(async move {
                let pruned = s
                    .prune_notifications(&destinations, now() - days * DAY)
                    .await?;
                Ok(format!("{pruned} notifications pruned"))
            })
        }),
    };
    vec![usage_retention, auto_delete, reminders, outbox_prune]
}
