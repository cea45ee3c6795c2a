//! What node tasks measure for `/metrics`: usage batches as they are
//! committed, and the revision each node last applied (its lag is computed
//! against the database's revision when scraped).

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts};

pub struct NodeMetrics {
    /// Users in one committed usage batch.
    pub(crate) usage_batch_users: Histogram,
    /// From the agent's counter reading to its commit here.
    pub(crate) usage_ingest_lag: Histogram,
    /// How long committing one batch took.
    pub(crate) usage_commit: Histogram,
    applied: Mutex<HashMap<i64, i64>>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("static histogram options are valid")
        };
        Self {
            usage_batch_users: histogram(
                "nexpoint_usage_batch_users",
                "Users in one committed usage batch",
                prometheus::exponential_buckets(1.0, 4.0, 10).expect("valid buckets"),
            ),
            usage_ingest_lag: histogram(
                "nexpoint_usage_ingest_lag_seconds",
                "Seconds from an agent's counter reading to its commit",
                vec![1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0],
            ),
            usage_commit: histogram(
                "nexpoint_usage_commit_seconds",
                "Seconds one usage batch took to commit",
                prometheus::DEFAULT_BUCKETS.to_vec(),
            ),
            applied: Mutex::default(),
        }
    }
}

impl NodeMetrics {
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.usage_batch_users.clone()),
            Box::new(self.usage_ingest_lag.clone()),
            Box::new(self.usage_commit.clone()),
        ]
    }

    pub(crate) fn applied(&self, node_id: i64, revision: i64) {
        self.lock().insert(node_id, revision);
    }

    /// The revision each node last confirmed applying, by node id.
    pub fn applied_revisions(&self) -> HashMap<i64, i64> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        // Plain numbers: still right after a panic elsewhere.
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }
}
