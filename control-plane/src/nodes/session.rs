//! The life of one node task: connect, reconcile, collect, report, repeat.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nexpoint_proto::agent::{
    AckUsageRequest, ChangeSet, CollectUsageRequest, CoreStatus, HealthRequest, HealthResponse,
    Snapshot, UserSpec,
};
use tokio_util::sync::CancellationToken;
use tonic::Code;

use super::client::{self, Agent, ConnectError, Pin};
use super::desired::{Mirror, served_spec, user_spec};
use super::{NodeContext, rotation};
use crate::domain::{parse_inbounds, user_id_from_email};
use crate::store::{Node, NodeHealth, StoreError, UsageBatch, UserUsageDelta};

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("agent: {}", .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("core config: {0}")]
    CoreConfig(#[from] crate::domain::inbounds::InboundError),
}

/// Reconnect delays: exponential with jitter, so a fleet that lost the
/// control plane does not reconnect in lockstep. Capped low: a node that
/// comes back must get the users it missed within seconds, and a refused
/// connection every few seconds costs nothing.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(8);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        base.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// How long a stopping session may take to commit its last usage.
const FINAL_PASS: Duration = Duration::from_secs(5);

pub(crate) async fn run(ctx: NodeContext, node_id: i64, cancel: CancellationToken) {
    let mut backoff = Backoff::new();
    let mut reported: Option<(String, Option<String>)> = None;
    loop {
        let outcome = {
            let session = session(&ctx, node_id, &cancel, &mut backoff, &mut reported);
            tokio::pin!(session);
            tokio::select! {
                // A connected session commits the usage its agent journaled
                // before it stops; one still connecting is given up.
                _ = cancel.cancelled() => tokio::time::timeout(FINAL_PASS, &mut session)
                    .await
                    .unwrap_or(Ok(())),
                outcome = &mut session => outcome,
            }
        };
        if cancel.is_cancelled() {
            if let Err(e) = outcome {
                tracing::debug!(node = node_id, error = %e, "final usage collection failed");
            }
            return;
        }
        match outcome {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(node = node_id, error = %e, "node session ended");
                let health = NodeHealth {
                    status: "error",
                    message: Some(e.to_string()),
                    ..Default::default()
                };
                report(&ctx, node_id, health, &mut reported).await;
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// When this session next rotates the node's certificate: when it is due,
/// or when an operator asked for it (`nexpoint certs rotate`).
struct RotationSchedule {
    not_after: Option<i64>,
    /// After a failure, the next try waits (the current certificate still
    /// has months to live).
    retry_at: i64,
}

impl RotationSchedule {
    const RETRY_AFTER_SECS: i64 = 3600;
    /// An operator waits for a requested rotation: retry it sooner.
    const RETRY_REQUESTED_AFTER_SECS: i64 = 60;

    fn new(not_after: Option<i64>) -> Self {
        Self {
            not_after,
            retry_at: 0,
        }
    }

    /// `requested`: when a pending rotation request was made, if any.
    async fn run_if_due(
        &mut self,
        ctx: &NodeContext,
        agent: &mut Agent,
        node_id: i64,
        requested: Option<i64>,
    ) {
        let now = crate::store::now();
        if now < self.retry_at || !(requested.is_some() || rotation::due(self.not_after, now)) {
            return;
        }
        match rotation::rotate(&ctx.pki, &ctx.store, agent, node_id).await {
            Ok(_) => {
                if let Some(at) = requested
                    && let Err(e) = ctx.store.clear_node_rotation_request(node_id, at).await
                {
                    // The request stays: the node rotates once more.
                    tracing::warn!(node = node_id, error = %e, "cannot clear the rotation request");
                }
                match ctx.store.node(node_id).await {
                    Ok(node) => self.not_after = node.certificate_not_after,
                    Err(e) => {
                        tracing::warn!(node = node_id, error = %e, "cannot read the rotated certificate");
                        self.retry_at = now + Self::RETRY_AFTER_SECS;
                    }
                }
            }
            Err(e) => {
                let after = match requested {
                    Some(_) => Self::RETRY_REQUESTED_AFTER_SECS,
                    None => Self::RETRY_AFTER_SECS,
                };
                tracing::warn!(node = node_id, error = %e, retry_in_secs = after,
                    "certificate rotation failed");
                self.retry_at = now + after;
            }
        }
    }
}

/// Writes the node's status when it differs from what was last written.
async fn report(
    ctx: &NodeContext,
    node_id: i64,
    health: NodeHealth,
    reported: &mut Option<(String, Option<String>)>,
) {
    let key = (health.status.to_owned(), health.message.clone());
    if reported.as_ref() == Some(&key) && health.status != "connected" {
        return;
    }
    if let Err(e) = ctx.store.set_node_health(node_id, health).await {
        tracing::warn!(node = node_id, error = %e, "could not record node health");
        return;
    }
    *reported = Some(key);
}

fn core_health(core: Option<&CoreStatus>, agent_version: &str) -> NodeHealth {
    let (status, message) = match core {
        Some(c) if !c.running && !c.last_error.is_empty() => {
            ("error", Some(format!("core: {}", c.last_error)))
        }
        Some(c) if !c.running => ("error", Some("core is not running".into())),
        _ => ("connected", None),
    };
    NodeHealth {
        status,
        message,
        core_kind: core.map(|c| c.kind.clone()).filter(|s| !s.is_empty()),
        xray_version: core.map(|c| c.version.clone()).filter(|s| !s.is_empty()),
        agent_version: Some(agent_version.to_owned()).filter(|s| !s.is_empty()),
        core_restarts: core.map(|c| i64::from(c.restarts)),
        core_started_at: core.map(|c| c.started_at).filter(|t| *t > 0),
    }
}

/// Runs until cancelled (Ok) or until the node fails (Err, then reconnect).
async fn session(
    ctx: &NodeContext,
    node_id: i64,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
    reported: &mut Option<(String, Option<String>)>,
) -> Result<(), SessionError> {
    let mut node = match ctx.store.node(node_id).await {
        Err(StoreError::NotFound) => return Ok(()),
        other => other?,
    };
    if node.certificate_fingerprint.is_none() {
        let health = NodeHealth {
            status: "connecting",
            message: Some("waiting for enrollment".into()),
            ..Default::default()
        };
        report(ctx, node_id, health, reported).await;
    }
    // Token enrollment restarts this task; an offline bundle is written to
    // the database by another process, so look again now and then.
    while node.certificate_fingerprint.is_none() {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(ctx.interval) => {}
        }
        node = match ctx.store.node(node_id).await {
            Err(StoreError::NotFound) => return Ok(()),
            other => other?,
        };
    }
    let (mut agent, pin) = client::connect(&ctx.pki, &node).await?;
    if pin == Pin::Next {
        // A rotation finished on the node but not here: its new
        // certificate is the one to trust from now on.
        let next = node
            .next_certificate_fingerprint
            .as_deref()
            .unwrap_or_default();
        ctx.store
            .promote_next_node_certificate(node_id, next)
            .await?;
        tracing::info!(
            node = node_id,
            fingerprint = next,
            "node serves its rotated certificate"
        );
    }
    let mut health = agent.health(HealthRequest {}).await?.into_inner();
    backoff.reset();
    tracing::info!(node = node_id, agent = %health.agent_version, "connected to node");
    let mut rotation = RotationSchedule::new(node.certificate_not_after);
    rotation
        .run_if_due(ctx, &mut agent, node_id, node.rotation_requested_at)
        .await;
    let mut restarts = health.core.as_ref().map_or(0, |c| c.restarts);
    // Record versions now, so they show even if the first apply fails.
    report(
        ctx,
        node_id,
        core_health(health.core.as_ref(), &health.agent_version),
        reported,
    )
    .await;
    // Entries committed before a crash but never acknowledged can go now.
    if node.usage_sequence > 0 {
        agent
            .ack_usage(AckUsageRequest {
                sequence: node.usage_sequence as u64,
            })
            .await?;
    }

    let mut mirror: Option<Mirror> = None;
    let mut changed = ctx.changed.clone();
    loop {
        let in_sync = mirror
            .as_ref()
            .is_some_and(|m| m.revision as u64 == health.revision && m.digest() == health.digest);
        if !in_sync {
            mirror = Some(resync(ctx, node_id, &mut agent, &health).await?);
        }
        let node = collect_usage(ctx, &mut agent, node_id).await?;
        let m = mirror.as_mut().expect("set above");
        let core = apply_changes(ctx, node_id, &mut agent, m).await?;
        ctx.metrics.applied(node_id, m.revision);
        let core = core.or(health.core.clone());
        if let Some(c) = core.as_ref().filter(|c| c.restarts > restarts) {
            tracing::warn!(
                node = node_id,
                restarts = c.restarts,
                last_error = %c.last_error,
                "the node's core restarted"
            );
            restarts = c.restarts;
        }
        report(
            ctx,
            node_id,
            core_health(core.as_ref(), &health.agent_version),
            reported,
        )
        .await;

        // Checked on every tick, not only on connect: a connection can
        // outlive the rest of a certificate's life, and a rotation can be
        // requested through the database at any time.
        rotation
            .run_if_due(ctx, &mut agent, node_id, node.rotation_requested_at)
            .await;

        tokio::select! {
            _ = cancel.cancelled() => {
                // Usage journaled since the last pass is committed now, not
                // after the next start.
                collect_usage(ctx, &mut agent, node_id).await?;
                return Ok(());
            }
            _ = changed.changed() => {}
            _ = tokio::time::sleep(ctx.interval) => {}
        }
        health = agent.health(HealthRequest {}).await?.into_inner();
    }
}

/// The full desired state of the node now.
async fn desired(ctx: &NodeContext, node_id: i64) -> Result<Mirror, SessionError> {
    let (core_config, config_revision) = ctx
        .store
        .node_core_config(node_id)
        .await?
        .unwrap_or_default();
    let inbounds = parse_inbounds(&core_config)?;
    let (revision, users) = ctx.store.served_users().await?;
    let users = users
        .iter()
        .filter_map(|u| served_spec(u, &inbounds))
        .collect();
    Ok(Mirror {
        revision,
        config_revision,
        core_config,
        users,
    })
}

/// Brings an agent whose state is unknown or drifted to the desired state:
/// nothing if its digest already matches, a full snapshot otherwise.
async fn resync(
    ctx: &NodeContext,
    node_id: i64,
    agent: &mut Agent,
    health: &HealthResponse,
) -> Result<Mirror, SessionError> {
    let want = desired(ctx, node_id).await?;
    if want.digest() == health.digest {
        if health.revision != want.revision as u64 {
            agent
                .apply_changes(ChangeSet {
                    base_revision: health.revision,
                    revision: want.revision as u64,
                    ..Default::default()
                })
                .await?;
        }
        return Ok(want);
    }
    snapshot(agent, want).await
}

async fn snapshot(agent: &mut Agent, want: Mirror) -> Result<Mirror, SessionError> {
    let response = agent
        .apply_snapshot(Snapshot {
            revision: want.revision as u64,
            core_config_json: want.core_config.clone(),
            users: want.users.values().cloned().collect(),
        })
        .await?
        .into_inner();
    if response.digest != want.digest() {
        tracing::warn!(
            revision = want.revision,
            "agent reports a different digest after a snapshot"
        );
    }
    Ok(want)
}

/// Sends what changed since the mirror's revision. A changed core config or
/// a refused change set falls back to a snapshot.
async fn apply_changes(
    ctx: &NodeContext,
    node_id: i64,
    agent: &mut Agent,
    mirror: &mut Mirror,
) -> Result<Option<CoreStatus>, SessionError> {
    let (_, config_revision) = ctx
        .store
        .node_core_config(node_id)
        .await?
        .unwrap_or_default();
    if config_revision != mirror.config_revision {
        *mirror = snapshot(agent, desired(ctx, node_id).await?).await?;
        return Ok(None);
    }
    let changes = ctx.store.user_changes_since(mirror.revision).await?;
    if changes.revision == mirror.revision {
        return Ok(None);
    }
    let inbounds = parse_inbounds(&mirror.core_config)?;
    // What differs from the mirror, found without copying it: a node with
    // 100,000 users pays for the users that changed.
    let mut upserts: Vec<UserSpec> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for user in &changes.changed {
        let email = user.email();
        match user_spec(user, &inbounds) {
            Some(spec) => {
                if mirror.users.get(&email) != Some(&spec) {
                    upserts.push(spec);
                }
            }
            None => {
                if mirror.users.contains(&email) && gone.insert(email.clone()) {
                    removed.push(email);
                }
            }
        }
    }
    for email in changes.deleted_emails {
        if mirror.users.contains(&email) && gone.insert(email.clone()) {
            removed.push(email);
        }
    }
    let result = agent
        .apply_changes(ChangeSet {
            base_revision: mirror.revision as u64,
            revision: changes.revision as u64,
            upserts: upserts.clone(),
            removed_emails: removed.clone(),
        })
        .await;
    let response = match result {
        Ok(r) => r.into_inner(),
        Err(status) if status.code() == Code::FailedPrecondition => {
            *mirror = snapshot(agent, desired(ctx, node_id).await?).await?;
            return Ok(None);
        }
        Err(status) => return Err(status.into()),
    };
    // The agent applies upserts first, then removals; so does the mirror.
    mirror.revision = changes.revision;
    for spec in upserts {
        mirror.users.insert(spec);
    }
    for email in &removed {
        mirror.users.remove(email);
    }
    if response.digest != mirror.digest() {
        tracing::warn!(
            revision = changes.revision,
            "digest mismatch after changes; resending snapshot"
        );
        *mirror = snapshot(agent, desired(ctx, node_id).await?).await?;
        return Ok(response.core);
    }
    Ok(response.core)
}

/// Commits the agent's journal entries after the node's stored sequence, then
/// acknowledges them. The sequence is stored in the usage's own transaction,
/// so a crash between commit and acknowledgement re-delivers entries that
/// the next collection skips: nothing is lost or counted twice. Returns the
/// node's row as read after the last commit, for the rest of the pass.
async fn collect_usage(
    ctx: &NodeContext,
    agent: &mut Agent,
    node_id: i64,
) -> Result<Node, SessionError> {
    loop {
        let node = ctx.store.node(node_id).await?;
        let response = agent
            .collect_usage(CollectUsageRequest {
                after_sequence: node.usage_sequence as u64,
                max_entries: 0,
                // Counters as of now, not of the agent's last reading: a user
                // over quota is cut off within one collection interval.
                read_counters: true,
            })
            .await?
            .into_inner();
        let Some(last) = response.entries.last().map(|e| e.sequence) else {
            if response.last_sequence < node.usage_sequence as u64 {
                tracing::warn!(
                    node = node_id,
                    agent = response.last_sequence,
                    committed = node.usage_sequence,
                    "agent journal is behind the committed sequence (agent state reset?)"
                );
            }
            return Ok(node);
        };
        let mut per_user: BTreeMap<i64, UserUsageDelta> = BTreeMap::new();
        let mut deltas = Vec::new();
        for entry in &response.entries {
            per_user.clear();
            for u in &entry.users {
                let Some(user_id) = user_id_from_email(&u.email) else {
                    continue;
                };
                let d = per_user.entry(user_id).or_insert(UserUsageDelta {
                    user_id,
                    uplink: 0,
                    downlink: 0,
                    recorded_at: entry.recorded_at,
                });
                d.uplink += u.uplink.max(0);
                d.downlink += u.downlink.max(0);
            }
            deltas.extend(per_user.values().cloned());
        }
        let batch = UsageBatch {
            node_id,
            after_sequence: node.usage_sequence,
            last_sequence: last as i64,
            coefficient: node.usage_coefficient,
            deltas,
        };
        let oldest = response.entries.iter().map(|e| e.recorded_at).min();
        let started = std::time::Instant::now();
        match ctx.store.apply_usage(&batch).await {
            Ok(applied) => {
                let m = &ctx.metrics;
                m.usage_commit.observe(started.elapsed().as_secs_f64());
                m.usage_batch_users.observe(batch.deltas.len() as f64);
                if let Some(oldest) = oldest {
                    m.usage_ingest_lag
                        .observe((crate::store::now() - oldest).max(0) as f64);
                }
                if !applied.status_changed.is_empty() {
                    tracing::info!(node = node_id, users = ?applied.status_changed, "usage changed user status");
                    // Every node drops a user who ran out of quota here, in
                    // its next pass (this one's comes right after).
                    ctx.wake_all();
                }
            }
            // Someone else committed these entries first; re-read and go on.
            Err(StoreError::Conflict(reason)) => {
                tracing::warn!(node = node_id, %reason, "usage batch skipped");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        agent.ack_usage(AckUsageRequest { sequence: last }).await?;
        if response.last_sequence <= last {
            return Ok(ctx.store.node(node_id).await?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::new();
        let mut base = Backoff::FIRST;
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(
                delay >= base / 2 && delay <= base,
                "{delay:?} outside [{:?}, {base:?}]",
                base / 2
            );
            base = (base * 2).min(Backoff::MAX);
        }
        assert_eq!(base, Backoff::MAX, "the cap is reached");
        backoff.reset();
        assert!(backoff.next_delay() <= Backoff::FIRST);
    }
}
