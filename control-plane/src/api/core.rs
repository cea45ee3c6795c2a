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
use crate::nodes::ConfigVerdict;
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
    responses((status = 200, body = Object), (status = 400, body = Detail,
            description = "A node's core rejected the config; the detail is the core's own error"),
        (status = 401, body = Detail), (status = 403, body = Detail),
        (status = 422, body = Detail)))]
/// Replaces the default template. Every connected node running it first has
/// its core check the rendered result; a refusal keeps the previous
/// template everywhere. Nodes then re-render their cores at once. The text
/// is stored as sent, so key order and formatting survive.
pub async fn replace_config(
    State(state): State<AppState>,
    admin: SudoAdmin,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let text = template_from_body(body)?;
    let on_default: Vec<Node> = state
        .store
        .nodes()
        .await?
        .into_iter()
        .filter(|n| n.core_config_revision.is_none())
        .collect();
    test_on_nodes(&state, on_default, &text).await?;
    let revision = state.store.set_core_config(&text).await?;
    state.nodes.desired_state_changed();
    tracing::info!(revision, by = %admin.0.username, "core config replaced");
    Ok(json_text(text))
}

/// A core config template from a request body: a JSON object whose inbounds
/// Nexpoint understands.
pub(super) fn template_from_body(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
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
    Ok(text)
}

/// Has the core of every connected node among `nodes` check `template`
/// (in parallel). The first refusal is the answer, in the core's words; a
/// node that cannot judge is logged and does not block the change.
pub(super) async fn test_on_nodes(
    state: &AppState,
    nodes: Vec<Node>,
    template: &str,
) -> Result<(), ApiError> {
    let connected: Vec<Node> = nodes
        .into_iter()
        .filter(|n| n.status == "connected")
        .collect();
    let verdicts = futures::future::join_all(
        connected
            .iter()
            .map(|node| state.nodes.test_core_config(node, template)),
    )
    .await;
    for (node, verdict) in connected.iter().zip(verdicts) {
        match verdict {
            ConfigVerdict::Accepted => {}
            ConfigVerdict::Rejected(line) => {
                return Err(ApiError::BadRequest(format!(
                    "The core of node {} rejected the config: {line}",
                    node.name
                )));
            }
            ConfigVerdict::Untested(why) => {
                tracing::warn!(node = %node.name, %why, "core config not tested on node");
            }
        }
    }
    Ok(())
}

pub(super) fn json_text(text: String) -> Response {
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(status: &str, version: Option<&str>) -> Node {
        Node {
            status: status.into(),
            xray_version: version.map(Into::into),
            ..Node::for_tests(1)
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
