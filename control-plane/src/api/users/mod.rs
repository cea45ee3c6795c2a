//! Users: Marzban's `/api/user` and `/api/users` endpoints. Lifecycle rules
//! (statuses, quotas, on hold, next plans, resets) are the domain's
//! (`crate::domain::lifecycle`); these handlers parse, authorize, and call
//! it inside a store transaction.

pub(super) mod actions;
pub(super) mod edit;
pub(super) mod expired;
pub(super) mod usage;

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::CurrentAdmin;
use super::extract::{Json, Path, Query};
use super::openapi::Detail;
use super::{ApiError, AppState};
use crate::domain::proxies::{SHADOWSOCKS_METHODS, VLESS_FLOWS};
use crate::domain::{
    Account, Action, FieldError, Inbound, NewAccount, NextPlan, Proxies, ResetStrategy, UserStatus,
    validate,
};
use crate::store::{Sort, SortKey, Store, StoreError, User, UserDraft, UserFilter, now};
use crate::subscription;

/// The body of `POST /api/user` (Marzban's UserCreate); `nexpoint user
/// create` builds the same from its flags or takes it as `--json-body`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct UserCreate {
    pub username: String,
    #[serde(default)]
    pub proxies: Proxies,
    /// Inbound tags by protocol; a protocol left out means all its inbounds.
    #[serde(default)]
    pub inbounds: BTreeMap<String, Vec<String>>,
    pub expire: Option<i64>,
    pub data_limit: Option<i64>,
    pub data_limit_reset_strategy: Option<ResetStrategy>,
    pub status: Option<UserStatus>,
    pub note: Option<String>,
    pub on_hold_expire_duration: Option<i64>,
    pub on_hold_timeout: Option<String>,
    /// Days an expired (or limited) user is kept before deletion; negative:
    /// never; absent: the global setting.
    pub auto_delete_in_days: Option<i64>,
    pub next_plan: Option<NextPlan>,
}

/// Marzban's UserResponse.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    username: String,
    proxies: Proxies,
    expire: Option<i64>,
    data_limit: Option<i64>,
    data_limit_reset_strategy: &'static str,
    inbounds: BTreeMap<String, Vec<String>>,
    note: Option<String>,
    sub_updated_at: Option<String>,
    sub_last_user_agent: Option<String>,
    online_at: Option<String>,
    on_hold_expire_duration: Option<i64>,
    on_hold_timeout: Option<String>,
    auto_delete_in_days: Option<i64>,
    next_plan: Option<NextPlan>,
    status: &'static str,
    used_traffic: i64,
    lifetime_used_traffic: i64,
    created_at: String,
    edit_at: Option<String>,
    links: Vec<String>,
    subscription_url: String,
    excluded_inbounds: BTreeMap<String, Vec<String>>,
    admin: Option<Value>,
}

impl UserResponse {
    pub fn subscription_url(&self) -> &str {
        &self.subscription_url
    }
}

fn datetime(ts: Option<i64>) -> Option<String> {
    ts.map(crate::time_fmt::iso_utc)
}

fn parse_datetime(field: &str, value: &str) -> Result<i64, ApiError> {
    crate::time_fmt::parse_iso_utc(value)
        .ok_or_else(|| ApiError::validation(field, "must be an ISO 8601 date and time"))
}

/// The domain's rejection of a field, as a 422.
fn field_error(e: FieldError) -> ApiError {
    ApiError::validation(e.field, e.message)
}

fn check_note(note: Option<&str>) -> Result<(), ApiError> {
    note.map_or(Ok(()), validate::note)
        .map_err(|m| ApiError::validation("note", m))
}

const MAX_PASSWORD_CHARS: usize = 128;

