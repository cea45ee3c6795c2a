//! `GET /sub/{token}` and `GET /sub/{token}/{format}`: the user's endpoints
//! in the format her app wants, with the headers apps read (usage, expiry,
//! title, update interval, support and page links).

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::endpoints::{Credentials, Endpoint, endpoints, remark};
use super::format::{Format, FormatRules, wants_html};
use super::{clash, links, outline, page, sing_box, token_user, xray_json};
use crate::api::{ApiError, AppState};
use crate::domain::{Inbound, UserStatus};
use crate::store::{Host, User, now};

/// How subscriptions are served; `nexpoint serve` flags.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    pub rules: FormatRules,
    /// `profile-update-interval`, in hours.
    pub update_interval_hours: u32,
    /// `support-url`, when set.
    pub support_url: Option<String>,
    /// `profile-web-page-url`; the subscription URL itself when unset.
    pub page_url: Option<String>,
    /// The remark a user who is not served sees instead of working
    /// endpoints, per status; remark variables apply.
    pub inactive_remarks: InactiveRemarks,
    /// Operator templates (`subscription/index.html`, `home/index.html`).
    pub templates_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct InactiveRemarks {
    pub expired: String,
    pub limited: String,
    pub disabled: String,
}

impl Default for InactiveRemarks {
    fn default() -> Self {
        Self {
            expired: "⌛️ {USERNAME}: subscription expired on {EXPIRE_DATE}".into(),
            limited: "🪫 {USERNAME}: data limit of {DATA_LIMIT} reached".into(),
            disabled: "❌ {USERNAME}: subscription disabled".into(),
        }
    }
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        Self {
            rules: FormatRules::default(),
            update_interval_hours: 12,
            support_url: None,
            page_url: None,
            inactive_remarks: InactiveRemarks::default(),
            templates_dir: None,
        }
    }
}

pub async fn auto(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(&state, &token, &headers, None).await
}

pub async fn explicit(
    State(state): State<AppState>,
    Path((token, format)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = Format::parse(&format).ok_or_else(|| {
        let known: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        ApiError::NotFound(format!(
            "Unknown subscription format {format:?}; one of: {}",
            known.join(", ")
        ))
    })?;
    serve(&state, &token, &headers, Some(format)).await
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn serve(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
    explicit: Option<Format>,
) -> Result<Response, ApiError> {
    let user = token_user(state, token).await?;
    let settings = &state.subscription;
    let inbounds = state.store.inbounds().await?;
    let hosts = state.store.enabled_hosts().await?;
    let now = now();
    let url = subscription_url(state, token, headers);

    if explicit.is_none() && wants_html(header_text(headers, header::ACCEPT)) {
        // A person looking, not an app updating: not recorded as a fetch.
        let working = served_endpoints(&user, &inbounds, &hosts, now);
        let links: Vec<(String, String)> = working
            .iter()
            .map(|e| (e.remark.clone(), links::share_link(e)))
            .collect();
        let html = page::render(&page::PageContext {
            user: &user,
            links: &links,
            subscription_url: &url,
            accept_language: header_text(headers, header::ACCEPT_LANGUAGE),
            now,
            templates_dir: settings.templates_dir.as_deref(),
        })
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
        return Ok(Html(html).into_response());
    }

    let user_agent = header_text(headers, header::USER_AGENT);
    let format = explicit.unwrap_or_else(|| settings.rules.select(user_agent));
    state
        .store
        .record_subscription_fetch(user.id, user_agent)
        .await?;
    let (body, content_type) = document(
        &user,
        &inbounds,
        &hosts,
        now,
        format,
        &settings.inactive_remarks,
    )
    .ok_or_else(|| ApiError::NotFound(NO_ACCESS_KEY.into()))?;
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in subscription_headers(&user, settings, &url) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            h.insert(name, value);
        }
    }
    Ok(response)
}

/// Why an Outline subscription has nothing to serve.
pub const NO_ACCESS_KEY: &str = "This subscription has no Shadowsocks access key";

