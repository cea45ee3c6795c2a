//! Admins: login, the current admin, and (sudo only) managing other admins,
//! their users in bulk and their usage counters.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{CurrentAdmin, SudoAdmin, hash_password, verify_password};
use super::extract::{Form, Json, Path, Query};
use super::login_limit::LoginLimiter;
use super::openapi::Detail;
use super::{ApiError, AppState};
use crate::domain::validate;
use crate::store::{Admin, AdminContact, AdminUpdate, NewAdmin, Notice, StoreError, now};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Token {
    access_token: String,
    token_type: &'static str,
}

#[utoipa::path(post, path = "/admin/token", tag = "Admin", security(),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Token), (status = 401, body = Detail),
        (status = 429, body = Detail, description = "Too many failed attempts from this address for this username")))]
/// OAuth2 password flow, as Marzban clients send it.
/// Failed attempts are limited per source address and username (a burst of
/// five, then one per 12 s); a success clears them.
/// Both outcomes are notified with the username and the source address,
/// never the password tried.
pub async fn token(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    Form(form): Form<TokenForm>,
) -> Result<Json<Token>, ApiError> {
    let ip = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let address = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let limiter = extensions.get::<LoginLimiter>();
    if let Some(Err(wait)) = limiter.map(|l| l.check(ip, &form.username)) {
        tracing::warn!(username = %form.username, %address, "admin login rate limited");
        return Err(ApiError::TooManyRequests {
            message: "Too many failed login attempts; try again later".into(),
            retry_after: wait,
        });
    }
    let admin = state.store.admin_by_username(&form.username).await?;
    let admin = admin.filter(|a| verify_password(&form.password, &a.hashed_password));
    if let Some(limiter) = limiter {
        match admin {
            Some(_) => limiter.succeeded(ip, &form.username),
            None => limiter.failed(ip, &form.username),
        }
    }
    let notice = Notice::login(admin.is_some(), &form.username, &address, now());
    state.store.enqueue_notices(&[notice]).await?;
    let Some(admin) = admin else {
        tracing::warn!(username = %form.username, %address, "failed admin login");
        return Err(ApiError::Unauthorized(
            "Incorrect username or password".into(),
        ));
    };
    Ok(Json(Token {
        access_token: state.jwt.issue(&admin)?,
        token_type: "bearer",
    }))
}

/// Marzban's `Admin`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminResponse {
    username: String,
    is_sudo: bool,
    telegram_id: Option<i64>,
    discord_webhook: Option<String>,
    users_usage: i64,
}

impl From<Admin> for AdminResponse {
    fn from(a: Admin) -> Self {
        Self {
            username: a.username,
            is_sudo: a.is_sudo,
            telegram_id: a.telegram_id,
            discord_webhook: a.discord_webhook,
            users_usage: a.users_usage,
        }
    }
}

#[utoipa::path(get, path = "/admin", tag = "Admin",
    responses((status = 200, body = AdminResponse), (status = 401, body = Detail)))]
