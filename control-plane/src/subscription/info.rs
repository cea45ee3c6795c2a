//! A subscriber's own account and usage, behind the subscription token:
//! `GET /sub/{token}/info` and `GET /sub/{token}/usage`.

use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::Value;

use crate::api::dates::UsagePeriod;
use crate::api::extract::{Json, Query};
use crate::api::openapi::Detail;
use crate::api::{ApiError, AppState};
use crate::domain::Proxies;

#[derive(utoipa::OpenApi)]
#[openapi(paths(info, usage))]
pub(super) struct Doc;

/// Marzban's SubscriptionUserResponse: the user as its owner sees it, less
/// the owner, the note and the inbound lists.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SubscriptionUserResponse {
    username: String,
    proxies: Proxies,
    expire: Option<i64>,
    data_limit: Option<i64>,
    data_limit_reset_strategy: &'static str,
    sub_updated_at: Option<String>,
    sub_last_user_agent: Option<String>,
    online_at: Option<String>,
    on_hold_expire_duration: Option<i64>,
    on_hold_timeout: Option<String>,
    next_plan: Option<Value>,
    status: &'static str,
    used_traffic: i64,
    lifetime_used_traffic: i64,
    created_at: String,
    links: Vec<String>,
    subscription_url: String,
}

fn datetime(ts: Option<i64>) -> Option<String> {
    ts.map(crate::time_fmt::iso_utc)
}

#[utoipa::path(get, path = "/sub/{token}/info", tag = "Subscription", security(),
    params(("token" = String, Path)),
    responses((status = 200, body = SubscriptionUserResponse), (status = 404, body = Detail)))]
pub async fn info(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<SubscriptionUserResponse>, ApiError> {
    let user = super::token_user(&state, &token).await?;
    let inbounds = state.store.inbounds().await?;
    let hosts = state.store.enabled_hosts().await?;
    let links = super::links::share_links(&user, &inbounds, &hosts);
    let token = super::token::issue_for(&user, &state.subscription_secret);
    Ok(Json(SubscriptionUserResponse {
        subscription_url: format!("{}/sub/{token}", state.subscription_url_prefix),
        links,
        username: user.username,
        proxies: user.proxies,
        expire: user.expire,
        data_limit: user.data_limit,
        data_limit_reset_strategy: user.data_limit_reset_strategy.as_str(),
        sub_updated_at: datetime(user.sub_updated_at),
        sub_last_user_agent: user.sub_last_user_agent,
        online_at: datetime(user.online_at),
        on_hold_expire_duration: user.on_hold_expire_duration,
        on_hold_timeout: datetime(user.on_hold_timeout),
        next_plan: user
            .next_plan
            .as_ref()
            .and_then(|plan| serde_json::to_value(plan).ok()),
        status: user.status.as_str(),
        used_traffic: user.used_traffic,
        lifetime_used_traffic: user.lifetime_used_traffic,
        created_at: crate::time_fmt::iso_utc(user.created_at),
    }))
}

/// Marzban's UserUsageResponse.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserUsageResponse {
    node_id: Option<i64>,
    node_name: String,
    /// Bytes, as billed (times the node's usage coefficient).
    used_traffic: i64,
}

/// Marzban's UserUsagesResponse.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserUsagesResponse {
    username: String,
    usages: Vec<UserUsageResponse>,
}

#[utoipa::path(get, path = "/sub/{token}/usage", tag = "Subscription", security(),
    params(("token" = String, Path), UsagePeriod),
    responses((status = 200, body = UserUsagesResponse), (status = 404, body = Detail),
        (status = 422, body = Detail)))]
/// The subscriber's traffic per node over a period (default: the last 30
/// days), every node listed.
pub async fn usage(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(period): Query<UsagePeriod>,
) -> Result<Json<UserUsagesResponse>, ApiError> {
    let user = super::token_user(&state, &token).await?;
    let (start, end) = period.resolve()?;
    let usages = state
        .store
        .user_usage_by_node(user.id, start, end)
        .await?
        .into_iter()
        .map(|u| UserUsageResponse {
            node_id: Some(u.node_id),
            node_name: u.node_name,
            used_traffic: u.used_traffic,
        })
        .collect();
    Ok(Json(UserUsagesResponse {
        username: user.username,
        usages,
    }))
}