/// Refuses credentials a core would reject (ids that are not UUIDs, empty,
/// overlong or control-character passwords) and shadowsocks methods and
/// vless flows the cores do not offer.
fn check_proxies(proxies: &Proxies) -> Result<(), ApiError> {
    let ids = [
        (
            "vmess",
            proxies.vmess.as_ref().and_then(|v| v.id.as_deref()),
        ),
        (
            "vless",
            proxies.vless.as_ref().and_then(|v| v.id.as_deref()),
        ),
    ];
    for (protocol, id) in ids {
        if let Some(id) = id
            && uuid::Uuid::parse_str(id).is_err()
        {
            return Err(ApiError::validation(
                "proxies",
                format!("{protocol} id must be a UUID"),
            ));
        }
    }
    let passwords = [
        (
            "trojan",
            proxies.trojan.as_ref().and_then(|t| t.password.as_deref()),
        ),
        (
            "shadowsocks",
            proxies
                .shadowsocks
                .as_ref()
                .and_then(|s| s.password.as_deref()),
        ),
    ];
    for (protocol, password) in passwords {
        if let Some(password) = password
            && (password.is_empty()
                || password.chars().count() > MAX_PASSWORD_CHARS
                || password.chars().any(char::is_control))
        {
            return Err(ApiError::validation(
                "proxies",
                format!(
                    "{protocol} password must be 1 to {MAX_PASSWORD_CHARS} characters, \
                     without control characters"
                ),
            ));
        }
    }
    if let Some(ss) = &proxies.shadowsocks
        && !SHADOWSOCKS_METHODS.contains(&ss.method.as_str())
    {
        return Err(ApiError::validation(
            "proxies",
            format!("unsupported shadowsocks method {:?}", ss.method),
        ));
    }
    if let Some(vless) = &proxies.vless
        && !VLESS_FLOWS.contains(&vless.flow.as_str())
    {
        return Err(ApiError::validation(
            "proxies",
            format!("unsupported vless flow {:?}", vless.flow),
        ));
    }
    Ok(())
}

/// Inbound tags the user is in, by protocol.
fn included_inbounds(user: &User, inbounds: &[Inbound]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for protocol in user.proxies.protocols() {
        let excluded = user.excluded_inbounds.get(protocol.as_str());
        let tags: Vec<String> = inbounds
            .iter()
            .filter(|i| i.protocol == protocol)
            .filter(|i| excluded.is_none_or(|ex| !ex.contains(&i.tag)))
            .map(|i| i.tag.clone())
            .collect();
        out.insert(protocol.as_str().to_owned(), tags);
    }
    out
}

/// What rendering users needs: the current configuration, loaded once
/// however many users it renders, and how subscription URLs are made.
pub struct Render {
    inbounds: std::sync::Arc<Vec<Inbound>>,
    hosts: Vec<crate::store::Host>,
    subscription_secret: String,
    subscription_url_prefix: String,
}

impl Render {
    /// For the API, with the daemon's secret and public prefix.
    async fn for_state(state: &AppState) -> Result<Self, ApiError> {
        Ok(Self::load(
            &state.store,
            &state.subscription_secret,
            &state.subscription_url_prefix,
        )
        .await?)
    }

    /// Users rendered with subscription URLs signed by `subscription_secret`
    /// under `subscription_url_prefix` (relative without one).
    pub async fn load(
        store: &Store,
        subscription_secret: &str,
        subscription_url_prefix: &str,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            inbounds: store.inbounds().await?,
            hosts: store.enabled_hosts().await?,
            subscription_secret: subscription_secret.to_owned(),
            subscription_url_prefix: subscription_url_prefix.trim_end_matches('/').to_owned(),
        })
    }

    pub fn user(&self, user: User) -> UserResponse {
        let links = subscription::links::share_links(&user, &self.inbounds, &self.hosts);
        let token = subscription::token::issue_for(&user, &self.subscription_secret);
        UserResponse {
            inbounds: included_inbounds(&user, &self.inbounds),
            subscription_url: format!("{}/sub/{token}", self.subscription_url_prefix),
            links,
            username: user.username,
            proxies: user.proxies,
            expire: user.expire,
            data_limit: user.data_limit,
            data_limit_reset_strategy: user.data_limit_reset_strategy.as_str(),
            note: user.note,
            sub_updated_at: datetime(user.sub_updated_at),
            sub_last_user_agent: user.sub_last_user_agent,
            online_at: datetime(user.online_at),
            on_hold_expire_duration: user.on_hold_expire_duration,
            on_hold_timeout: datetime(user.on_hold_timeout),
            auto_delete_in_days: user.auto_delete_in_days,
            next_plan: user.next_plan,
            status: user.status.as_str(),
            used_traffic: user.used_traffic,
            lifetime_used_traffic: user.lifetime_used_traffic,
            created_at: crate::time_fmt::iso_utc(user.created_at),
            edit_at: datetime(user.edit_at),
            excluded_inbounds: user.excluded_inbounds,
            admin: user
                .admin_username
                .map(|username| json!({ "username": username })),
        }
    }
}

