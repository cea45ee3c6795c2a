//! `nexpoint-node run`: restore the core, serve the control plane over mutual
//! TLS, read usage on an interval, and shut down in order on SIGTERM/Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::agent_service::AgentService;
use crate::certificate_rotation::CertificateRotation;
use crate::cli::RunArgs;
use crate::core_kind::default_core_bin;
use crate::core_supervisor::CoreSettings;
use crate::enroll::load_enrollment;
use crate::metrics::AgentMetrics;
use crate::node::{Backoff, Node, NodeSettings};
use crate::snapshot_route::AgentRoutes;
use crate::state_dir::StateDir;
use crate::{node_identity, tls_incoming};
use nexpoint_config::sd_notify;

/// How long open requests may take to finish after the stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const CORE_READY_TIMEOUT: Duration = Duration::from_secs(15);
const CORE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let state_dir = StateDir::new(&args.state_dir);
    let enrollment = load_enrollment(&state_dir)?;
    // Before the certificate is loaded: a rotation a crash interrupted is
    // finished first, so the pair loaded always matches.
    node_identity::recover(&state_dir)?;
    let (tls, certificate) = tls_incoming::server_config(&state_dir)?;
    let ca_pem = std::fs::read_to_string(state_dir.ca_cert())
        .with_context(|| format!("cannot read {}", state_dir.ca_cert().display()))?;
    let rotation = Arc::new(CertificateRotation::new(
        state_dir.clone(),
        enrollment.node_id,
        ca_pem,
        certificate,
    ));
    let core_bin = args
        .core_bin
        .clone()
        .or_else(default_core_bin)
        .unwrap_or_else(|| {
            tracing::warn!("neither xray nor v2ray is on PATH; pass --core-bin");
            PathBuf::from("xray")
        });

    // Bind before starting the core, so a busy port fails fast.
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--metrics-listen)",
                args.metrics_listen
            )
        })?;
    let metrics_addr = metrics_listener.local_addr()?;

    let node = Node::start(NodeSettings {
        state_dir: state_dir.clone(),
        core: CoreSettings {
            bin: core_bin,
            ready_timeout: CORE_READY_TIMEOUT,
            stop_timeout: CORE_STOP_TIMEOUT,
        },
        backoff: Backoff::default(),
    })
    .await?;
    let usage = node.spawn_usage_loop(Duration::from_millis(args.usage_interval_ms));

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let agent_metrics = Arc::new(AgentMetrics::new(node.clone())?);
    let grpc_timer = agent_metrics.grpc_timer();
    let metrics = crate::metrics::spawn(metrics_listener, agent_metrics, shutdown.clone());
    let service = AgentService::new(node.clone(), rotation, shutdown.clone());
    let incoming = tls_incoming::incoming(listener, tls, shutdown.clone());
    tracing::info!(node_id = enrollment.node_id, name = %enrollment.name, %addr, "serving the control plane");
    println!("metrics on http://{metrics_addr}/metrics");
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    sd_notify::notify_logged("READY=1");

    let serve = Server::builder()
        .layer(grpc_timer)
        .add_service(AgentRoutes::new(
            service,
            node.clone(),
            nexpoint_proto::MAX_MESSAGE_BYTES,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    let drained = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = serve => result.context("gRPC server failed")?,
        () = drained => tracing::warn!("open requests did not finish in time; stopping anyway"),
    }

    sd_notify::notify_logged("STOPPING=1");
    stop(&node, usage).await;
    let _ = metrics.await;
    tracing::info!("stopped");
    Ok(())
}

async fn stop(node: &Arc<Node>, usage: tokio::task::JoinHandle<()>) {
    node.shutdown().await;
    let _ = usage.await;
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
    shutdown.cancel();
}
