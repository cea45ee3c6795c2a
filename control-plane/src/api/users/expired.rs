//! `GET` and `DELETE /api/users/expired`: users whose expiry passed within a
//! period.

use axum::extract::State;
use serde::Deserialize;

use super::{Detail, parse_datetime};
use crate::api::auth::CurrentAdmin;
use crate::api::extract::{Json, Query};
use crate::api::{ApiError, AppState};
use crate::store::{Owner, now};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExpiredQuery {
    /// Expired at or after this time (ISO 8601); default: any time.
    expired_after: Option<String>,
    /// Expired at or before this time; default and at most: now.
    expired_before: Option<String>,
}

impl ExpiredQuery {
    /// The period as unix seconds. Its end is never after now: a user whose
    /// expiry is still ahead has not expired, whatever its status (Marzban
    /// would list a limited user with time left).
    fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let parse = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| parse_datetime(field, v))
                .transpose()
        };
        let after = parse("expired_after", &self.expired_after)?;
        let before = parse("expired_before", &self.expired_before)?;
        if let (Some(a), Some(b)) = (after, before)
            && b < a
        {
            return Err(ApiError::validation(
                "expired_before",
                "must not be before expired_after",
            ));
        }
        let now = now();
        Ok((after.unwrap_or(0), before.unwrap_or(now).min(now)))
    }
}

fn owner(admin: &CurrentAdmin) -> Owner {
    if admin.0.is_sudo {
        Owner::Anyone
    } else {
        Owner::Admin(admin.0.id)
    }
}

#[utoipa::path(get, path = "/users/expired", tag = "User", params(ExpiredQuery),
    responses((status = 200, body = Vec<String>, description = "Usernames"),
        (status = 401, body = Detail), (status = 422, body = Detail)))]
/// Usernames of the users (the caller's own, unless sudo) that are out of
/// the cores with an expiry within the period: expired, or limited and
/// past their expiry too.
pub async fn list(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Query(query): Query<ExpiredQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    let (after, before) = query.resolve()?;
    let users = state
        .store
        .expired_users(owner(&admin), after, before)
        .await?;
    Ok(Json(users.into_iter().map(|u| u.username).collect()))
}

#[utoipa::path(delete, path = "/users/expired", tag = "User", params(ExpiredQuery),
    responses((status = 200, body = Vec<String>, description = "Usernames deleted"),
        (status = 401, body = Detail),
        (status = 404, body = Detail, description = "No expired users found in the specified date range"),
        (status = 422, body = Detail)))]
/// Deletes the users `GET /users/expired` lists, in one transaction, and
/// returns their usernames.
pub async fn delete(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Query(query): Query<ExpiredQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    let (after, before) = query.resolve()?;
    let users = state
        .store
        .delete_expired_users(owner(&admin), Some(&admin.0.username), after, before)
        .await?;
    if users.is_empty() {
        return Err(ApiError::NotFound(
            "No expired users found in the specified date range".into(),
        ));
    }
    state.nodes.desired_state_changed();
    let usernames: Vec<String> = users.into_iter().map(|u| u.username).collect();
    tracing::info!(by = %admin.0.username, count = usernames.len(), "expired users deleted");
    Ok(Json(usernames))
}
