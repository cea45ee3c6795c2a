//! The Agent gRPC service: thin mapping from requests to [`Node`] calls and
//! from errors to statuses.
//!
//! Error mapping (what the control plane sees):
//! - INVALID_ARGUMENT: the template is not valid JSON, or the core itself
//!   rejected the rendered config (`core rejected the config: <core's line>`,
//!   from `core -test`); the running core is untouched.
//! - FAILED_PRECONDITION: ApplyChanges on the wrong base revision or before any
//!   snapshot; the core binary is missing or unidentifiable; or a new template
//!   passed the test but the core failed to start with it
//!   (`core failed to start: <core's line>`; the previous config is restored).
//! - INTERNAL: the applied state could not be persisted.
//!
//! In every case GetCoreStatus / Health show the core's line in `last_error`.
//!
//! TestCoreConfig answers `ok=false` with the line (the template's parse
//! error, the core's own line, or why the core binary cannot be run); only a
//! failure of the agent itself (no free port, unwritable state dir) is
//! INTERNAL. Certificate rotation: a PEM that is no certificate is
//! INVALID_ARGUMENT; nothing pending, a certificate for another key, or one
//! our CA did not issue for this node (or expired) is FAILED_PRECONDITION;
//! a file that cannot be written is INTERNAL.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use nexpoint_proto::agent::agent_server::Agent;
use nexpoint_proto::agent::{
    AckUsageRequest, AckUsageResponse, ApplyResponse, BeginCertificateRotationRequest,
    BeginCertificateRotationResponse, ChangeSet, CollectUsageRequest, CollectUsageResponse,
    CompleteCertificateRotationRequest, CompleteCertificateRotationResponse, CoreStatus,
    CoreStatusRequest, HealthRequest, HealthResponse, LogLine, Snapshot, StreamLogsRequest,
    TestCoreConfigRequest, TestCoreConfigResponse,
};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::applied_state::AppliedState;
use crate::certificate_rotation::{CertificateRotation, RotationError};
use crate::core_supervisor::CoreError;
use crate::node::{ApplyError, Node};

pub struct AgentService {
    node: Arc<Node>,
    rotation: Arc<CertificateRotation>,
    shutdown: CancellationToken,
}

impl AgentService {
    /// `shutdown` ends open log streams, so a graceful stop is not held up
    /// by a client that follows the logs.
    pub fn new(
        node: Arc<Node>,
        rotation: Arc<CertificateRotation>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            node,
            rotation,
            shutdown,
        }
    }
}

impl From<RotationError> for Status {
    fn from(error: RotationError) -> Self {
        let message = error.to_string();
        match error {
            RotationError::Unreadable(_) => Status::invalid_argument(message),
            RotationError::NothingPending
            | RotationError::NotForPendingKey
            | RotationError::Untrusted(_) => Status::failed_precondition(message),
            RotationError::KeyGeneration(_)
            | RotationError::Persist(_)
            | RotationError::Install(_) => {
                tracing::error!(error = %message, "certificate rotation failed");
                Status::internal(message)
            }
        }
    }
}

impl From<ApplyError> for Status {
    fn from(error: ApplyError) -> Self {
        let message = error.to_string();
        match error {
            ApplyError::Template(_) | ApplyError::Core(CoreError::Rejected(_)) => {
                Status::invalid_argument(message)
            }
            ApplyError::RevisionMismatch { .. }
            | ApplyError::NoSnapshot
            | ApplyError::Core(CoreError::Unusable(_) | CoreError::StartFailed(_)) => {
                Status::failed_precondition(message)
            }
            ApplyError::Core(CoreError::WriteConfig { .. })
            | ApplyError::Port(_)
            | ApplyError::Persist(_) => {
                tracing::error!(error = %message, "apply failed");
                Status::internal(message)
            }
        }
    }
}

/// ApplySnapshot, however its request was decoded.
pub async fn apply_snapshot(
    node: &Node,
    state: AppliedState,
) -> Result<Response<ApplyResponse>, Status> {
    let revision = state.revision;
    let response = node.apply_snapshot(state).await.inspect_err(|e| {
        tracing::warn!(revision, error = %e, "snapshot not applied");
    })?;
    tracing::info!(revision, "snapshot applied");
    Ok(Response::new(response))
}

