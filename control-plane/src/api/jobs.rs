//! `GET /api/jobs`: how the periodic jobs last ran and where each
//! notification destination stands.

use axum::extract::State;
use serde::Serialize;

use super::auth::SudoAdmin;
use super::extract::Json;
use super::openapi::Detail;
use super::{ApiError, AppState};
use crate::jobs::scheduler::JobStatus;
use crate::store::DeliveryState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobsResponse {
    jobs: Vec<JobStatus>,
    /// Per notification destination: its cursor, failures and next try.
    deliveries: Vec<DeliveryState>,
}

#[utoipa::path(get, path = "/jobs", tag = "System",
    responses((status = 200, body = JobsResponse), (status = 401, body = Detail),
        (status = 403, body = Detail)))]
/// Each periodic job's last run (start, duration, outcome, error) and each
/// notification destination's delivery state (sudo only).
pub async fn list(
    State(state): State<AppState>,
    _by: SudoAdmin,
) -> Result<Json<JobsResponse>, ApiError> {
    Ok(Json(JobsResponse {
        jobs: state.jobs.statuses(),
        deliveries: state.store.delivery_states().await?,
    }))
}
