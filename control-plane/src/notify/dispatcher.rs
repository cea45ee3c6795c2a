//! Runs one delivery task per destination: each reads the outbox after its
//! cursor, delivers in order, and advances the cursor only after success;
//! a failure waits (exponential backoff with jitter, persisted with the
//! cursor) and retries the same batch, without holding up the others.
//! Tasks wake when this process commits notifications and, for writes by
//! other processes, every [`POLL`].

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::destination::{Clients, Destination};
use super::{DeliveryError, NotifySettings};
use crate::store::{Store, StoreError, now};

/// The longest wait for news when this process committed none.
const POLL: Duration = Duration::from_secs(5);
/// How often admins' own chats are looked up again, at the latest.
const ADMIN_REFRESH: Duration = Duration::from_secs(30);
/// An admin's chat found now also gets this much of the past: it was set
/// at most [`ADMIN_REFRESH`] ago, and what its users did since is its.
const ADMIN_LOOKBACK_SECS: i64 = 2 * ADMIN_REFRESH.as_secs() as i64;
/// After a database error.
const DB_RETRY: Duration = Duration::from_secs(1);

/// The delivery tasks and what they need.
pub struct Dispatcher {
    store: Store,
    settings: NotifySettings,
    clients: Clients,
    configured: Vec<Destination>,
}

impl Dispatcher {
    /// Creates the cursors of the configured destinations now, before the
    /// API serves: a new destination starts at the newest notification,
    /// so everything after this point reaches it.
    pub async fn prepare(store: Store, settings: NotifySettings) -> anyhow::Result<Self> {
        let clients = Clients::new(&settings)?;
        let configured = Destination::configured(&settings);
        for d in &configured {
            store.ensure_destination(&d.key).await?;
        }
        Ok(Self {
            store,
            settings,
            clients,
            configured,
        })
    }

    /// The keys of the destinations whose cursors bound pruning.
    pub fn configured_keys(&self) -> Vec<String> {
        self.configured.iter().map(|d| d.key.clone()).collect()
    }

    /// Runs until `cancel`: the configured destinations, and the admins'
    /// own chats as they come and go.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tasks = JoinSet::new();
        for d in self.configured.clone() {
            tasks.spawn(deliver_loop(
                self.store.clone(),
                self.clients.clone(),
                self.settings.backoff,
                d,
                cancel.clone(),
            ));
        }
        let mut admin_tasks: BTreeMap<String, CancellationToken> = BTreeMap::new();
        let mut changes = self.store.outbox_changes();
        loop {
            changes.borrow_and_update();
            match self.admin_destinations().await {
                Ok(wanted) => {
                    admin_tasks.retain(|key, token| {
                        let keep = wanted.iter().any(|d| &d.key == key);
                        if !keep {
                            token.cancel();
                        }
                        keep
                    });
                    for d in wanted {
                        if admin_tasks.contains_key(&d.key) {
                            continue;
                        }
                        let since = now() - ADMIN_LOOKBACK_SECS;
                        if let Err(e) = self.store.ensure_destination_since(&d.key, since).await {
                            tracing::warn!(destination = %d.key, error = %e,
                                "cannot start an admin's notification chat");
                            continue;
                        }
                        let token = cancel.child_token();
                        admin_tasks.insert(d.key.clone(), token.clone());
                        tasks.spawn(deliver_loop(
                            self.store.clone(),
                            self.clients.clone(),
                            self.settings.backoff,
                            d,
                            token,
                        ));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list admins' notification chats"),
            }
            // A notification may concern an admin whose chat was just set:
            // look again on news too (at most once a second).
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(ADMIN_REFRESH) => {}
                _ = changes.changed() => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn admin_destinations(&self) -> Result<Vec<Destination>, StoreError> {
        let contacts = self.store.admin_contacts().await?;
        Ok(contacts
            .into_iter()
            .flat_map(|(id, contact)| {
                Destination::of_admin(
                    &self.settings,
                    id,
                    contact.telegram_id,
                    contact.discord_webhook.as_deref(),
                )
            })
            .collect())
    }
}

/// What one step of a destination's loop decided.
enum Next {
    /// Look again at once.
    Continue,
    /// Wait for news (or the poll interval).
    Idle,
    /// Wait this long (backoff, or after a database error).
    Sleep(Duration),
}

async fn deliver_loop(
    store: Store,
    clients: Clients,
    backoff: super::backoff::Backoff,
    destination: Destination,
    cancel: CancellationToken,
) {
    let mut changes: watch::Receiver<u64> = store.outbox_changes();
    loop {
        // Marked before reading: a commit after this wakes the wait below.
        changes.borrow_and_update();
        let next = match step(&store, &clients, backoff, &destination).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(destination = %destination.key, error = %e,
                    "notification outbox unreadable; retrying");
                Next::Sleep(DB_RETRY)
            }
        };
        let wait = match next {
            Next::Continue => continue,
            Next::Idle => POLL,
            Next::Sleep(d) => d,
        };
        let wake_on_news = matches!(next, Next::Idle);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = changes.changed(), if wake_on_news => {}
        }
    }
}

/// Delivers the next batch after the cursor, if any and if due.
async fn step(
    store: &Store,
    clients: &Clients,
    backoff: super::backoff::Backoff,
    destination: &Destination,
) -> Result<Next, StoreError> {
    let state = store.ensure_destination(&destination.key).await?;
    let now_s = now();
    if state.next_attempt_at > now_s {
        return Ok(Next::Sleep(Duration::from_secs(
            (state.next_attempt_at - now_s) as u64,
        )));
    }
    let rows = store
        .notifications_after(state.last_id, destination.admin_id, destination.batch())
        .await?;
    let Some(last) = rows.last().map(|n| n.id) else {
        return Ok(Next::Idle);
    };
    let batch: Vec<_> = rows
        .iter()
        .filter(|n| destination.accepts(n.action))
        .collect();
    if batch.is_empty() {
        store.record_delivered(&destination.key, last).await?;
        return Ok(Next::Continue);
    }
    let tries = state.attempts + 1;
    match destination.deliver(clients, &batch, tries).await {
        Ok(()) => {
            store.record_delivered(&destination.key, last).await?;
            Ok(Next::Continue)
        }
        Err(DeliveryError::Rejected(message)) => {
            tracing::warn!(destination = %destination.key, first = batch[0].id, last,
                error = %message, "notification refused by its receiver; skipped");
            store.record_delivered(&destination.key, last).await?;
            Ok(Next::Continue)
        }
        Err(DeliveryError::Retry { message, after }) => {
            let delay = backoff.random_delay(tries).max(after.unwrap_or_default());
            // Whole seconds in the database; at least one, so a failing
            // receiver is never hammered.
            let retry_at = now() + delay.as_secs().max(1) as i64;
            tracing::warn!(destination = %destination.key, tries, error = %message,
                retry_in = ?delay, "notification delivery failed; will retry");
            store
                .record_failure(&destination.key, &message, retry_at)
                .await?;
            Ok(Next::Sleep(delay.max(Duration::from_secs(1))))
        }
    }
}
