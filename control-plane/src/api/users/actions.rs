//! One-shot actions on users: usage resets, subscription revocation, the
//! next plan, a new owner.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Detail, UserResponse, change_user, respond, user_not_found};
use crate::api::auth::{CurrentAdmin, SudoAdmin};
use crate::api::extract::{Json, Path, Query};
use crate::api::{ApiError, AppState};
use crate::domain::{Action, Event};
use crate::store::{Owner, Store, User, now};

/// The notifications lifecycle `events` are reported as.
pub(super) fn actions_of(events: &[Event]) -> Vec<Action> {
    events.iter().filter_map(Action::of_event).collect()
}

#[utoipa::path(post, path = "/user/{username}/reset", tag = "User",
    params(("username" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 401, body = Detail),
        (status = 403, body = Detail), (status = 404, body = Detail)))]
/// Resets the user's usage: a limited user is active again (or expired, if
/// it is), the next plan is dropped (the reset replaces it), lifetime usage
/// keeps the bytes.
pub async fn reset_usage(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(username): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    let now = now();
    let response = change_user(&state, &admin, &username, |user| {
        let mut account = user.account();
        let events = account.reset_usage(now);
        user.set_account(account);
        Ok(actions_of(&events))
    })
    .await?;
    tracing::info!(username = %username, by = %admin.0.username, "user usage reset");
    Ok(response)
}

#[utoipa::path(post, path = "/user/{username}/revoke_sub", tag = "User",
    params(("username" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 401, body = Detail),
        (status = 403, body = Detail), (status = 404, body = Detail)))]
/// Revokes the subscription: every subscription URL handed out so far stops
/// working and every proxy credential is regenerated (the old share links
/// die with them), as Marzban does. The response carries the new URL.
pub async fn revoke_sub(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(username): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    let now = now();
    let response = change_user(&state, &admin, &username, |user| {
        // Tokens carry whole seconds; dating the revocation one second ahead
        // kills the tokens of this second too (see `Render::user`).
        user.sub_revoked_at = Some(now + 1);
        user.proxies.regenerate_credentials();
        user.edit_at = Some(now);
        Ok(vec![Action::SubscriptionRevoked])
    })
    .await?;
    tracing::info!(username = %username, by = %admin.0.username, "user subscription revoked");
    Ok(response)
}

#[utoipa::path(post, path = "/user/{username}/active-next", tag = "User",
    params(("username" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 401, body = Detail),
        (status = 403, body = Detail),
        (status = 404, body = Detail, description = "No such user, or `User doesn't have next plan`")))]
/// Applies the user's next plan now, whatever its trigger.
pub async fn active_next(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(username): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    let now = now();
    let response = change_user(&state, &admin, &username, |user| {
        let mut account = user.account();
        let events = account
            .activate_next_plan(now)
            .map_err(|e| ApiError::NotFound(e.to_string()))?;
        user.set_account(account);
        Ok(actions_of(&events))
    })
    .await?;
    tracing::info!(username = %username, by = %admin.0.username, "user's next plan applied");
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SetOwnerQuery {
    /// The new owner.
    admin_username: String,
}

#[utoipa::path(put, path = "/user/{username}/set-owner", tag = "User",
    params(("username" = String, Path), SetOwnerQuery),
    responses((status = 200, body = UserResponse), (status = 401, body = Detail),
        (status = 403, body = Detail),
        (status = 404, body = Detail, description = "`User not found` or `Admin not found`"),
        (status = 422, body = Detail)))]
/// Gives the user to another admin (sudo only).
pub async fn set_owner(
    State(state): State<AppState>,
    by: SudoAdmin,
    Path(username): Path<String>,
    Query(query): Query<SetOwnerQuery>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = set_user_owner(
        &state.store,
        &username,
        &query.admin_username,
        Some(&by.0.username),
    )
    .await?;
    state.nodes.desired_state_changed();
    tracing::info!(username = %username, owner = %query.admin_username, by = %by.0.username,
        "user owner set");
    respond(&state, user).await
}

/// Gives `username` to the admin `owner`, for the API and `nexpoint user
/// set-owner` alike: one store transaction (row locked, new revision, a
/// `user_updated` notification made `by` an admin). A missing user or admin
/// is `NotFound` ("User not found", "Admin not found").
pub async fn set_user_owner(
    store: &Store,
    username: &str,
    owner: &str,
    by: Option<&str>,
) -> Result<User, ApiError> {
    store
        .user_by_username(username)
        .await?
        .ok_or_else(user_not_found)?;
    let owner = store
        .admin_by_username(owner)
        .await?
        .ok_or_else(|| ApiError::NotFound("Admin not found".into()))?;
    store
        .update_user(username, by, |user| {
            user.admin_id = Some(owner.id);
            Ok(vec![Action::UserUpdated])
        })
        .await
        .map_err(|e| match e {
            // Deleted between the two reads.
            ApiError::NotFound(_) => user_not_found(),
            other => other,
        })
}

#[utoipa::path(post, path = "/users/reset", tag = "User",
    responses((status = 200, body = Detail), (status = 401, body = Detail),
        (status = 403, body = Detail)))]
/// Resets every user's usage (sudo only) in one transaction, as
/// `/user/{username}/reset` does for one. Limited users are re-admitted
/// live with one revision: no core restarts.
pub async fn reset_all(
    State(state): State<AppState>,
    by: SudoAdmin,
) -> Result<Json<Value>, ApiError> {
    let now = now();
    let changed = state
        .store
        .update_accounts(Owner::Anyone, Some(&by.0.username), |account| {
            account.reset_usage(now)
        })
        .await?;
    if changed > 0 {
        state.nodes.desired_state_changed();
    }
    tracing::info!(by = %by.0.username, status_changed = changed, "all users' usage reset");
    Ok(Json(json!({ "detail": "Users successfully reset." })))
}