pub async fn current(
    State(state): State<AppState>,
    admin: CurrentAdmin,
) -> Result<Json<AdminResponse>, ApiError> {
    // Authentication may have used a cached admin; usage totals are read now.
    let fresh = state
        .store
        .admin_by_username(&admin.0.username)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("Could not validate credentials".into()))?;
    Ok(Json(fresh.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AdminCreate {
    username: String,
    password: String,
    is_sudo: bool,
    /// 0 or null: none.
    telegram_id: Option<i64>,
    /// Must start with https://discord.com/; empty or null: none.
    discord_webhook: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AdminModify {
    /// A new password; older tokens of the admin stop working.
    password: Option<String>,
    /// A sudo admin cannot demote itself.
    is_sudo: bool,
    /// 0 clears it; null keeps it.
    telegram_id: Option<i64>,
    /// Empty clears it; null keeps it.
    discord_webhook: Option<String>,
}

const MAX_PASSWORD_CHARS: usize = 128;
const MAX_WEBHOOK_CHARS: usize = 1024;

fn check_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if chars == 0 || chars > MAX_PASSWORD_CHARS {
        return Err(ApiError::validation(
            "password",
            format!("password must be 1 to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Empty means none. Marzban only checks the prefix; requiring the slash
/// also refuses look-alike hosts such as https://discord.com.example.net.
fn webhook(value: String) -> Result<Option<String>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    if !value.starts_with("https://discord.com/")
        || value.chars().count() > MAX_WEBHOOK_CHARS
        || value.contains(char::is_whitespace)
    {
        return Err(ApiError::validation(
            "discord_webhook",
            format!(
                "Discord webhook must start with 'https://discord.com/' and be at most \
                 {MAX_WEBHOOK_CHARS} characters"
            ),
        ));
    }
    Ok(Some(value))
}

fn admin_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("Admin not found".into()),
        other => other.into(),
    }
}

async fn load(state: &AppState, username: &str) -> Result<Admin, ApiError> {
    state
        .store
        .admin_by_username(username)
        .await?
        .ok_or_else(|| ApiError::NotFound("Admin not found".into()))
}

#[utoipa::path(post, path = "/admin", tag = "Admin", request_body = AdminCreate,
    responses((status = 200, body = AdminResponse), (status = 403, body = Detail),
        (status = 409, body = Detail), (status = 422, body = Detail)))]
pub async fn create(
    State(state): State<AppState>,
    by: SudoAdmin,
    Json(body): Json<AdminCreate>,
) -> Result<Json<AdminResponse>, ApiError> {
    validate::username(&body.username).map_err(|m| ApiError::validation("username", m))?;
    check_password(&body.password)?;
    let contact = AdminContact {
        telegram_id: body.telegram_id.filter(|id| *id != 0),
        discord_webhook: body.discord_webhook.map(webhook).transpose()?.flatten(),
    };
    let hashed_password = hash_password(&body.password)?;
    let admin = state
        .store
        .create_admin_with_contact(
            NewAdmin {
                username: &body.username,
                hashed_password: &hashed_password,
                is_sudo: body.is_sudo,
            },
            contact,
        )
        .await?;
    tracing::info!(admin = %admin.username, by = %by.0.username, sudo = admin.is_sudo, "admin created");
    Ok(Json(admin.into()))
}

#[utoipa::path(put, path = "/admin/{username}", tag = "Admin", request_body = AdminModify,
    params(("username" = String, Path)),
    responses((status = 200, body = AdminResponse), (status = 403, body = Detail),
        (status = 404, body = Detail), (status = 422, body = Detail)))]
pub async fn modify(
    State(state): State<AppState>,
    by: SudoAdmin,
    Path(username): Path<String>,
    Json(body): Json<AdminModify>,
) -> Result<Json<AdminResponse>, ApiError> {
    if let Some(password) = &body.password {
        check_password(password)?;
    }
    let discord_webhook = body.discord_webhook.map(webhook).transpose()?;
    let target = load(&state, &username).await?;
    let is_self = target.id == by.0.id;
    if target.is_sudo && !is_self {
        return Err(ApiError::Forbidden(
            "You're not allowed to edit another sudoer's account.".into(),
        ));
    }
    let hashed_password = body.password.as_deref().map(hash_password).transpose()?;
    let update = AdminUpdate {
        // Only reachable sudo target is oneself: never demote the last way in.
        is_sudo: target.is_sudo || body.is_sudo,
        contact: AdminContact {
            telegram_id: match body.telegram_id {
                None => target.telegram_id,
                Some(0) => None,
                Some(id) => Some(id),
            },
            discord_webhook: discord_webhook.unwrap_or(target.discord_webhook),
        },
        hashed_password: hashed_password.as_deref(),
    };
    let admin = state
        .store
        .update_admin(&target.username, update)
        .await
        .map_err(admin_not_found)?;
    tracing::info!(
        admin = %admin.username,
        by = %by.0.username,
        password_changed = hashed_password.is_some(),
        "admin modified"
    );
    Ok(Json(admin.into()))
}

#[utoipa::path(delete, path = "/admin/{username}", tag = "Admin",
    params(("username" = String, Path)),
    responses((status = 200, body = Detail), (status = 403, body = Detail),
        (status = 404, body = Detail)))]
