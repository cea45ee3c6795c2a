//! `nexpoint serve`: wires the store, the PKI, the node tasks and the HTTP
//! server, and shuts them down in order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, JwtKeys, hash_password};
use crate::config::ServeArgs;
use crate::domain::AutoDeletePolicy;
use crate::domain::inbounds::DEFAULT_CORE_CONFIG;
use crate::jobs::periodic::{self, JobSettings};
use crate::jobs::scheduler::{self, JobRegistry};
use crate::jobs::usage_retention::RetentionPolicy;
use crate::jobs::{lifecycle_clock, usage_history};
use crate::local_node::LocalNode;
use crate::metrics::Metrics;
use crate::nodes::NodeManager;
use crate::notify::dispatcher::Dispatcher;
use crate::pki::Pki;
use crate::store::{NewAdmin, Store, StoreError};
use nexpoint_config::sd_notify;

fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The key subscription tokens are signed with, made by whichever comes
/// first: `serve`, or a CLI command that renders subscription URLs.
pub(crate) async fn subscription_secret(store: &Store) -> Result<String, StoreError> {
    store
        .setting_or_insert("subscription_secret", random_secret)
        .await
}

/// The sudo admin named by NEXPOINT_SUDO_USERNAME/PASSWORD, created or given
/// that password at every start (the environment is the source of truth).
pub(crate) async fn ensure_env_sudo_admin(store: &Store) -> anyhow::Result<()> {
    let (Ok(username), Some(password)) = (
        std::env::var("NEXPOINT_SUDO_USERNAME"),
        nexpoint_config::env_secret("NEXPOINT_SUDO_PASSWORD")?,
    ) else {
        return Ok(());
    };
    crate::domain::validate::username(&username)
        .map_err(|m| anyhow::anyhow!("NEXPOINT_SUDO_USERNAME: {m}"))?;
    if let Some(existing) = store.admin_by_username(&username).await? {
        if !crate::api::verify_password(&password, &existing.hashed_password) || !existing.is_sudo {
            let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            store.set_admin_password(&username, &hash, true).await?;
        }
        return Ok(());
    }
    let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    match store
        .create_admin(NewAdmin {
            username: &username,
            hashed_password: &hash,
            is_sudo: true,
        })
        .await
    {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn load_core_config(store: &Store, args: &ServeArgs) -> anyhow::Result<()> {
    let json = match &args.core_config {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading core config {}", path.display()))?,
        None if store.core_config().await?.is_some() => return Ok(()),
        None => DEFAULT_CORE_CONFIG.to_owned(),
    };
    crate::domain::parse_inbounds(&json).context("core config")?;
    store.set_core_config(&json).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = &args.database.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let store = Store::connect(&args.database.url())
        .await
        .context("opening the database")?
        .with_reminder_thresholds(args.notify.reminder_thresholds());
    let pki = Arc::new(Pki::load_or_create(data_dir).context("loading the CA")?);
    load_core_config(&store, &args).await?;
    ensure_env_sudo_admin(&store).await?;
    let jwt_secret = store.setting_or_insert("jwt_secret", random_secret).await?;
    let subscription_secret = subscription_secret(&store).await?;

    let subscription = args
        .subscription
        .settings()
        .context("subscription settings")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));

    let nodes = NodeManager::new(
        store.clone(),
        Arc::clone(&pki),
        Duration::from_millis(args.node_sync_interval_ms.max(100)),
    );
    nodes.start_all().await?;
    // `nexpoint node add`/`remove` change the nodes from another process.
    nodes.spawn_reconciler();
    let jobs = CancellationToken::new();
    let clock = tokio::spawn(lifecycle_clock::run(
        store.clone(),
        nodes.clone(),
        jobs.clone(),
    ));
    // Cursors exist before the API serves: every notification from here on
    // reaches every configured destination.
    let dispatcher = Dispatcher::prepare(store.clone(), args.notify.settings())
        .await
        .context("notification destinations")?;
    let job_settings = job_settings(&args);
    let registry = JobRegistry::default();
    let mut periodic = scheduler::start(
        &registry,
        periodic::jobs(&store, &nodes, &job_settings, dispatcher.configured_keys()),
    )
    .await
    .context("starting the periodic jobs")?;
    let delivery = tokio::spawn(dispatcher.run(jobs.clone()));
    let history = tokio::spawn(usage_history::run(
        store.clone(),
        usage_history::REST,
        jobs.clone(),
    ));
    let state = AppState {
        store: store.clone(),
        jwt: JwtKeys::new(&jwt_secret, args.jwt_expire_minutes),
        pki: Arc::clone(&pki),
        nodes: nodes.clone(),
        subscription_secret: subscription_secret.into(),
        subscription_url_prefix: args
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/')
            .into(),
        public_url: public_url.trim_end_matches('/').into(),
        enrollment_expire_minutes: args.enrollment_expire_minutes,
        subscription: Arc::new(subscription),
        jobs: registry.clone(),
    };
    let dashboard = crate::dashboard::normalise_base(&args.dashboard_path)
        .map_err(anyhow::Error::msg)
        .context("--dashboard-path")?;
    let metrics = Arc::new(
        Metrics::new(
            store.clone(),
            nodes.clone(),
            registry,
            args.metrics_token.clone(),
        )
        .context("registering metrics")?,
    );
    let app = api::router(state)
        .merge(crate::dashboard::router(&dashboard))
        .merge(metrics.router())
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&metrics),
            crate::metrics::observe,
        ));

    // Tests and supervisors wait for this line rather than for time to pass.
    println!("listening on http://{local}");
    tracing::info!(%local, backend = ?store.backend(), "control plane serving");
    // The listener is bound and migrations ran: connections from here on
    // are answered (they wait in the backlog until `serve` polls).
    sd_notify::notify_logged("READY=1");
    let stop = CancellationToken::new();
    // Stopped after the node tasks, which commit its last usage first.
    let local_stop = CancellationToken::new();
    let local_node = match args.local_node {
        true => {
            let agent =
                LocalNode::new(args.local_node_bin.clone(), args.local_node_port, data_dir)?;
            // The agent enrolls over this very listener.
            let mut reach = local;
            if reach.ip().is_unspecified() {
                reach.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            Some(tokio::spawn(agent.run(
                store.clone(),
                Arc::clone(&pki),
                nodes.clone(),
                format!("http://{reach}"),
                local_stop.clone(),
            )))
        }
        false => None,
    };
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            sd_notify::notify_logged("STOPPING=1");
            tracing::info!("stop requested: no new connections; draining open requests");
            stop.cancel();
        }
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    // Open requests finish, but within a deadline: a log stream or a slow
    // client must not hold the stop past systemd's patience.
    let drained = async {
        stop.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        served = std::future::IntoFuture::into_future(server) => served.context("serving HTTP")?,
        () = drained => tracing::warn!("open requests did not finish in {DRAIN_TIMEOUT:?}; stopping anyway"),
    }

    tracing::info!("shutting down");
    if let Err(e) = periodic.shutdown().await {
        tracing::warn!(error = %e, "stopping the periodic jobs");
    }
    // Node tasks commit what their agents journaled before they stop; the
    // notifications that usage causes are then delivered below.
    nodes.shutdown(Duration::from_secs(10)).await;
    local_stop.cancel();
    if let Some(local_node) = local_node {
        let _ = local_node.await;
    }
    jobs.cancel();
    // Delivery stops once the outbox is empty or a destination is backing
    // off; what is left stays in the outbox for the next start.
    let background = async {
        let _ = tokio::join!(clock, delivery, history);
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, background)
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop in {DRAIN_TIMEOUT:?}");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How long open requests, and then the notification deliveries, may take
/// after SIGTERM (the unit's TimeoutStopSec leaves room for both and the
/// node tasks' final collection).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

fn job_settings(args: &ServeArgs) -> JobSettings {
    let j = &args.jobs;
    JobSettings {
        retention: RetentionPolicy {
            hourly_days: args.usage_hourly_days,
            retention_days: args.usage_retention_days,
        },
        retention_every: Duration::from_secs(j.job_usage_retention_interval_seconds),
        auto_delete: AutoDeletePolicy {
            days: j.users_autodelete_days,
            include_limited: j.user_autodelete_include_limited_accounts,
        },
        auto_delete_every: Duration::from_secs(j.job_auto_delete_interval_seconds),
        reminders_every: Duration::from_secs(j.job_reminders_interval_seconds),
        outbox_retention_days: j.notification_retention_days,
        outbox_prune_every: Duration::from_secs(j.job_notification_prune_interval_seconds),
    }
}