type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn health(
        &self,
        _request: Request<HealthRequest>,
    ) -> Result<Response<HealthResponse>, Status> {
        Ok(Response::new(self.node.health()))
    }

    async fn apply_snapshot(
        &self,
        request: Request<Snapshot>,
    ) -> Result<Response<ApplyResponse>, Status> {
        // Served by `snapshot_route`, which decodes the request compactly;
        // this is the same call for a `Snapshot` decoded as generated.
        apply_snapshot(&self.node, request.into_inner().into()).await
    }

    async fn apply_changes(
        &self,
        request: Request<ChangeSet>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let changes = request.into_inner();
        let revision = changes.revision;
        let response = self.node.apply_changes(changes).await.inspect_err(|e| {
            tracing::warn!(revision, error = %e, "changes not applied");
        })?;
        tracing::info!(revision, "changes applied");
        Ok(Response::new(response))
    }

    async fn collect_usage(
        &self,
        request: Request<CollectUsageRequest>,
    ) -> Result<Response<CollectUsageResponse>, Status> {
        let request = request.into_inner();
        if request.read_counters
            && let Err(e) = self.node.record_usage().await
        {
            // What the journal holds is still right, only older.
            tracing::warn!(error = %e, "could not read usage counters for a collection");
        }
        Ok(Response::new(self.node.collect_usage(
            request.after_sequence,
            request.max_entries,
        )))
    }

    async fn ack_usage(
        &self,
        request: Request<AckUsageRequest>,
    ) -> Result<Response<AckUsageResponse>, Status> {
        self.node
            .ack_usage(request.into_inner().sequence)
            .map_err(|e| {
                tracing::error!(error = %e, "usage ack not persisted");
                Status::internal(e.to_string())
            })?;
        Ok(Response::new(AckUsageResponse {}))
    }

    async fn get_core_status(
        &self,
        _request: Request<CoreStatusRequest>,
    ) -> Result<Response<CoreStatus>, Status> {
        Ok(Response::new(self.node.core_status()))
    }

    type StreamLogsStream = LogStream;

    async fn stream_logs(
        &self,
        request: Request<StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let (recent, live) = if request.into_inner().include_recent {
            self.node.logs().subscribe_with_recent()
        } else {
            (Vec::new(), self.node.logs().subscribe())
        };
        // Ends when the client goes away (tonic drops the response stream).
        let live = futures::stream::unfold(live, |mut live| async move {
            let line = match live.recv().await {
                Ok(line) => line,
                Err(RecvError::Lagged(skipped)) => LogLine {
                    timestamp_ms: crate::core_logs::now_ms(),
                    line: format!("[nexpoint-node] {skipped} log lines skipped (slow reader)"),
                },
                Err(RecvError::Closed) => return None,
            };
            Some((line, live))
        });
        let stream: LogStream = Box::pin(
            futures::stream::iter(recent)
                .chain(live)
                .take_until(self.shutdown.clone().cancelled_owned())
                .map(Ok),
        );
        Ok(Response::new(stream))
    }

    async fn test_core_config(
        &self,
        request: Request<TestCoreConfigRequest>,
    ) -> Result<Response<TestCoreConfigResponse>, Status> {
        let template = request.into_inner().core_config_json;
        let response = match self.node.test_core_config(&template).await? {
            Ok(()) => TestCoreConfigResponse {
                ok: true,
                error: String::new(),
            },
            Err(line) => {
                tracing::info!(error = %line, "tested core config refused");
                TestCoreConfigResponse {
                    ok: false,
                    error: line,
                }
            }
        };
        Ok(Response::new(response))
    }

    async fn begin_certificate_rotation(
        &self,
        _request: Request<BeginCertificateRotationRequest>,
    ) -> Result<Response<BeginCertificateRotationResponse>, Status> {
        let csr_pem = self.rotation.begin().await?;
        Ok(Response::new(BeginCertificateRotationResponse { csr_pem }))
    }

    async fn complete_certificate_rotation(
        &self,
        request: Request<CompleteCertificateRotationRequest>,
    ) -> Result<Response<CompleteCertificateRotationResponse>, Status> {
        let certificate = request.into_inner().certificate_pem;
        let fingerprint = self
            .rotation
            .complete(&certificate)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "certificate rotation refused"))?;
        Ok(Response::new(CompleteCertificateRotationResponse {
            fingerprint,
        }))
    }
}
