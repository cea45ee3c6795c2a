//! Node tasks follow the stored nodes, whoever changed them. The API starts
//! and stops tasks as it edits nodes, but `nexpoint node add` and `node
//! remove` write the database from another process: a periodic pass starts
//! tasks for nodes it finds without one and stops those of nodes deleted or
//! disabled since.

use std::collections::BTreeSet;

use super::NodeManager;
use crate::store::StoreError;

/// What a pass changes: ids to start and ids to stop.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    start: Vec<i64>,
    stop: Vec<i64>,
}

/// `wanted`: the nodes that should have a task; `running`: those that have
/// one, and whether it is still alive (a task ends by itself when its node
/// is gone).
fn plan(wanted: &BTreeSet<i64>, running: impl Iterator<Item = (i64, bool)>) -> Plan {
    let mut plan = Plan::default();
    let mut seen = BTreeSet::new();
    for (id, alive) in running {
        seen.insert(id);
        if !wanted.contains(&id) {
            plan.stop.push(id);
        } else if !alive {
            plan.start.push(id);
        }
    }
    plan.start.extend(wanted.difference(&seen));
    plan.start.sort_unstable();
    plan.stop.sort_unstable();
    plan
}

impl NodeManager {
    /// Reconciles the tasks with the stored nodes every node interval until
    /// shutdown.
    pub fn spawn_reconciler(&self) {
        let manager = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = manager.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(manager.ctx.interval) => {}
                }
                if let Err(e) = manager.reconcile().await {
                    tracing::warn!(error = %e, "cannot compare node tasks with the stored nodes");
                }
            }
        });
    }

    /// One pass: start a task for every stored node that is not disabled
    /// and has none (or whose task ended), stop the tasks of the others.
    pub(crate) async fn reconcile(&self) -> Result<(), StoreError> {
        let before = self.lock_tasks().generation;
        let wanted: BTreeSet<i64> = self
            .ctx
            .store
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.status != "disabled")
            .map(|n| n.id)
            .collect();
        let mut tasks = self.lock_tasks();
        // A task started or stopped since the read acted on a newer view
        // of the nodes than this pass has (the API writes a node, then
        // starts or stops its task); the next pass sees what it did.
        if tasks.generation != before || self.shutdown.is_cancelled() {
            return Ok(());
        }
        let running = tasks
            .running
            .iter()
            .map(|(id, r)| (*id, !r.handle.is_finished()));
        let plan = plan(&wanted, running);
        for id in plan.stop {
            tracing::info!(
                node = id,
                "node deleted or disabled elsewhere: stopping its task"
            );
            tasks.stop(id);
        }
        for id in plan.start {
            tracing::info!(node = id, "node without a task: starting it");
            tasks.start(&self.ctx, &self.shutdown, id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_follow_the_stored_nodes() {
        let wanted: BTreeSet<i64> = [1, 2, 4].into();
        // 1 runs, 2 has none, 3 was deleted, 4's task ended by itself.
        let running = [(1, true), (3, true), (4, false)].into_iter();
        assert_eq!(
            plan(&wanted, running),
            Plan {
                start: vec![2, 4],
                stop: vec![3],
            }
        );
        assert_eq!(plan(&BTreeSet::new(), std::iter::empty()), Plan::default());
    }
}
