use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{CurrentAdmin, SudoAdmin};
use super::dates::UsagePeriod;
use super::extract::{Json, Path, Query};
use super::openapi::Detail;
use super::{ApiError, AppState};
use crate::domain::validate;
use crate::nodes::enrollment::{self, NewEnrollment, token_hash};
use crate::store::{NewNode, Node, NodeUpdate, StoreError};

fn default_port() -> i64 {
    62050
}
fn default_api_port() -> i64 {
    62051
}
fn default_coefficient() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NodeCreate {
    name: String,
    address: String,
    #[serde(default = "default_port")]
    port: i64,
    #[serde(default = "default_api_port")]
    api_port: i64,
    #[serde(default = "default_coefficient")]
    usage_coefficient: f64,
    #[serde(default = "default_true")]
    add_as_new_host: bool,
}

/// Marzban's NodeResponse plus what Nexpoint knows beyond it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeResponse {
    id: i64,
    name: String,
    address: String,
    port: i64,
    api_port: i64,
    usage_coefficient: f64,
    xray_version: Option<String>,
    status: String,
    message: Option<String>,
    core_kind: Option<String>,
    agent_version: Option<String>,
    last_seen_at: Option<String>,
    enrolled: bool,
    certificate_fingerprint: Option<String>,
    certificate_expires_at: Option<String>,
    /// Core restarts the node's agent counted since it started.
    core_restarts: i64,
    core_started_at: Option<String>,
    /// Whether the node runs its own core config rather than the default.
    own_core_config: bool,
    uplink: i64,
    downlink: i64,
}

impl From<Node> for NodeResponse {
    fn from(n: Node) -> Self {
        Self {
            enrolled: n.certificate_fingerprint.is_some(),
            certificate_expires_at: n.certificate_not_after.map(crate::time_fmt::iso_utc),
            last_seen_at: n.last_seen_at.map(crate::time_fmt::iso_utc),
            core_restarts: n.core_restarts,
            core_started_at: n.core_started_at.map(crate::time_fmt::iso_utc),
            own_core_config: n.core_config_revision.is_some(),
            id: n.id,
            name: n.name,
            address: n.address,
            port: n.port,
            api_port: n.api_port,
            usage_coefficient: n.usage_coefficient,
            xray_version: n.xray_version,
            status: n.status,
            message: n.message,
            core_kind: n.core_kind,
            agent_version: n.agent_version,
            certificate_fingerprint: n.certificate_fingerprint,
            uplink: n.uplink,
            downlink: n.downlink,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedNode {
    #[serde(flatten)]
    node: NodeResponse,
    /// Shown once: only its hash is stored.
    enrollment_token: String,
    enrollment_expires_at: String,
    /// What to run on the node host.
    enrollment_command: String,
}

impl CreatedNode {
    /// The answer to `POST /api/node` (and `nexpoint node add --json`):
    /// the node, its one-time token and the command that enrolls it with
    /// the control plane at `public_url`.
    pub fn new(created: NewEnrollment, public_url: &str, ca_fingerprint: &str) -> Self {
        Self {
            enrollment_command: enrollment::command(public_url, &created.token, ca_fingerprint),
            node: created.node.into(),
            enrollment_token: created.token,
            enrollment_expires_at: crate::time_fmt::iso_utc(created.expires_at),
        }
    }

    pub fn enrollment_command(&self) -> &str {
        &self.enrollment_command
    }
}

fn check_port(field: &str, port: i64) -> Result<(), ApiError> {
    validate::port(port).map_err(|m| ApiError::validation(field, m))
}

fn check_coefficient(coefficient: f64) -> Result<(), ApiError> {
    validate::usage_coefficient(coefficient)
        .map_err(|m| ApiError::validation("usage_coefficient", m))
}

#[utoipa::path(post, path = "/node", tag = "Node", request_body = NodeCreate,
    responses((status = 200, body = CreatedNode), (status = 409, body = super::openapi::Detail),
        (status = 422, body = super::openapi::Detail)))]
pub async fn create(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Json(body): Json<NodeCreate>,
) -> Result<Json<CreatedNode>, ApiError> {
    admin.require_sudo()?;
    let node = NewNode {
        name: body.name,
        address: body.address,
        port: body.port,
        api_port: body.api_port,
        usage_coefficient: body.usage_coefficient,
    };
    enrollment::check(&node).map_err(|e| ApiError::validation(e.field, e.message))?;
    let created = enrollment::create(
        &state.store,
        node,
        state.enrollment_expire_minutes,
        body.add_as_new_host,
    )
    .await?;
    state.nodes.start(created.node.id);
    tracing::info!(node = created.node.id, name = %created.node.name,
        "node created, awaiting enrollment");
    Ok(Json(CreatedNode::new(
        created,
        &state.public_url,
        &state.pki.ca.fingerprint(),
    )))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EnrollRequest {
    token: String,
    csr: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EnrollResponse {
    node_id: i64,
    node_name: String,
    certificate: String,
    ca_certificate: String,
    control_plane_certificate: String,
}

#[utoipa::path(post, path = "/node/enroll", tag = "Node", security(), request_body = EnrollRequest,
    responses((status = 200, body = EnrollResponse), (status = 401, body = super::openapi::Detail),
        (status = 422, body = super::openapi::Detail)))]
/// Called by `nexpoint-node enroll`: the one-time token proves the node was
/// added by an admin; the CSR carries the node's public key.
pub async fn enroll(
    State(state): State<AppState>,
    Json(body): Json<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let invalid = || ApiError::Unauthorized("Invalid or expired enrollment token".into());
    let hash = token_hash(body.token.trim());
    let node = state
        .store
        .node_by_enrollment_token(&hash)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => invalid(),
            other => other.into(),
        })?;
    let issued =
        crate::nodes::rotation::issue(&state.pki, node.id, &body.csr).map_err(|e| match e {
            crate::nodes::rotation::RotationError::Csr(e) => {
                ApiError::validation("csr", e.to_string())
            }
            other => ApiError::Internal(other.into()),
        })?;
    let (certificate, fingerprint, not_after) = (issued.pem, issued.fingerprint, issued.not_after);
    let node = state
        .store
        .complete_enrollment(node.id, &hash, &certificate, &fingerprint, not_after)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => invalid(),
            other => other.into(),
        })?;
    if node.status != "disabled" {
        state.nodes.start(node.id);
    }
    tracing::info!(node = node.id, %fingerprint, "node enrolled");
    Ok(Json(EnrollResponse {
        node_id: node.id,
        node_name: node.name,
        certificate,
        ca_certificate: state.pki.ca.cert_pem().to_owned(),
        control_plane_certificate: state.pki.client.cert_pem.clone(),
    }))
}

