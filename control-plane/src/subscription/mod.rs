//! What subscribers fetch: `GET /sub/{token}` in the format their app wants
//! (or a page, for a browser), and their own info and usage.

pub mod clash;
pub mod endpoints;
pub mod format;
pub mod handler;
mod info;
pub mod links;
pub mod outline;
pub mod page;
pub mod sing_box;
pub mod token;
pub mod xray_json;

use axum::Router;
use axum::routing::get;

use crate::api::{ApiError, AppState};
use crate::store::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sub/{token}", get(handler::auto))
        // Static segments win over `{format}`: info and usage stay theirs.
        .route("/sub/{token}/info", get(info::info))
        .route("/sub/{token}/usage", get(info::usage))
        .route("/sub/{token}/{format}", get(handler::explicit))
}

/// The documented subscription paths (served outside /api).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <info::Doc as utoipa::OpenApi>::openapi()
}

/// The user a subscription token is valid for. Every failure is the same
/// 404, so a token reveals nothing about which check it failed.
pub(crate) async fn token_user(state: &AppState, token: &str) -> Result<User, ApiError> {
    let not_found = || ApiError::NotFound("Not Found".into());
    let (username, issued_at) =
        token::verify(token, &state.subscription_secret).ok_or_else(not_found)?;
    let user = state
        .store
        .user_by_username(&username)
        .await?
        .ok_or_else(not_found)?;
    // A token older than the user (a deleted and re-created name) or than the
    // last revocation is dead.
    if user.created_at > issued_at || user.sub_revoked_at.is_some_and(|r| r > issued_at) {
        return Err(not_found());
    }
    Ok(user)
}

pub use handler::{InactiveRemarks, SubscriptionSettings};
