//! One task per node: connect over pinned mutual TLS, reconcile the desired
//! state as revisions, collect and commit usage, track the node's health.

pub(crate) mod client;
mod desired;
pub mod enrollment;
mod metrics;
mod on_demand;
mod reconcile;
pub mod rotation;
mod session;

pub use client::ConnectError;
pub use metrics::NodeMetrics;
pub use on_demand::{ConfigVerdict, NodeCallError};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::pki::Pki;
use crate::store::Store;

/// What every node task shares.
#[derive(Clone)]
pub(crate) struct NodeContext {
    pub store: Store,
    pub pki: Arc<Pki>,
    pub interval: Duration,
    /// Ticks whenever the desired state changed in this process, so tasks
    /// reconcile at once instead of at their next interval.
    pub changed: watch::Receiver<u64>,
    /// Sends on `changed`: a node's usage can change what every node serves.
    notify: Arc<watch::Sender<u64>>,
    pub metrics: Arc<NodeMetrics>,
}

impl NodeContext {
    /// Wakes every node task to reconcile now.
    pub(crate) fn wake_all(&self) {
        self.notify.send_modify(|n| *n = n.wrapping_add(1));
    }
}

struct Running {
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

/// The running node tasks, and how many times they were started or stopped
/// (see `reconcile`: a pass that read the nodes before such a change acts
/// on a stale view and skips its turn).
#[derive(Default)]
struct Tasks {
    running: HashMap<i64, Running>,
    generation: u64,
}

impl Tasks {
    fn start(&mut self, ctx: &NodeContext, shutdown: &CancellationToken, node_id: i64) {
        let cancel = shutdown.child_token();
        let handle = tokio::spawn(session::run(ctx.clone(), node_id, cancel.clone()));
        self.generation += 1;
        if let Some(previous) = self.running.insert(node_id, Running { cancel, handle }) {
            previous.cancel.cancel();
        }
    }

    fn stop(&mut self, node_id: i64) {
        self.generation += 1;
        if let Some(running) = self.running.remove(&node_id) {
            running.cancel.cancel();
        }
    }
}

#[derive(Clone)]
pub struct NodeManager {
    ctx: NodeContext,
    shutdown: CancellationToken,
    tasks: Arc<Mutex<Tasks>>,
}

impl NodeManager {
    pub fn new(store: Store, pki: Arc<Pki>, interval: Duration) -> Self {
        let (tx, rx) = watch::channel(0);
        Self {
            ctx: NodeContext {
                store,
                pki,
                interval,
                changed: rx,
                notify: Arc::new(tx),
                metrics: Arc::default(),
            },
            shutdown: CancellationToken::new(),
            tasks: Arc::default(),
        }
    }

    /// Starts a task for every stored node that is not disabled.
    pub async fn start_all(&self) -> Result<(), crate::store::StoreError> {
        for node in self.ctx.store.nodes().await? {
            if node.status != "disabled" {
                self.start(node.id);
            }
        }
        Ok(())
    }

    /// Starts (or restarts, e.g. after enrollment) the task of one node.
    pub fn start(&self, node_id: i64) {
        self.lock_tasks().start(&self.ctx, &self.shutdown, node_id);
    }

    pub fn stop(&self, node_id: i64) {
        self.lock_tasks().stop(node_id);
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().expect("node task map poisoned")
    }

    /// Usage and revision figures of every node task, for `/metrics`.
    pub fn metrics(&self) -> &Arc<NodeMetrics> {
        &self.ctx.metrics
    }

    /// Wakes every node task to reconcile now.
    pub fn desired_state_changed(&self) {
        self.ctx.wake_all();
    }

    /// Cancels every task and waits for them, bounded by `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        self.shutdown.cancel();
        let handles: Vec<_> = self
            .lock_tasks()
            .running
            .drain()
            .map(|(_, r)| r.handle)
            .collect();
        let all = futures::future::join_all(handles);
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("node tasks did not stop within {deadline:?}");
        }
    }
}