async fn respond(state: &AppState, user: User) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(Render::for_state(state).await?.user(user)))
}

/// Turns the requested inclusion lists into stored exclusion lists, refusing
/// tags that are not inbounds of that protocol.
fn exclusions(
    requested: &BTreeMap<String, Vec<String>>,
    proxies: &Proxies,
    inbounds: &[Inbound],
) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let mut excluded = BTreeMap::new();
    for (protocol, tags) in requested {
        let Some(p) = crate::domain::ProxyProtocol::parse(protocol) else {
            return Err(ApiError::validation(
                "inbounds",
                format!("unknown protocol {protocol:?}"),
            ));
        };
        if !proxies.protocols().contains(&p) {
            return Err(ApiError::validation(
                "inbounds",
                format!("{protocol} inbounds given but the user has no {protocol} proxy"),
            ));
        }
        let of_protocol: Vec<&Inbound> = inbounds.iter().filter(|i| i.protocol == p).collect();
        for tag in tags {
            if !of_protocol.iter().any(|i| &i.tag == tag) {
                return Err(ApiError::BadRequest(format!("Inbound {tag} doesn't exist")));
            }
        }
        let left_out: Vec<String> = of_protocol
            .iter()
            .filter(|i| !tags.contains(&i.tag))
            .map(|i| i.tag.clone())
            .collect();
        if !left_out.is_empty() {
            excluded.insert(protocol.clone(), left_out);
        }
    }
    Ok(excluded)
}

#[utoipa::path(post, path = "/user", tag = "User", request_body = UserCreate,
    responses((status = 200, body = UserResponse), (status = 400, body = Detail),
        (status = 401, body = Detail), (status = 409, body = Detail),
        (status = 422, body = Detail)))]
/// Creates a user owned by the calling admin. Missing credentials are
/// generated; the status, quota, expiry, hold and next plan are validated
/// and settled by the domain (an expiry already past makes it expired).
pub async fn create(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Json(body): Json<UserCreate>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = create_user(&state.store, body, Some(admin.0.id)).await?;
    state.nodes.desired_state_changed();
    tracing::info!(username = %user.username, by = %admin.0.username, "user created");
    respond(&state, user).await
}

/// Creates a user owned by `owner_id`, for `POST /api/user` and `nexpoint
/// user create` alike: validated as the handler documents, stored with a
/// new revision and the `user_created` notification in one transaction.
pub async fn create_user(
    store: &Store,
    body: UserCreate,
    owner_id: Option<i64>,
) -> Result<User, ApiError> {
    validate::username(&body.username).map_err(|m| ApiError::validation("username", m))?;
    check_note(body.note.as_deref())?;
    let mut proxies = body.proxies;
    if proxies.is_empty() {
        return Err(ApiError::validation(
            "proxies",
            "Each user needs at least one proxy",
        ));
    }
    proxies.fill_missing_credentials();
    check_proxies(&proxies)?;
    let on_hold_timeout = body
        .on_hold_timeout
        .as_deref()
        .map(|v| parse_datetime("on_hold_timeout", v))
        .transpose()?;
    let (account, _events) = Account::create(
        NewAccount {
            status: body.status,
            data_limit: body.data_limit,
            expire: body.expire,
            data_limit_reset_strategy: body.data_limit_reset_strategy.unwrap_or_default(),
            on_hold_expire_duration: body.on_hold_expire_duration,
            on_hold_timeout,
            next_plan: body.next_plan,
            auto_delete_in_days: body.auto_delete_in_days,
        },
        now(),
    )
    .map_err(field_error)?;
    let inbounds = store.inbounds().await?;
    let excluded_inbounds = exclusions(&body.inbounds, &proxies, &inbounds)?;
    Ok(store
        .insert_user(UserDraft {
            username: body.username,
            proxies,
            excluded_inbounds,
            note: body.note,
            admin_id: owner_id,
            account,
        })
        .await?)
}

fn user_not_found() -> ApiError {
    ApiError::NotFound("User not found".into())
}

/// The user, if the admin may manage it: 404 `User not found`, 403 `You're
/// not allowed` (Marzban's `get_validated_user`).
async fn load_manageable(
    state: &AppState,
    admin: &CurrentAdmin,
    username: &str,
) -> Result<User, ApiError> {
    let user = state
        .store
        .user_by_username(username)
        .await?
        .ok_or_else(user_not_found)?;
    if !admin.may_manage(user.admin_id) {
        return Err(ApiError::forbidden());
    }
    Ok(user)
}

