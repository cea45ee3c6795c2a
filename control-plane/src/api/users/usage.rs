//! Traffic per node over a period: one user's, or all users' of some admins.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{Detail, load_manageable};
use crate::api::auth::CurrentAdmin;
use crate::api::dates::UsagePeriod;
use crate::api::extract::{Json, Path, Query};
use crate::api::{ApiError, AppState};
use crate::store::{NodeTraffic, TrafficOf};

/// Marzban's UserUsageResponse: bytes on one node (`node_id` null:
/// "Master", traffic of no existing node).
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserUsageResponse {
    node_id: Option<i64>,
    node_name: String,
    /// Bytes, as billed (times the node's usage coefficient).
    used_traffic: i64,
}

impl From<NodeTraffic> for UserUsageResponse {
    fn from(t: NodeTraffic) -> Self {
        Self {
            node_id: t.node_id,
            node_name: t.node_name,
            used_traffic: t.used_traffic,
        }
    }
}

/// Marzban's UserUsagesResponse.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserUsagesResponse {
    username: String,
    usages: Vec<UserUsageResponse>,
}

/// Marzban's UsersUsagesResponse.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsersUsagesResponse {
    usages: Vec<UserUsageResponse>,
}

#[utoipa::path(get, path = "/user/{username}/usage", tag = "User",
    params(("username" = String, Path), UsagePeriod),
    responses((status = 200, body = UserUsagesResponse), (status = 401, body = Detail),
        (status = 403, body = Detail), (status = 404, body = Detail),
        (status = 422, body = Detail)))]
/// The user's traffic per node over a period (default: the last 30 days):
/// "Master" first, then every node.
pub async fn user_usage(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(username): Path<String>,
    Query(period): Query<UsagePeriod>,
) -> Result<Json<UserUsagesResponse>, ApiError> {
    let user = load_manageable(&state, &admin, &username).await?;
    let (start, end) = period.resolve()?;
    let usages = state
        .store
        .traffic_by_node(&TrafficOf::User(user.id), start, end)
        .await?;
    Ok(Json(UserUsagesResponse {
        username: user.username,
        usages: usages.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersUsageQuery {
    /// Start of the period (ISO 8601); default 30 days ago.
    start: Option<String>,
    /// End of the period; default now.
    end: Option<String>,
    /// Owning admins' usernames; repeat for several. Sudo only: other
    /// admins always get their own users' traffic.
    #[serde(default)]
    admin: Vec<String>,
}

#[utoipa::path(get, path = "/users/usage", tag = "User", params(UsersUsageQuery),
    responses((status = 200, body = UsersUsagesResponse), (status = 401, body = Detail),
        (status = 422, body = Detail)))]
/// All users' traffic per node over a period: every user's for sudo admins
/// (or the given admins' users'), the caller's own users' otherwise.
pub async fn users_usage(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Query(query): Query<UsersUsageQuery>,
) -> Result<Json<UsersUsagesResponse>, ApiError> {
    let (start, end) = UsagePeriod {
        start: query.start,
        end: query.end,
    }
    .resolve()?;
    let of = if !admin.0.is_sudo {
        TrafficOf::AdminId(admin.0.id)
    } else if query.admin.is_empty() {
        TrafficOf::Everyone
    } else {
        TrafficOf::AdminNames(query.admin)
    };
    let usages = state.store.traffic_by_node(&of, start, end).await?;
    Ok(Json(UsersUsagesResponse {
        usages: usages.into_iter().map(Into::into).collect(),
    }))
}