/// The subscription document in `format` and its content type: what
/// `/sub/{token}/{format}` serves and `nexpoint subscription get-config`
/// prints. A user who is not served gets endpoints whose remarks say why.
/// `None`: an Outline document for a user without Shadowsocks.
pub fn document(
    user: &User,
    inbounds: &[Inbound],
    hosts: &[Host],
    now: i64,
    format: Format,
    remarks: &InactiveRemarks,
) -> Option<(String, &'static str)> {
    let endpoints = if user.status.is_served() {
        served_endpoints(user, inbounds, hosts, now)
    } else {
        inactive_endpoints(user, inbounds, hosts, now, remarks)
    };
    Some(match format {
        Format::Links => (links::base64_list(&endpoints), "text/plain; charset=utf-8"),
        Format::XrayJson => (xray_json::render(&endpoints), "application/json"),
        Format::Clash => (clash::render(&endpoints, false), "text/yaml; charset=utf-8"),
        Format::ClashMeta => (clash::render(&endpoints, true), "text/yaml; charset=utf-8"),
        Format::SingBox => (sing_box::render(&endpoints), "application/json"),
        Format::Outline => (outline::render(&endpoints)?, "application/json"),
    })
}

/// The headers proxy apps read from a subscription response.
pub fn subscription_headers(
    user: &User,
    settings: &SubscriptionSettings,
    url: &str,
) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (
            "subscription-userinfo",
            format!(
                "upload=0; download={}; total={}; expire={}",
                user.used_traffic,
                user.data_limit.unwrap_or(0).max(0),
                user.expire.unwrap_or(0).max(0)
            ),
        ),
        (
            "profile-title",
            format!("base64:{}", STANDARD.encode(&user.username)),
        ),
        (
            "profile-update-interval",
            settings.update_interval_hours.to_string(),
        ),
        (
            "profile-web-page-url",
            settings.page_url.clone().unwrap_or_else(|| url.to_owned()),
        ),
        (
            "content-disposition",
            // The name apps show for the profile: ASCII only, no quotes.
            format!(
                "attachment; filename=\"{}\"",
                user.username.replace(['"', '\\'], "_")
            ),
        ),
    ];
    if let Some(support) = &settings.support_url {
        out.push(("support-url", support.clone()));
    }
    out
}

/// The absolute URL of this subscription: the configured public prefix, or
/// the host the request came to.
fn subscription_url(state: &AppState, token: &str, headers: &HeaderMap) -> String {
    let prefix = state.subscription_url_prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        return format!("{prefix}/sub/{token}");
    }
    let host = header_text(headers, header::HOST);
    let scheme = match header_text(headers, "x-forwarded-proto".parse().expect("valid")) {
        "https" => "https",
        _ => "http",
    };
    format!("{scheme}://{host}/sub/{token}")
}

fn served_endpoints(user: &User, inbounds: &[Inbound], hosts: &[Host], now: i64) -> Vec<Endpoint> {
    endpoints(user, inbounds, hosts, now, &mut rand::thread_rng())
}

/// What a user who is not served gets: one endpoint per protocol she has,
/// pointing nowhere (127.0.0.1:1), whose remark says why. Apps show the
/// remark as the server's name, so the subscriber reads it where she would
/// pick a server; every format renders it like any other endpoint.
fn inactive_endpoints(
    user: &User,
    inbounds: &[Inbound],
    hosts: &[Host],
    now: i64,
    remarks: &InactiveRemarks,
) -> Vec<Endpoint> {
    let template = match user.status {
        UserStatus::Expired => &remarks.expired,
        UserStatus::Limited => &remarks.limited,
        _ => &remarks.disabled,
    };
    let mut out: Vec<Endpoint> = Vec::new();
    for mut e in served_endpoints(user, inbounds, hosts, now) {
        if out.iter().any(|o| o.protocol() == e.protocol()) {
            continue;
        }
        let inbound = inbounds
            .iter()
            .find(|i| i.protocol == e.protocol())
            .expect("an endpoint comes from an inbound");
        e.remark = remark(template, user, inbound, "127.0.0.1", now);
        e.address = "127.0.0.1".into();
        e.port = 1;
        out.push(e);
    }
    if out.is_empty() {
        out.push(Endpoint::new(
            template.replace("{USERNAME}", &user.username),
            "127.0.0.1",
            1,
            Credentials::Shadowsocks {
                method: "chacha20-ietf-poly1305".into(),
                password: "inactive".into(),
            },
        ));
    }
    out
}