/// The admin's users stay, without an owner.
pub async fn remove(
    State(state): State<AppState>,
    by: SudoAdmin,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let target = load(&state, &username).await?;
    if target.is_sudo {
        return Err(ApiError::Forbidden(
            "You're not allowed to delete sudo accounts.".into(),
        ));
    }
    let admin = state
        .store
        .delete_admin(&target.username)
        .await
        .map_err(admin_not_found)?;
    tracing::info!(admin = %admin.username, by = %by.0.username, "admin deleted");
    Ok(Json(json!({ "detail": "Admin removed successfully" })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminsQuery {
    offset: Option<i64>,
    /// 0 or absent: no limit.
    limit: Option<i64>,
    /// A part of the username, in any case.
    username: Option<String>,
}

/// Marzban treats 0 as "none" for both.
pub(super) fn page(
    offset: Option<i64>,
    limit: Option<i64>,
) -> Result<(i64, Option<i64>), ApiError> {
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::validation("offset", "must be 0 or greater"));
    }
    let limit = limit.unwrap_or(0);
    if limit < 0 {
        return Err(ApiError::validation("limit", "must be 0 or greater"));
    }
    Ok((offset, (limit > 0).then_some(limit)))
}

#[utoipa::path(get, path = "/admins", tag = "Admin", params(AdminsQuery),
    responses((status = 200, body = Vec<AdminResponse>), (status = 403, body = Detail),
        (status = 422, body = Detail)))]
pub async fn list(
    State(state): State<AppState>,
    _: SudoAdmin,
    Query(query): Query<AdminsQuery>,
) -> Result<Json<Vec<AdminResponse>>, ApiError> {
    let (offset, limit) = page(query.offset, query.limit)?;
    let admins = state
        .store
        .admins(query.username.as_deref(), offset, limit)
        .await?;
    Ok(Json(admins.into_iter().map(Into::into).collect()))
}

#[utoipa::path(post, path = "/admin/{username}/users/disable", tag = "Admin",
    params(("username" = String, Path)),
    responses((status = 200, body = Detail), (status = 403, body = Detail),
        (status = 404, body = Detail)))]
/// Disables every active or on-hold user of the admin. Nodes drop them live:
/// no core restarts.
pub async fn disable_users(
    State(state): State<AppState>,
    by: SudoAdmin,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let target = load(&state, &username).await?;
    let changed = state
        .store
        .disable_admin_users(target.id, Some(&by.0.username))
        .await?;
    if changed > 0 {
        state.nodes.desired_state_changed();
    }
    tracing::info!(admin = %target.username, by = %by.0.username, changed, "admin's users disabled");
    Ok(Json(json!({ "detail": "Users successfully disabled" })))
}

#[utoipa::path(post, path = "/admin/{username}/users/activate", tag = "Admin",
    params(("username" = String, Path)),
    responses((status = 200, body = Detail), (status = 403, body = Detail),
        (status = 404, body = Detail)))]
/// Re-enables every disabled user of the admin: on hold when their plan never
/// started, otherwise active (or limited/expired when already past a limit).
pub async fn activate_users(
    State(state): State<AppState>,
    by: SudoAdmin,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let target = load(&state, &username).await?;
    let changed = state
        .store
        .activate_admin_users(target.id, Some(&by.0.username))
        .await?;
    if changed > 0 {
        state.nodes.desired_state_changed();
    }
    tracing::info!(admin = %target.username, by = %by.0.username, changed, "admin's users activated");
    Ok(Json(json!({ "detail": "Users successfully activated" })))
}

#[utoipa::path(post, path = "/admin/usage/reset/{username}", tag = "Admin",
    params(("username" = String, Path)),
    responses((status = 200, body = AdminResponse), (status = 403, body = Detail),
        (status = 404, body = Detail)))]
pub async fn reset_usage(
    State(state): State<AppState>,
    by: SudoAdmin,
    Path(username): Path<String>,
) -> Result<Json<AdminResponse>, ApiError> {
    let admin = state
        .store
        .reset_admin_usage(&username)
        .await
        .map_err(admin_not_found)?;
    tracing::info!(admin = %admin.username, by = %by.0.username, "admin usage reset");
    Ok(Json(admin.into()))
}

#[utoipa::path(get, path = "/admin/usage/{username}", tag = "Admin",
    params(("username" = String, Path)),
    responses((status = 200, body = i64, description = "Bytes used by the admin's users"),
        (status = 403, body = Detail), (status = 404, body = Detail)))]
pub async fn usage(
    State(state): State<AppState>,
    _: SudoAdmin,
    Path(username): Path<String>,
) -> Result<Json<i64>, ApiError> {
    Ok(Json(load(&state, &username).await?.users_usage))
}