fn node_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("Node not found".into()),
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/nodes", tag = "Node",
    responses((status = 200, body = Vec<NodeResponse>), (status = 403, body = super::openapi::Detail)))]
pub async fn list(
    State(state): State<AppState>,
    admin: CurrentAdmin,
) -> Result<Json<Vec<NodeResponse>>, ApiError> {
    admin.require_sudo()?;
    let nodes = state.store.nodes().await?;
    Ok(Json(nodes.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/node/{id}", tag = "Node", params(("id" = i64, Path)),
    responses((status = 200, body = NodeResponse), (status = 404, body = super::openapi::Detail)))]
pub async fn get_one(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(id): Path<i64>,
) -> Result<Json<NodeResponse>, ApiError> {
    admin.require_sudo()?;
    Ok(Json(
        state.store.node(id).await.map_err(node_not_found)?.into(),
    ))
}

#[utoipa::path(delete, path = "/node/{id}", tag = "Node", params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::openapi::Detail)))]
/// Deleting a node revokes it: its pinned certificate is gone, so the
/// control plane never talks to it again.
pub async fn delete(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    admin.require_sudo()?;
    let node = state.store.delete_node(id).await.map_err(node_not_found)?;
    state.nodes.stop(node.id);
    tracing::info!(node = node.id, name = %node.name, "node deleted");
    Ok(Json(json!({})))
}

/// The oldest nexpoint-node this control plane can drive.
pub const MIN_NODE_VERSION: &str = "v0.1.0";

/// Marzban's NodeSettings.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeSettings {
    min_node_version: &'static str,
    /// The CA certificate (PEM) nodes trust the control plane by.
    certificate: String,
}

#[utoipa::path(get, path = "/node/settings", tag = "Node",
    responses((status = 200, body = NodeSettings), (status = 401, body = Detail),
        (status = 403, body = Detail)))]
pub async fn settings(State(state): State<AppState>, _: SudoAdmin) -> Json<NodeSettings> {
    Json(NodeSettings {
        min_node_version: MIN_NODE_VERSION,
        certificate: state.pki.ca.cert_pem().to_owned(),
    })
}

const NODE_STATUSES: [&str; 4] = ["connected", "connecting", "error", "disabled"];

