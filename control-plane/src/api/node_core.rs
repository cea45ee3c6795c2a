//! A node's own core config template and certificate, beyond Marzban: each
//! node may run its own inbounds instead of the default template.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::SudoAdmin;
use super::core::{json_text, template_from_body, test_on_nodes};
use super::extract::{Json, Path};
use super::openapi::Detail;
use super::{ApiError, AppState};
use crate::domain::inbounds::DEFAULT_CORE_CONFIG;
use crate::nodes::NodeCallError;
use crate::store::StoreError;

fn node_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("Node not found".into()),
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/node/{id}/core/config", tag = "Node", params(("id" = i64, Path)),
    responses((status = 200, body = Object, description = "The template the node's core runs"),
        (status = 403, body = Detail), (status = 404, body = Detail)))]
/// The template the node's core is rendered from: its own if it has one,
/// else the default (`X-Nexpoint-Core-Config: own | default` tells which).
pub async fn config(
    State(state): State<AppState>,
    _: SudoAdmin,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let own = state
        .store
        .node_own_core_config(id)
        .await
        .map_err(node_not_found)?;
    let source = if own.is_some() { "own" } else { "default" };
    let text = match own {
        Some(text) => text,
        None => state
            .store
            .core_config()
            .await?
            .map_or_else(|| DEFAULT_CORE_CONFIG.to_owned(), |(text, _)| text),
    };
    let mut response = json_text(text);
    response.headers_mut().insert(
        "x-nexpoint-core-config",
        axum::http::HeaderValue::from_static(source),
    );
    Ok(response)
}

#[utoipa::path(put, path = "/node/{id}/core/config", tag = "Node", params(("id" = i64, Path)),
    request_body(content = Object, description = "An Xray config with user-carrying inbounds"),
    responses((status = 200, body = Object), (status = 400, body = Detail,
            description = "The node's core rejected the config; the detail is the core's own error"),
        (status = 403, body = Detail), (status = 404, body = Detail),
        (status = 422, body = Detail)))]
/// Gives the node its own template. When the node is connected its core
/// checks the result first, and a refusal keeps the previous template.
pub async fn replace_config(
    State(state): State<AppState>,
    admin: SudoAdmin,
    Path(id): Path<i64>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let node = state.store.node(id).await.map_err(node_not_found)?;
    let text = template_from_body(body)?;
    test_on_nodes(&state, vec![node], &text).await?;
    let revision = state
        .store
        .set_node_core_config(id, Some(&text))
        .await
        .map_err(node_not_found)?;
    state.nodes.desired_state_changed();
    tracing::info!(node = id, revision, by = %admin.0.username, "node core config replaced");
    Ok(json_text(text))
}

#[utoipa::path(delete, path = "/node/{id}/core/config", tag = "Node", params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 400, body = Detail),
        (status = 403, body = Detail), (status = 404, body = Detail)))]
/// Returns the node to the default template (checked by its core first).
pub async fn reset_config(
    State(state): State<AppState>,
    admin: SudoAdmin,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let node = state.store.node(id).await.map_err(node_not_found)?;
    if node.core_config_revision.is_some() {
        let default = state
            .store
            .core_config()
            .await?
            .map_or_else(|| DEFAULT_CORE_CONFIG.to_owned(), |(text, _)| text);
        test_on_nodes(&state, vec![node], &default).await?;
        state
            .store
            .set_node_core_config(id, None)
            .await
            .map_err(node_not_found)?;
        state.nodes.desired_state_changed();
        tracing::info!(node = id, by = %admin.0.username, "node back on the default core config");
    }
    Ok(Json(json!({})))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RotatedCertificate {
    certificate_fingerprint: String,
    certificate_expires_at: Option<String>,
}

#[utoipa::path(post, path = "/node/{id}/certificate/rotate", tag = "Node",
    params(("id" = i64, Path)),
    responses((status = 200, body = RotatedCertificate), (status = 403, body = Detail),
        (status = 404, body = Detail), (status = 409, body = Detail,
            description = "The node is not enrolled, disabled or unreachable")))]
/// Rotates the node's certificate now, without interrupting it (nodes also
/// rotate by themselves in the last third of a certificate's life).
pub async fn rotate_certificate(
    State(state): State<AppState>,
    admin: SudoAdmin,
    Path(id): Path<i64>,
) -> Result<Json<RotatedCertificate>, ApiError> {
    let node = state.store.node(id).await.map_err(node_not_found)?;
    if node.certificate_fingerprint.is_none() {
        return Err(ApiError::Conflict("Node is not enrolled yet".into()));
    }
    if node.status == "disabled" {
        return Err(ApiError::Conflict("Node is disabled".into()));
    }
    let fingerprint = state
        .nodes
        .rotate_certificate(&node)
        .await
        .map_err(|e| match e {
            NodeCallError::Rotation(crate::nodes::rotation::RotationError::Store(e)) => e.into(),
            other => ApiError::Conflict(format!("Certificate not rotated: {other}")),
        })?;
    let node = state.store.node(id).await.map_err(node_not_found)?;
    tracing::info!(node = id, by = %admin.0.username, %fingerprint, "node certificate rotated");
    Ok(Json(RotatedCertificate {
        certificate_fingerprint: fingerprint,
        certificate_expires_at: node.certificate_not_after.map(crate::time_fmt::iso_utc),
    }))
}