/// Changes a user the admin may manage in one store transaction (row
/// locked, new revision, the notifications of the actions `change`
/// returns), tells the nodes, and renders the result. `change` failing
/// writes nothing.
async fn change_user(
    state: &AppState,
    admin: &CurrentAdmin,
    username: &str,
    change: impl FnOnce(&mut User) -> Result<Vec<Action>, ApiError>,
) -> Result<Json<UserResponse>, ApiError> {
    load_manageable(state, admin, username).await?;
    let user = state
        .store
        .update_user(username, Some(&admin.0.username), |user| {
            // Re-checked under the lock: the owner may have changed since.
            if !admin.may_manage(user.admin_id) {
                return Err(ApiError::forbidden());
            }
            change(user)
        })
        .await?;
    state.nodes.desired_state_changed();
    respond(state, user).await
}

#[utoipa::path(get, path = "/user/{username}", tag = "User",
    params(("username" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 401, body = Detail),
        (status = 403, body = Detail), (status = 404, body = Detail)))]
pub async fn get_one(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(username): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = load_manageable(&state, &admin, &username).await?;
    respond(&state, user).await
}

#[utoipa::path(delete, path = "/user/{username}", tag = "User",
    params(("username" = String, Path)),
    responses((status = 200, body = Detail), (status = 401, body = Detail),
        (status = 403, body = Detail), (status = 404, body = Detail)))]
pub async fn delete(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = load_manageable(&state, &admin, &username).await?;
    state
        .store
        .delete_user(&user.username, Some(&admin.0.username))
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => user_not_found(),
            other => other.into(),
        })?;
    state.nodes.desired_state_changed();
    tracing::info!(username = %user.username, by = %admin.0.username, "user deleted");
    Ok(Json(json!({ "detail": "User successfully deleted" })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
    /// Exact usernames; repeat the parameter for several.
    #[serde(default)]
    username: Vec<String>,
    /// Substring of the username or the note.
    #[serde(default)]
    search: Option<String>,
    /// Owning admins' usernames; repeat for several (sudo only).
    #[serde(default)]
    admin: Vec<String>,
    #[serde(default)]
    status: Option<UserStatus>,
    /// Comma list of username, used_traffic, data_limit, expire, created_at,
    /// each optionally prefixed with `-` for descending.
    #[serde(default)]
    sort: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UsersResponse {
    users: Vec<UserResponse>,
    total: i64,
}

fn parse_sort(sort: Option<&str>) -> Result<Vec<Sort>, ApiError> {
    let Some(sort) = sort.filter(|s| !s.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    sort.split(',')
        .map(|part| {
            let part = part.trim();
            let (descending, name) = match part.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, part),
            };
            SortKey::parse(name)
                .map(|key| Sort { key, descending })
                .ok_or_else(|| {
                    ApiError::validation(
                        "sort",
                        format!(
                            "{name:?} is not one of username, used_traffic, data_limit, expire, created_at"
                        ),
                    )
                })
        })
        .collect()
}

#[utoipa::path(get, path = "/users", tag = "User", params(ListParams),
    responses((status = 200, body = UsersResponse), (status = 401, body = Detail),
        (status = 422, body = Detail)))]
pub async fn list(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Query(params): Query<ListParams>,
) -> Result<Json<UsersResponse>, ApiError> {
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::validation("offset", "must not be negative"));
    }
    if params.limit.is_some_and(|l| l < 0) {
        return Err(ApiError::validation("limit", "must not be negative"));
    }
    let filter = UserFilter {
        usernames: params.username,
        search: params.search,
        // A non-sudo admin sees its own users whatever it asks for.
        admins: if admin.0.is_sudo {
            params.admin
        } else {
            Vec::new()
        },
        owner_id: (!admin.0.is_sudo).then_some(admin.0.id),
        status: params.status,
        sort: parse_sort(params.sort.as_deref())?,
        offset,
        limit: params.limit,
    };
    let (users, total) = state.store.list_users(&filter).await?;
    let render = Render::for_state(&state).await?;
    Ok(Json(UsersResponse {
        users: users.into_iter().map(|u| render.user(u)).collect(),
        total,
    }))
}
