//! The node's state machine: makes the core match the desired state the
//! control plane sends, keeps it running, and journals its usage.
//!
//! All changes to the core go through one async lock, so an apply, a usage
//! reading and a restart never interleave. Status reads do not take it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nexpoint_proto::agent::{
    ApplyResponse, ChangeSet, CollectUsageResponse, CoreStatus, HealthResponse, UserSpec,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::applied_state::{AppliedState, StateFileError};
use crate::core_api::{CoreApi, CoreApiError};
use crate::core_config::{ConfigError, Template};
use crate::core_kind::CoreKind;
use crate::core_logs::CoreLogs;
use crate::core_process::RunExit;
use crate::core_supervisor::{
    CoreError, CoreSettings, CoreSupervisor, free_loopback_port, test_written_config, write_config,
};
use crate::encoded_users::EncodedUsers;
use crate::inbound_users::{UserChange, diff};
use crate::orphan_core;
use crate::rendered_config::RenderedConfig;
use crate::state_dir::StateDir;
use crate::usage_journal::{JournalError, Reading, UsageJournal};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Restart delays after the core died: `initial`, doubling up to `max`; back
/// to `initial` once a run lasted `stable_after`.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub state_dir: StateDir,
    pub core: CoreSettings,
    pub backoff: Backoff,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    State(#[from] StateFileError),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Template(#[from] ConfigError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("base revision {got} is not the applied revision {applied}")]
    RevisionMismatch { applied: u64, got: u64 },
    #[error("no snapshot has been applied yet")]
    NoSnapshot,
    #[error("no free loopback port for the core API: {0}")]
    Port(std::io::Error),
    #[error(transparent)]
    Persist(#[from] StateFileError),
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Api(#[from] CoreApiError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

struct Inner {
    applied: Option<AppliedState>,
    core: CoreSupervisor,
}

#[derive(Default)]
struct Published {
    revision: u64,
    digest: String,
    core: CoreStatus,
    exit: Option<watch::Receiver<Option<RunExit>>>,
}

pub struct Node {
    state_dir: StateDir,
    inner: tokio::sync::Mutex<Inner>,
    config_tests: tokio::sync::Mutex<()>,
    journal: UsageJournal,
    logs: CoreLogs,
    published: Mutex<Published>,
    retry: mpsc::UnboundedSender<()>,
    cancel: CancellationToken,
}

impl Node {
    /// Opens the state directory and restores the last applied state: the
    /// core runs again without any control plane.
    pub async fn start(settings: NodeSettings) -> Result<Arc<Self>, NodeError> {
        let state_dir = settings.state_dir.clone();
        state_dir.create().map_err(|source| NodeError::StateDir {
            path: state_dir.root().display().to_string(),
            source,
        })?;
        let journal = UsageJournal::open(state_dir.usage_journal())?;
        let applied = AppliedState::load(&state_dir.applied_state())?;
        let logs = CoreLogs::default();
        let (exit_tx, exit_rx) = mpsc::unbounded_channel();
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        let core = CoreSupervisor::new(settings.core, state_dir.clone(), logs.clone(), exit_tx);
        let node = Arc::new(Self {
            state_dir,
            inner: tokio::sync::Mutex::new(Inner { applied, core }),
            config_tests: tokio::sync::Mutex::new(()),
            journal,
            logs,
            published: Mutex::new(Published::default()),
            retry: retry_tx,
            cancel: CancellationToken::new(),
        });
        tokio::spawn(watchdog(
            Arc::downgrade(&node),
            exit_rx,
            retry_rx,
            node.cancel.clone(),
            settings.backoff,
        ));

        let mut inner = node.inner.lock().await;
        let kind = inner.core.identify().await.ok().map(|i| i.kind);
        let mut adopted = false;
        if let Some(record) =
            orphan_core::find(&node.state_dir.core_run(), &node.state_dir.core_config())
        {
            // Without the applied state nobody knows what the core serves.
            if inner.applied.is_some() {
                match inner.core.adopt(&record).await {
                    Ok(()) => adopted = true,
                    Err(e) => tracing::warn!(error = %e, "cannot adopt the core left running"),
                }
            }
            if !adopted {
                orphan_core::journal_and_stop(
                    record,
                    &node.state_dir.core_run(),
                    kind,
                    &node.journal,
                    inner.core.settings().stop_timeout,
                )
                .await;
            }
        }
        if adopted {
            // It serves what was applied, or a change more if the agent
            // died between making a live change and saving it: the control
            // plane then resends that change, and adding a user that is
            // there (or removing one that is not) counts as done.
        } else if let Some(state) = &inner.applied {
            tracing::info!(
                revision = state.revision,
                users = state.users.len(),
                "restoring the applied state"
            );
            if let Err(e) = node.start_applied(&mut inner).await {
                tracing::warn!(error = %e, "core did not start from the saved state; retrying");
                let _ = node.retry.send(());
            }
        }
        node.publish(&inner);
        drop(inner);
        Ok(node)
    }

    pub fn logs(&self) -> &CoreLogs {
        &self.logs
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.state_dir
    }

    /// Makes `snapshot` (a `Snapshot`, or one decoded as the state it
    /// describes) the applied state.
    pub async fn apply_snapshot(
        &self,
        snapshot: impl Into<AppliedState>,
    ) -> Result<ApplyResponse, ApplyError> {
        let next = snapshot.into();
        let mut inner = self.inner.lock().await;
        let result = self.converge(&mut inner, next).await;
        self.publish(&inner);
        result.map(|()| self.response())
    }

    /// FAILED_PRECONDITION-style refusal unless `base_revision` is what is applied.
    ///
    /// The usual case costs what changed: the live operations come from the
    /// touched users alone, the applied state changes in place, and the
    /// change is appended to the state's log. Only a change the core cannot
    /// take live (or a live change that failed) renders the full config.
    pub async fn apply_changes(&self, changes: ChangeSet) -> Result<ApplyResponse, ApplyError> {
        let mut inner = self.inner.lock().await;
        let applied = inner.applied.as_ref().ok_or(ApplyError::NoSnapshot)?;
        if changes.base_revision != applied.revision {
            return Err(ApplyError::RevisionMismatch {
                applied: applied.revision,
                got: changes.base_revision,
            });
        }
        let result = match self.change_live(&mut inner, &changes).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                let applied = inner.applied.as_ref().expect("checked above");
                let next = applied.with_changes(
                    changes.revision,
                    &changes.upserts,
                    &changes.removed_emails,
                );
                self.converge(&mut inner, next).await
            }
            Err(e) => Err(e),
        };
        self.publish(&inner);
        result.map(|()| self.response())
    }

    /// Applies a change set through the core's API when it can; `false`
    /// when the core must restart with the full config instead.
    async fn change_live(
        &self,
        inner: &mut Inner,
        changes: &ChangeSet,
    ) -> Result<bool, ApplyError> {
        if !inner.core.is_running() {
            return Ok(false);
        }
        let applied = inner.applied.as_ref().ok_or(ApplyError::NoSnapshot)?;
        let template = Template::parse(&applied.core_config_json)?;
        let kind = inner.core.identify().await?.kind;
        let removed: BTreeSet<&str> = changes.removed_emails.iter().map(String::as_str).collect();
        let after: Vec<UserSpec> = changes
            .upserts
            .iter()
            .filter(|u| !removed.contains(u.email.as_str()))
            .cloned()
            .collect();
        let user_changes = diff(
            &template.clients(&applied.touched_by(changes)),
            &template.clients(&after),
        );
        let live = user_changes.iter().all(|change| {
            template
                .inbounds
                .iter()
                .find(|i| i.tag == change.tag())
                .is_none_or(|i| i.users_change_live(kind))
        });
        if !live {
            // V2Ray 4.x shadowsocks inbounds are single-user and not a
            // UserManager: their user is part of the config itself.
            tracing::info!("users of a V2Ray shadowsocks inbound changed; restarting the core");
            return Ok(false);
        }
        if let Err(e) = self.change_users_live(inner, &user_changes).await {
            tracing::warn!(error = %e, "live user change failed; restarting the core with the full config");
            return Ok(false);
        }
        let applied = inner.applied.as_mut().expect("checked above");
        applied.apply(changes.revision, &changes.upserts, &changes.removed_emails);
        // Memory follows the core even if the disk did not take it: the
        // control plane sees the error and resends.
        applied.save_changes(&self.state_dir.applied_state(), changes)?;
        Ok(true)
    }

    async fn converge(&self, inner: &mut Inner, next: AppliedState) -> Result<(), ApplyError> {
        let template = Template::parse(&next.core_config_json)?;
        let kind = inner.core.identify().await?.kind;
        let same_template = inner
            .applied
            .as_ref()
            .is_some_and(|a| a.core_config_json == next.core_config_json);

        if same_template && inner.core.is_running() {
            let applied = inner
                .applied
                .as_ref()
                .expect("same_template implies applied");
            // Only the users that differ are decoded and diffed.
            let (before, after) = next.users.changed_since(&applied.users);
            let changes = diff(&template.clients(&before), &template.clients(&after));
            let live = changes.iter().all(|change| {
                template
                    .inbounds
                    .iter()
                    .find(|i| i.tag == change.tag())
                    .is_none_or(|i| i.users_change_live(kind))
            });
            if live {
                match self.change_users_live(inner, &changes).await {
                    Ok(()) => return self.accept(inner, next),
                    Err(e) => {
                        tracing::warn!(error = %e, "live user change failed; restarting the core with the full config")
                    }
                }
            } else {
                // V2Ray 4.x shadowsocks inbounds are single-user and not a
                // UserManager: their user is part of the config itself.
                tracing::info!("users of a V2Ray shadowsocks inbound changed; restarting the core");
            }
        }
        self.restart_with(inner, &template, next, same_template)
            .await
    }

    async fn change_users_live(
        &self,
        inner: &Inner,
        changes: &[UserChange],
    ) -> Result<(), CoreApiError> {
        let Some(live) = inner.core.live() else {
            return Ok(());
        };
        for change in changes {
            match change {
                UserChange::Add {
                    tag,
                    email,
                    credential,
                } => live.api.add_user(tag, email, credential).await?,
                UserChange::Remove { tag, email } => live.api.remove_user(tag, email).await?,
            }
        }
        if !changes.is_empty() {
            tracing::info!(changes = changes.len(), "users changed live");
        }
        Ok(())
    }

    /// Validates the new config with the core itself, then replaces the run.
    async fn restart_with(
        &self,
        inner: &mut Inner,
        template: &Template,
        next: AppliedState,
        same_template: bool,
    ) -> Result<(), ApplyError> {
        let kind = inner.core.identify().await?.kind;
        let (config, port) = render_with_users(template, &next.users, kind)?;
        // A config the core rejects never replaces a running one.
        inner.core.validate(&config).await?;
        self.flush_usage(inner).await;
        inner.core.stop().await;
        match inner.core.start(&config, port).await {
            Ok(()) => {
                inner.core.last_error.clear();
                self.accept(inner, next)
            }
            Err(e) if same_template || inner.applied.is_none() => {
                // Not caused by this change (the template the core ran before
                // is the same): keep the new state and retry in the background.
                tracing::warn!(error = %e, "core did not start; accepting the state and retrying");
                let _ = self.retry.send(());
                self.accept(inner, next)
            }
            Err(e) => {
                tracing::warn!(error = %e, "core did not start with the new config; restoring the previous one");
                if let Err(restore) = self.start_applied(inner).await {
                    tracing::warn!(error = %restore, "previous config did not start either; retrying");
                    let _ = self.retry.send(());
                }
                inner.core.last_error = e.line();
                Err(e.into())
            }
        }
    }

    fn accept(&self, inner: &mut Inner, next: AppliedState) -> Result<(), ApplyError> {
        let result = next.save(&self.state_dir.applied_state());
        // Memory follows the core even if the disk did not take it: the
        // control plane will see the error and resend.
        inner.applied = Some(next);
        result.map_err(Into::into)
    }

    /// Renders `template_json` exactly as an apply would (the applied users,
    /// API inbound, stats, policy) and has the core check it, without
    /// touching the running core, the applied state or the core's status.
    /// `Ok(Err(line))` is a refusal: the template's parse error, the core's
    /// own line, or why the core binary cannot be run.
    pub async fn test_core_config(
        &self,
        template_json: &str,
    ) -> Result<Result<(), String>, ApplyError> {
        let template = match Template::parse(template_json) {
            Ok(template) => template,
            Err(e) => return Ok(Err(e.to_string())),
        };
        // One check at a time: they share the file the core reads.
        let _serial = self.config_tests.lock().await;
        let (bin, known_kind) = {
            let inner = self.inner.lock().await;
            (inner.core.settings().bin.clone(), inner.core.kind())
        };
        let kind = match known_kind {
            Some(kind) => kind,
            // Not cached through the supervisor: a check must not change
            // what GetCoreStatus reports.
            None => match crate::core_kind::detect(&bin).await {
                Ok(identity) => identity.kind,
                Err(e) => return Ok(Err(e.to_string())),
            },
        };
        let path = self.state_dir.tested_core_config();
        {
            // Written under the lock, which keeps the applied users as they
            // are while they stream out; the core's check runs without it.
            let inner = self.inner.lock().await;
            let none = EncodedUsers::default();
            let users = inner.applied.as_ref().map_or(&none, |a| &a.users);
            let (config, _port) = render_with_users(&template, users, kind)?;
            write_config(&path, &config)?;
        }
        match test_written_config(&bin, kind, &path).await {
            Ok(()) => Ok(Ok(())),
            Err(CoreError::Rejected(line) | CoreError::Unusable(line)) => Ok(Err(line)),
            Err(e) => Err(e.into()),
        }
    }

    /// (Re)starts the core from the applied state.
    async fn start_applied(&self, inner: &mut Inner) -> Result<(), ApplyError> {
        let Some(state) = &inner.applied else {
            return Ok(());
        };
        let template = Template::parse(&state.core_config_json)?;
        let kind = inner.core.identify().await?.kind;
        // The config streams from the applied users while the core's
        // half of `inner` writes it.
        let Inner {
            applied: Some(state),
            core,
        } = inner
        else {
            unreachable!("checked above");
        };
        let (config, port) = render_with_users(&template, &state.users, kind)?;
        core.start(&config, port).await?;
        Ok(())
    }

    /// Reads the core's counters into the journal.
    pub async fn record_usage(&self) -> Result<Option<u64>, UsageError> {
        let inner = self.inner.lock().await;
        self.record_usage_locked(&inner).await
    }

    async fn record_usage_locked(&self, inner: &Inner) -> Result<Option<u64>, UsageError> {
        let Some(live) = inner.core.live() else {
            return Ok(None);
        };
        let uptime = live.api.uptime().await?;
        let counters = live.api.user_counters().await?;
        let sequence = self.journal.record(Reading {
            core_run: &live.run.instance,
            uptime,
            counters: &counters,
            recorded_at: crate::core_logs::now_ms() / 1000,
        })?;
        Ok(sequence)
    }

    /// The last reading before the agent itself stops or restarts the core.
    async fn flush_usage(&self, inner: &Inner) {
        if let Err(e) = self.record_usage_locked(inner).await {
            tracing::warn!(error = %e, "could not read usage before stopping the core");
        }
    }

    pub fn collect_usage(&self, after_sequence: u64, max_entries: u32) -> CollectUsageResponse {
        let (entries, last_sequence) = self.journal.collect(after_sequence, max_entries as usize);
        CollectUsageResponse {
            entries,
            last_sequence,
        }
    }

    /// Journal entries the control plane has not acknowledged yet.
    pub fn journal_depth(&self) -> usize {
        self.journal.depth()
    }

    pub fn ack_usage(&self, sequence: u64) -> Result<(), JournalError> {
        self.journal.ack(sequence)
    }

    pub fn core_status(&self) -> CoreStatus {
        let published = self.published.lock().expect("published poisoned");
        let mut status = published.core.clone();
        // The run may have died since the last publish.
        if let Some(exit) = published.exit.as_ref().and_then(|w| w.borrow().clone()) {
            status.running = false;
            status.started_at = 0;
            status.last_error = exit.describe();
        }
        status
    }

    pub fn health(&self) -> HealthResponse {
        let (revision, digest) = {
            let published = self.published.lock().expect("published poisoned");
            (published.revision, published.digest.clone())
        };
        HealthResponse {
            agent_version: AGENT_VERSION.into(),
            revision,
            digest,
            core: Some(self.core_status()),
            last_sequence: self.journal.last_sequence(),
        }
    }

    fn response(&self) -> ApplyResponse {
        let health = self.health();
        ApplyResponse {
            revision: health.revision,
            digest: health.digest,
            core: health.core,
        }
    }

    fn publish(&self, inner: &Inner) {
        let mut published = self.published.lock().expect("published poisoned");
        published.revision = inner
            .applied
            .as_ref()
            .map(|a| a.revision)
            .unwrap_or_default();
        published.digest = inner
            .applied
            .as_ref()
            .map(AppliedState::digest)
            .unwrap_or_default();
        published.core = inner.core.status();
        published.exit = inner.core.exit_watch();
    }

    /// The running core's pid and API client (for diagnostics and tests).
    pub async fn core_process(&self) -> Option<(u32, CoreApi)> {
        let inner = self.inner.lock().await;
        inner.core.live().map(|l| (l.run.pid, l.api.clone()))
    }

    /// Reads usage on an interval until shutdown.
    pub fn spawn_usage_loop(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let node = Arc::downgrade(self);
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let Some(node) = node.upgrade() else { return };
                match node.record_usage().await {
                    Ok(Some(sequence)) => tracing::debug!(sequence, "usage recorded"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "usage reading failed"),
                }
            }
        })
    }

    /// Stops background work, reads usage one last time and stops the core.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let mut inner = self.inner.lock().await;
        self.flush_usage(&inner).await;
        inner.core.stop().await;
        self.publish(&inner);
    }
}

