//! What subscribers fetch: `GET /sub/{token}`, and their own info and usage.

pub mod endpoints;
mod info;
pub mod links;
pub mod token;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::api::{ApiError, AppState};
use crate::store::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sub/{token}", get(subscription))
        .route("/sub/{token}/info", get(info::info))
        .route("/sub/{token}/usage", get(info::usage))
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

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn subscription(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user = token_user(&state, &token).await?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    state
        .store
        .record_subscription_fetch(user.id, &user_agent)
        .await?;

    let inbounds = state.store.inbounds().await?;
    let hosts = state.store.enabled_hosts().await?;
    let body = STANDARD.encode(links::share_links(&user, &inbounds, &hosts).join("\n"));

    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "subscription-userinfo",
        header_value(format!(
            "upload=0; download={}; total={}; expire={}",
            user.used_traffic,
            user.data_limit.unwrap_or(0),
            user.expire.unwrap_or(0)
        )),
    );
    h.insert(
        "profile-title",
        header_value(format!("base64:{}", STANDARD.encode(&user.username))),
    );
    h.insert("profile-update-interval", HeaderValue::from_static("12"));
    h.insert(
        header::CONTENT_DISPOSITION,
        header_value(format!("attachment; filename=\"{}\"", user.username)),
    );
    Ok(response)
}
