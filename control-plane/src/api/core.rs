//! Marzban's core endpoints. Nexpoint's control plane runs no proxy core:
//! every node runs its own, so these report and steer the nodes' cores, and
//! the config is the template every node's core is rendered from.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::{CurrentAdmin, SudoAdmin};
use super::extract::Json;
use super::openapi::Detail;
use super::{ApiError, AppState};
use crate::domain::inbounds::DEFAULT_CORE_CONFIG;
use crate::store::Node;

/// Marzban's CoreStats, from the nodes' reports.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CoreStats {
    /// The core version most connected nodes run ("" when no node has
    /// reported one).
    version: String,
    /// Whether the core runs on at least one node.
    started: bool,
    /// Where Marzban streams core logs.
    logs_websocket: &'static str,
}

/// The version most nodes report: connected ones first, else any enabled.
fn fleet_version(nodes: &[Node]) -> String {
    let most_common = |connected_only: bool| {
        let mut versions: Vec<&str> = nodes
            .iter()
            .filter(|n| n.status != "disabled")
            .filter(|n| !connected_only || n.status == "connected")
            .filter_map(|n| n.xray_version.as_deref())
            .collect();
        versions.sort_unstable();
        versions
            .chunk_by(|a, b| a == b)
            .max_by_key(|run| run.len())
            .map(|run| run[0].to_owned())
    };
    most_common(true)
        .or_else(|| most_common(false))
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/core", tag = "Core",
    responses((status = 200, body = CoreStats), (status = 401, body = Detail)))]
pub async fn stats(
    State(state): State<AppState>,
    _: CurrentAdmin,
) -> Result<Json<CoreStats>, ApiError> {
    let nodes = state.store.nodes().await?;
    Ok(Json(CoreStats {
        version: fleet_version(&nodes),
        started: nodes.iter().any(|n| n.status == "connected"),
        logs_websocket: "/api/core/logs",
    }))
}

#[utoipa::path(post, path = "/core/restart", tag = "Core",
    responses((status = 200, body = Object), (status = 401, body = Detail),
        (status = 403, body = Detail)))]
/// Reconnects every enabled node, which then compares its whole state with
/// the desired one and resyncs what differs. No core restarts: a core only
/// restarts when its config changes.
pub async fn restart(
    State(state): State<AppState>,
    admin: SudoAdmin,
) -> Result<Json<Value>, ApiError> {
    let mut restarted = 0;
    for node in state.store.nodes().await? {
        if node.status != "disabled" {
            state.nodes.start(node.id);
            restarted += 1;
        }
    }
    tracing::info!(nodes = restarted, by = %admin.0.username, "node resync requested");
    Ok(Json(json!({})))
}

fn json_text(text: String) -> Response {
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[utoipa::path(get, path = "/core/config", tag = "Core",
    responses((status = 200, body = Object, description = "The core config template"),
        (status = 401, body = Detail), (status = 403, body = Detail)))]
/// The template every node's core config is rendered from, as stored.
pub async fn config(State(state): State<AppState>, _: SudoAdmin) -> Result<Response, ApiError> {
    let text = state
        .store
        .core_config()
        .await?
        .map_or_else(|| DEFAULT_CORE_CONFIG.to_owned(), |(text, _)| text);
    Ok(json_text(text))
}

#[utoipa::path(put, path = "/core/config", tag = "Core",
    request_body(content = Object, description = "An Xray config with user-carrying inbounds"),
    responses((status = 200, body = Object), (status = 401, body = Detail),
        (status = 403, body = Detail), (status = 422, body = Detail)))]
/// Replaces the template. Nodes re-render their cores from it at once; the
/// text is stored as sent, so key order and formatting survive.
pub async fn replace_config(
    State(state): State<AppState>,
    admin: SudoAdmin,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::validation("body", e.body_text()))?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::validation("body", "must be UTF-8 JSON"))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(_)) => {}
        Ok(_) => return Err(ApiError::validation("body", "must be a JSON object")),
        Err(e) => return Err(ApiError::validation("body", e.to_string())),
    }
    crate::domain::parse_inbounds(&text)
        .map_err(|e| ApiError::validation("body", e.to_string()))?;
    let revision = state.store.set_core_config(&text).await?;
    state.nodes.desired_state_changed();
    tracing::info!(revision, by = %admin.0.username, "core config replaced");
    Ok(json_text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: &str, version: Option<&str>) -> Node {
        Node {
            id: 1,
            name: "n".into(),
            address: "a".into(),
            port: 1,
            api_port: 2,
            usage_coefficient: 1.0,
            status: status.into(),
            message: None,
            core_kind: None,
            xray_version: version.map(Into::into),
            agent_version: None,
            last_seen_at: None,
            certificate_fingerprint: None,
            certificate_not_after: None,
            usage_sequence: 0,
            uplink: 0,
            downlink: 0,
            created_at: 0,
        }
    }

    #[test]
    fn version_is_the_connected_majority() {
        assert_eq!(fleet_version(&[]), "");
        let nodes = [
            node("connected", Some("1.8.4")),
            node("connected", Some("1.8.4")),
            node("connected", Some("25.1.1")),
            node("error", Some("4.45.2")),
            node("error", Some("4.45.2")),
            node("error", Some("4.45.2")),
        ];
        assert_eq!(fleet_version(&nodes), "1.8.4");
        let offline = [node("error", Some("4.45.2")), node("disabled", Some("9"))];
        assert_eq!(fleet_version(&offline), "4.45.2");
    }
}
