//! Probes for supervisors and load balancers, outside `/api` and without
//! authentication: `/health` says the process serves HTTP, `/ready` that it
//! can also serve requests (database reachable, schema current).

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::extract::Json;
use crate::store::StoreError;

/// Liveness: answering at all is the whole check.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 when the database answers and has every migration, else
/// 503 with the reason (the database's own error only goes to the log).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            let detail = match e {
                StoreError::Config(reason) => reason,
                _ => "database unreachable".into(),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "detail": detail})),
            )
        }
    }
}
