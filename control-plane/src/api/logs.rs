//! Live core logs over WebSocket, as Marzban serves them: `/api/core/logs`
//! (every node's core, each line prefixed with the node's name) and
//! `/api/node/{id}/logs` (one node). The token comes as `?token=` or a bearer
//! header; sudo only. Each connection starts with the agents' recent lines.
//! With `?interval=S` (0.1 to 10 seconds) lines are sent in batches every S
//! seconds, one message per batch; without it, one message per line.
//!
//! Like Marzban, failures close the socket with a code: 4401 unauthorized,
//! 4403 not sudo, 4400 bad interval, 4404 unknown node.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::admin_from_token;
use super::{ApiError, AppState};
use crate::store::Node;

#[derive(Deserialize)]
pub struct LogsQuery {
    token: Option<String>,
    interval: Option<String>,
}

/// Lines waiting to be sent; a reader slower than the cores loses the
/// oldest (counted) rather than holding memory.
const BUFFERED_LINES: usize = 4096;
/// Pause before following a node's logs again after the stream broke.
const REFOLLOW_AFTER: Duration = Duration::from_secs(2);

pub async fn core_logs(
    State(state): State<AppState>,
    Query(query): Query<LogsQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    Ok(upgrade(ws)?.on_upgrade(move |socket| serve(state, query, headers, socket, None)))
}

pub async fn node_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogsQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // A malformed id is an unknown node.
    let id = id.parse::<i64>().unwrap_or(-1);
    Ok(upgrade(ws)?.on_upgrade(move |socket| serve(state, query, headers, socket, Some(id))))
}

/// A plain HTTP request gets a JSON error like every other endpoint.
fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    ws.map_err(|e| ApiError::BadRequest(format!("WebSocket expected: {}", e.body_text())))
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

fn bearer(query: &LogsQuery, headers: &HeaderMap) -> Option<String> {
    query.token.clone().or_else(|| {
        let header = headers.get(AUTHORIZATION)?.to_str().ok()?;
        Some(header.strip_prefix("Bearer ").unwrap_or(header).to_owned())
    })
}

/// `None` for no batching; `Err` for a value outside Marzban's range.
fn batch_interval(raw: Option<&str>) -> Result<Option<Duration>, ()> {
    let Some(raw) = raw else { return Ok(None) };
    let seconds: f64 = raw.parse().map_err(|_| ())?;
    if !(0.1..=10.0).contains(&seconds) {
        return Err(());
    }
    Ok(Some(Duration::from_secs_f64(seconds)))
}

async fn serve(
    state: AppState,
    query: LogsQuery,
    headers: HeaderMap,
    socket: WebSocket,
    node_id: Option<i64>,
) {
    let admin = match bearer(&query, &headers) {
        Some(token) => admin_from_token(&state, &token).await.ok(),
        None => None,
    };
    let Some(admin) = admin else {
        return close(socket, 4401, "Unauthorized").await;
    };
    if !admin.is_sudo {
        return close(socket, 4403, "Forbidden").await;
    }
    let Ok(interval) = batch_interval(query.interval.as_deref()) else {
        return close(socket, 4400, "Invalid interval value").await;
    };
    let (nodes, prefixed) = match node_id {
        Some(id) => match state.store.node(id).await {
            Ok(node) => (vec![node], false),
            Err(_) => return close(socket, 4404, "Node not found").await,
        },
        None => match state.store.nodes().await {
            Ok(nodes) => (nodes, true),
            Err(_) => return close(socket, 1011, "Internal error").await,
        },
    };
    let (tx, rx) = mpsc::channel(BUFFERED_LINES);
    let followers: Vec<_> = nodes
        .into_iter()
        .filter(|n| n.status != "disabled" && n.certificate_fingerprint.is_some())
        .map(|node| tokio::spawn(follow(state.clone(), node, prefixed, tx.clone())))
        .collect();
    drop(tx);
    forward(socket, rx, interval).await;
    for follower in followers {
        follower.abort();
    }
}

/// Sends one node's log lines into `tx` until the socket side goes away,
/// following again whenever the agent's stream breaks.
async fn follow(state: AppState, node: Node, prefixed: bool, tx: mpsc::Sender<String>) {
    let label = |line: &str| {
        if prefixed {
            format!("[{}] {line}", node.name)
        } else {
            line.to_owned()
        }
    };
    let mut reported_loss = false;
    loop {
        match state.nodes.follow_logs(&node).await {
            Ok(mut lines) => {
                reported_loss = false;
                while let Some(Ok(line)) = lines.next().await {
                    if tx.send(label(&line.line)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                if !reported_loss
                    && tx
                        .send(label(&format!(
                            "[nexpoint] cannot follow the node's logs: {e}"
                        )))
                        .await
                        .is_err()
                {
                    return;
                }
                reported_loss = true;
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(REFOLLOW_AFTER) => {}
        }
    }
}

/// Writes lines to the socket (one per message, or batched) until the client
/// closes it.
async fn forward(
    mut socket: WebSocket,
    mut rx: mpsc::Receiver<String>,
    interval: Option<Duration>,
) {
    let mut batch: Vec<String> = Vec::new();
    let mut tick = interval.map(tokio::time::interval);
    loop {
        let flush_due = async {
            match tick.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = socket.recv() => match incoming {
                // The client says nothing we need; only its going away matters.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            line = rx.recv() => {
                let Some(line) = line else {
                    // No node to follow: keep the socket until the client leaves.
                    while let Some(Ok(message)) = socket.recv().await {
                        if matches!(message, Message::Close(_)) {
                            return;
                        }
                    }
                    return;
                };
                if interval.is_some() {
                    batch.push(line);
                } else if socket.send(Message::Text(line.into())).await.is_err() {
                    return;
                }
            }
            _ = flush_due => {
                if !batch.is_empty() {
                    let text = batch.join("\n");
                    batch.clear();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_follows_marzbans_range() {
        assert_eq!(batch_interval(None), Ok(None));
        assert_eq!(
            batch_interval(Some("0.5")),
            Ok(Some(Duration::from_millis(500)))
        );
        assert_eq!(
            batch_interval(Some("10")),
            Ok(Some(Duration::from_secs(10)))
        );
        assert_eq!(batch_interval(Some("0.05")), Err(()));
        assert_eq!(batch_interval(Some("11")), Err(()));
        assert_eq!(batch_interval(Some("soon")), Err(()));
        assert_eq!(batch_interval(Some("NaN")), Err(()));
    }
}
