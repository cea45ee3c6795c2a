//! Prometheus `/metrics` of the agent, on its own plain-HTTP listener
//! (`--metrics-listen`, loopback by default: the gRPC port speaks only mutual
//! TLS). Every figure is read from the node when scraped.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{HistogramOpts, HistogramVec, IntGauge, Registry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::grpc_timer::GrpcTimer;
use crate::node::Node;

pub struct AgentMetrics {
    registry: Registry,
    grpc: HistogramVec,
    node: Arc<Node>,
    core_up: IntGauge,
    core_restarts: IntGauge,
    core_uptime: IntGauge,
    journal_depth: IntGauge,
    journal_last_sequence: IntGauge,
    applied_revision: IntGauge,
}

impl AgentMetrics {
    pub fn new(node: Arc<Node>) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let grpc = HistogramVec::new(
            HistogramOpts::new(
                "nexpoint_node_grpc_request_duration_seconds",
                "gRPC calls from the control plane, by method",
            ),
            &["method"],
        )?;
        registry.register(Box::new(grpc.clone()))?;
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(Self {
            core_up: gauge("nexpoint_node_core_up", "1 while the core runs")?,
            core_restarts: gauge(
                "nexpoint_node_core_restarts_total",
                "Core restarts since the agent started",
            )?,
            core_uptime: gauge(
                "nexpoint_node_core_uptime_seconds",
                "Seconds the current core run has lasted",
            )?,
            journal_depth: gauge(
                "nexpoint_node_journal_entries",
                "Usage journal entries the control plane has not acknowledged",
            )?,
            journal_last_sequence: gauge(
                "nexpoint_node_journal_last_sequence",
                "Sequence of the last usage journal entry",
            )?,
            applied_revision: gauge(
                "nexpoint_node_applied_revision",
                "The control plane's revision the core serves",
            )?,
            registry,
            grpc,
            node,
        })
    }

    /// The layer that times the gRPC server's calls into these metrics.
    pub fn grpc_timer(&self) -> GrpcTimer {
        GrpcTimer {
            histogram: self.grpc.clone(),
        }
    }

    fn render(&self) -> prometheus::Result<String> {
        let health = self.node.health();
        let core = health.core.unwrap_or_default();
        self.core_up.set(i64::from(core.running));
        self.core_restarts.set(i64::from(core.restarts));
        let uptime = if core.started_at > 0 {
            (unix_now() - core.started_at).max(0)
        } else {
            0
        };
        self.core_uptime.set(uptime);
        self.journal_depth
            .set(i64::try_from(self.node.journal_depth()).unwrap_or(i64::MAX));
        self.journal_last_sequence
            .set(i64::try_from(health.last_sequence).unwrap_or(i64::MAX));
        self.applied_revision
            .set(i64::try_from(health.revision).unwrap_or(i64::MAX));
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn scrape(State(metrics): State<Arc<AgentMetrics>>) -> Response {
    match metrics.render() {
        Ok(body) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding /metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub fn spawn(
    listener: TcpListener,
    metrics: Arc<AgentMetrics>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics server failed");
        }
    })
}