/// Marzban's NodeModify: absent or null fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NodeModify {
    name: Option<String>,
    address: Option<String>,
    port: Option<i64>,
    api_port: Option<i64>,
    usage_coefficient: Option<f64>,
    /// "disabled" disables the node; any other status re-enables it;
    /// absent keeps it as it is.
    #[schema(example = "disabled")]
    status: Option<String>,
}

#[utoipa::path(put, path = "/node/{id}", tag = "Node", params(("id" = i64, Path)),
    request_body = NodeModify,
    responses((status = 200, body = NodeResponse), (status = 403, body = Detail),
        (status = 404, body = Detail), (status = 409, body = Detail),
        (status = 422, body = Detail)))]
/// Changes a node. A new address or port reconnects it; disabling stops its
/// task (its core keeps serving what it had), enabling starts it again.
pub async fn modify(
    State(state): State<AppState>,
    _: SudoAdmin,
    Path(id): Path<i64>,
    Json(body): Json<NodeModify>,
) -> Result<Json<NodeResponse>, ApiError> {
    if let Some(name) = &body.name {
        validate::node_name(name).map_err(|m| ApiError::validation("name", m))?;
    }
    if let Some(address) = &body.address {
        validate::address(address).map_err(|m| ApiError::validation("address", m))?;
    }
    if let Some(port) = body.port {
        check_port("port", port)?;
    }
    if let Some(port) = body.api_port {
        check_port("api_port", port)?;
    }
    if let Some(coefficient) = body.usage_coefficient {
        check_coefficient(coefficient)?;
    }
    if let Some(status) = &body.status
        && !NODE_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::validation(
            "status",
            format!("must be one of {NODE_STATUSES:?}"),
        ));
    }
    let update = NodeUpdate {
        disabled: body.status.as_deref().map(|s| s == "disabled"),
        name: body.name,
        address: body.address,
        port: body.port,
        api_port: body.api_port,
        usage_coefficient: body.usage_coefficient,
    };
    let (before, after) = state
        .store
        .update_node(id, update)
        .await
        .map_err(node_not_found)?;
    if after.status == "disabled" {
        state.nodes.stop(id);
    } else if before.status == "disabled"
        || before.address != after.address
        || before.port != after.port
    {
        state.nodes.start(id);
    }
    tracing::info!(node = id, name = %after.name, status = %after.status, "node modified");
    Ok(Json(after.into()))
}

#[utoipa::path(post, path = "/node/{id}/reconnect", tag = "Node", params(("id" = i64, Path)),
    responses((status = 200, body = Detail), (status = 403, body = Detail),
        (status = 404, body = Detail), (status = 409, body = Detail,
            description = "The node is disabled")))]
/// Drops the node's connection and connects again; the node then resyncs
/// whatever differs from the desired state.
pub async fn reconnect(
    State(state): State<AppState>,
    _: SudoAdmin,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let node = state.store.node(id).await.map_err(node_not_found)?;
    if node.status == "disabled" {
        return Err(ApiError::Conflict("Node is disabled".into()));
    }
    state.nodes.start(id);
    Ok(Json(json!({ "detail": "Reconnection task scheduled" })))
}

/// Marzban's NodeUsageResponse.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeUsageResponse {
    node_id: Option<i64>,
    node_name: String,
    /// Always 0: see `downlink`.
    uplink: i64,
    /// All traffic users were billed for on the node in the period (uplink
    /// plus downlink, times the node's usage coefficient): Nexpoint records
    /// usage per user and hour as one figure.
    downlink: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NodesUsageResponse {
    usages: Vec<NodeUsageResponse>,
}

#[utoipa::path(get, path = "/nodes/usage", tag = "Node", params(UsagePeriod),
    responses((status = 200, body = NodesUsageResponse), (status = 403, body = Detail),
        (status = 422, body = Detail)))]
/// Traffic per node over a period (default: the last 30 days), every node
/// listed. Nexpoint has no local core, so there is no "Master" entry.
pub async fn usage(
    State(state): State<AppState>,
    _: SudoAdmin,
    Query(period): Query<UsagePeriod>,
) -> Result<Json<NodesUsageResponse>, ApiError> {
    let (start, end) = period.resolve()?;
    let usages = state
        .store
        .nodes_usage(start, end)
        .await?
        .into_iter()
        .map(|u| NodeUsageResponse {
            node_id: Some(u.node_id),
            node_name: u.node_name,
            uplink: 0,
            downlink: u.used_traffic,
        })
        .collect();
    Ok(Json(NodesUsageResponse { usages }))
}
