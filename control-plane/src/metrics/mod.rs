//! Prometheus `/metrics` of the control plane. Figures that live elsewhere
//! (users by status from the trigger-kept counts, nodes from their table,
//! jobs from the registry) are read when scraped, so nothing is counted
//! twice; what only happens in flight (requests, usage batches) is observed
//! where it happens.
//!
//! It is served on the main listener: with `--metrics-token` to whoever
//! presents it as a bearer token, without one only to loopback peers. A
//! reverse proxy on the same host makes every client look local, so such
//! set-ups set a token.

mod http;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry};

use crate::jobs::scheduler::JobRegistry;
use crate::nodes::NodeManager;
use crate::store::Store;

pub use http::observe;

pub struct Metrics {
    registry: Registry,
    http: HistogramVec,
    users: IntGaugeVec,
    nodes: IntGaugeVec,
    revision_lag: IntGaugeVec,
    core_restarts: IntGaugeVec,
    job_runs: IntGaugeVec,
    job_failures: IntGaugeVec,
    job_running: IntGaugeVec,
    job_last_duration: GaugeVec,
    token: Option<String>,
    store: Store,
    node_manager: NodeManager,
    jobs: JobRegistry,
}

impl Metrics {
    pub fn new(
        store: Store,
        node_manager: NodeManager,
        jobs: JobRegistry,
        token: Option<String>,
    ) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, label: &str| -> prometheus::Result<IntGaugeVec> {
            let g = IntGaugeVec::new(Opts::new(name, help), &[label])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let http = HistogramVec::new(
            HistogramOpts::new(
                "nexpoint_http_request_duration_seconds",
                "HTTP requests by method, matched route and status",
            ),
            &["method", "route", "status"],
        )?;
        registry.register(Box::new(http.clone()))?;
        let job_last_duration = GaugeVec::new(
            Opts::new(
                "nexpoint_job_last_duration_seconds",
                "How long each periodic job's last run took",
            ),
            &["job"],
        )?;
        registry.register(Box::new(job_last_duration.clone()))?;
        for collector in node_manager.metrics().collectors() {
            registry.register(collector)?;
        }
        Ok(Self {
            users: gauge("nexpoint_users", "Users by status", "status")?,
            nodes: gauge("nexpoint_nodes", "Nodes by status", "status")?,
            revision_lag: gauge(
                "nexpoint_node_revision_lag",
                "Revisions the node has not applied yet",
                "node",
            )?,
            core_restarts: gauge(
                "nexpoint_node_core_restarts",
                "Core restarts each node's agent counted since it started",
                "node",
            )?,
            job_runs: gauge(
                "nexpoint_job_runs_total",
                "Runs of each periodic job",
                "job",
            )?,
            job_failures: gauge(
                "nexpoint_job_failures_total",
                "Failed runs of each periodic job",
                "job",
            )?,
            job_running: gauge("nexpoint_job_running", "1 while a job runs", "job")?,
            job_last_duration,
            http,
            registry,
            token: token.filter(|t| !t.is_empty()),
            store,
            node_manager,
            jobs,
        })
    }

    /// `/metrics`, to be merged into the main router (its own state).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state(Arc::clone(self))
    }

    fn allowed(&self, peer: SocketAddr, headers: &HeaderMap) -> bool {
        match &self.token {
            Some(token) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
            None => peer.ip().is_loopback(),
        }
    }

    /// Reads the figures kept elsewhere into the gauges.
    async fn refresh(&self) -> Result<(), crate::store::StoreError> {
        let counts = self.store.user_counts(None).await?;
        for (status, n) in [
            ("active", counts.active),
            ("on_hold", counts.on_hold),
            ("disabled", counts.disabled),
            ("expired", counts.expired),
            ("limited", counts.limited),
        ] {
            self.users.with_label_values(&[status]).set(n);
        }

        let nodes = self.store.nodes().await?;
        let revision = self.store.current_revision().await?;
        let applied = self.node_manager.metrics().applied_revisions();
        // Deleted nodes and emptied statuses must not linger.
        self.nodes.reset();
        self.revision_lag.reset();
        self.core_restarts.reset();
        for status in ["connected", "connecting", "error", "disabled"] {
            self.nodes.with_label_values(&[status]).set(0);
        }
        for node in &nodes {
            self.nodes.with_label_values(&[&node.status]).inc();
            let lag = revision - applied.get(&node.id).copied().unwrap_or(0);
            self.revision_lag
                .with_label_values(&[&node.name])
                .set(lag.max(0));
            self.core_restarts
                .with_label_values(&[&node.name])
                .set(node.core_restarts);
        }

        for job in self.jobs.statuses() {
            let name = [job.name.as_str()];
            self.job_runs.with_label_values(&name).set(job.runs as i64);
            self.job_failures
                .with_label_values(&name)
                .set(job.failures as i64);
            self.job_running
                .with_label_values(&name)
                .set(i64::from(job.running));
            if let Some(ms) = job.last_duration_ms {
                self.job_last_duration
                    .with_label_values(&name)
                    .set(ms as f64 / 1000.0);
            }
        }
        Ok(())
    }
}

async fn scrape(
    State(metrics): State<Arc<Metrics>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !metrics.allowed(peer, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "metrics: loopback or --metrics-token only\n",
        )
            .into_response();
    }
    if let Err(e) = metrics.refresh().await {
        tracing::error!(error = %e, "reading figures for /metrics");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response();
    }
    match prometheus::TextEncoder::new().encode_to_string(&metrics.registry.gather()) {
        Ok(body) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding /metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