/// The full config for `users` with a fresh API port (not one of the
/// template's inbound ports): what the core runs, or checks.
fn render_with_users<'a>(
    template: &'a Template,
    users: &'a EncodedUsers,
    kind: CoreKind,
) -> Result<(RenderedConfig<'a>, u16), ApplyError> {
    let port = free_loopback_port(&template.inbound_ports()).map_err(ApplyError::Port)?;
    Ok((template.render(users, kind, port), port))
}

/// Restarts the core after it died (or failed to start), with backoff.
async fn watchdog(
    node: Weak<Node>,
    mut exits: mpsc::UnboundedReceiver<u64>,
    mut retries: mpsc::UnboundedReceiver<()>,
    cancel: CancellationToken,
    policy: Backoff,
) {
    let mut delay = policy.initial;
    loop {
        let restart = tokio::select! {
            _ = cancel.cancelled() => return,
            Some(generation) = exits.recv() => {
                let Some(node) = node.upgrade() else { return };
                let mut inner = node.inner.lock().await;
                let died = inner.core.on_exit(generation);
                if died.is_some_and(|ran| ran >= policy.stable_after) {
                    delay = policy.initial;
                }
                node.publish(&inner);
                died.is_some()
            }
            Some(()) = retries.recv() => true,
            else => return,
        };
        if !restart {
            continue;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(policy.max);
            let Some(node) = node.upgrade() else { return };
            let mut inner = node.inner.lock().await;
            if cancel.is_cancelled() {
                return;
            }
            if inner.core.is_running() || inner.applied.is_none() {
                break;
            }
            inner.core.restarts += 1;
            let result = node.start_applied(&mut inner).await;
            node.publish(&inner);
            match result {
                Ok(()) => {
                    tracing::info!(restarts = inner.core.restarts, "core restarted");
                    break;
                }
                Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "core restart failed"),
            }
        }
    }
}
