//! User templates (Marzban's `/api/user_template`): every admin may read
//! them, only sudo admins write them.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::admins::page;
use super::auth::{CurrentAdmin, SudoAdmin};
use super::extract::{Json, Path, Query};
use super::openapi::Detail;
use super::{ApiError, AppState};
use crate::domain::{Inbound, ProxyProtocol};
use crate::store::{StoreError, TemplateFields, UserTemplate};

/// The body of both create and modify. On modify, a field left out (or
/// null, or `inbounds: {}`) keeps its value, as in Marzban.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserTemplateBody {
    /// Unique, 1 to 64 characters; required on create.
    name: Option<String>,
    /// Bytes, 0 or more.
    data_limit: Option<i64>,
    /// Seconds, 0 or more.
    expire_duration: Option<i64>,
    /// 1 to 20 characters of a-z, A-Z, 0-9, - _ @ .
    username_prefix: Option<String>,
    username_suffix: Option<String>,
    /// Inbound tags by protocol; `{}` means every inbound.
    inbounds: Option<BTreeMap<String, Vec<String>>>,
}

/// Marzban's `UserTemplateResponse`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserTemplateResponse {
    id: i64,
    name: String,
    data_limit: Option<i64>,
    expire_duration: Option<i64>,
    username_prefix: Option<String>,
    username_suffix: Option<String>,
    inbounds: BTreeMap<String, Vec<String>>,
}

const MAX_NAME_CHARS: usize = 64;
const MAX_AFFIX_CHARS: usize = 20;

fn not_found() -> ApiError {
    ApiError::NotFound("User Template not found".into())
}

fn template_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => not_found(),
        other => other.into(),
    }
}

/// Tags that left the core config are left out, as in Marzban; a protocol
/// whose every tag left is left out too, rather than widening to "all".
fn respond(t: UserTemplate, inbounds: &[Inbound]) -> UserTemplateResponse {
    let mut shown = BTreeMap::new();
    for (protocol, tags) in t.inbounds {
        let kept: Vec<String> = tags
            .iter()
            .filter(|tag| {
                inbounds
                    .iter()
                    .any(|i| i.protocol == protocol && i.tag == **tag)
            })
            .cloned()
            .collect();
        if kept.is_empty() && !tags.is_empty() {
            continue;
        }
        shown.insert(protocol.as_str().to_owned(), kept);
    }
    UserTemplateResponse {
        id: t.id,
        name: t.name,
        data_limit: t.data_limit,
        expire_duration: t.expire_duration,
        username_prefix: t.username_prefix,
        username_suffix: t.username_suffix,
        inbounds: shown,
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(())
}

fn check_non_negative(field: &str, value: Option<i64>) -> Result<(), ApiError> {
    match value {
        Some(v) if v < 0 => Err(ApiError::validation(field, "must be 0 or greater")),
        _ => Ok(()),
    }
}

/// Affixes become part of usernames, so they use the username alphabet.
fn check_affix(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    let chars = value.chars().count();
    if !(1..=MAX_AFFIX_CHARS).contains(&chars) {
        return Err(ApiError::validation(
            field,
            format!("must be 1 to {MAX_AFFIX_CHARS} characters"),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@' | '.'))
    {
        return Err(ApiError::validation(
            field,
            "may only contain a-z, A-Z, 0-9, and - _ @ .",
        ));
    }
    Ok(())
}

/// Field checks that need no database: 422 before anything is read.
fn check_fields(body: &UserTemplateBody) -> Result<(), ApiError> {
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    check_non_negative("data_limit", body.data_limit)?;
    check_non_negative("expire_duration", body.expire_duration)?;
    check_affix("username_prefix", body.username_prefix.as_deref())?;
    check_affix("username_suffix", body.username_suffix.as_deref())?;
    Ok(())
}

/// Parses protocols (422 on an unknown one) and refuses tags that are not
/// inbounds of that protocol in the current core config (400, as for users).
fn parse_inbounds(
    requested: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<ProxyProtocol, Vec<String>>, ApiError> {
    let mut parsed = BTreeMap::new();
    for (protocol, tags) in requested {
        let p = ProxyProtocol::parse(protocol).ok_or_else(|| {
            ApiError::validation("inbounds", format!("unknown protocol {protocol:?}"))
        })?;
        let mut unique: Vec<String> = Vec::with_capacity(tags.len());
        for tag in tags {
            if !unique.contains(tag) {
                unique.push(tag.clone());
            }
        }
        parsed.insert(p, unique);
    }
    Ok(parsed)
}

fn check_tags_exist(
    requested: &BTreeMap<ProxyProtocol, Vec<String>>,
    inbounds: &[Inbound],
) -> Result<(), ApiError> {
    for (protocol, tags) in requested {
        for tag in tags {
            if !inbounds
                .iter()
                .any(|i| i.protocol == *protocol && &i.tag == tag)
            {
                return Err(ApiError::BadRequest(format!("Inbound {tag} doesn't exist")));
            }
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/user_template", tag = "User Template",
    request_body = UserTemplateBody,
    responses((status = 200, body = UserTemplateResponse), (status = 400, body = Detail),
        (status = 403, body = Detail), (status = 409, body = Detail),
        (status = 422, body = Detail)))]
pub async fn create(
    State(state): State<AppState>,
    by: SudoAdmin,
    Json(body): Json<UserTemplateBody>,
) -> Result<Json<UserTemplateResponse>, ApiError> {
    check_fields(&body)?;
    let Some(name) = body.name else {
        return Err(ApiError::validation("name", "field required"));
    };
    let requested = parse_inbounds(&body.inbounds.unwrap_or_default())?;
    let inbounds = state.store.inbounds().await?;
    check_tags_exist(&requested, &inbounds)?;
    let template = state
        .store
        .create_template(&TemplateFields {
            name,
            data_limit: body.data_limit,
            expire_duration: body.expire_duration,
            username_prefix: body.username_prefix,
            username_suffix: body.username_suffix,
            inbounds: requested,
        })
        .await?;
    tracing::info!(template = template.id, name = %template.name, by = %by.0.username, "user template created");
    Ok(Json(respond(template, &inbounds)))
}

#[utoipa::path(get, path = "/user_template/{id}", tag = "User Template",
    params(("id" = i64, Path)),
    responses((status = 200, body = UserTemplateResponse), (status = 404, body = Detail)))]
pub async fn get_one(
    State(state): State<AppState>,
    _: CurrentAdmin,
    Path(id): Path<i64>,
) -> Result<Json<UserTemplateResponse>, ApiError> {
    let template = state.store.template(id).await?.ok_or_else(not_found)?;
    Ok(Json(respond(template, &state.store.inbounds().await?)))
}

#[utoipa::path(put, path = "/user_template/{id}", tag = "User Template",
    params(("id" = i64, Path)), request_body = UserTemplateBody,
    responses((status = 200, body = UserTemplateResponse), (status = 400, body = Detail),
        (status = 403, body = Detail), (status = 404, body = Detail),
        (status = 409, body = Detail), (status = 422, body = Detail)))]
pub async fn modify(
    State(state): State<AppState>,
    by: SudoAdmin,
    Path(id): Path<i64>,
    Json(body): Json<UserTemplateBody>,
) -> Result<Json<UserTemplateResponse>, ApiError> {
    check_fields(&body)?;
    let requested = body
        .inbounds
        .as_ref()
        .map(parse_inbounds)
        .transpose()?
        .filter(|r| !r.is_empty());
    let current = state.store.template(id).await?.ok_or_else(not_found)?;
    let inbounds = state.store.inbounds().await?;
    if let Some(requested) = &requested {
        check_tags_exist(requested, &inbounds)?;
    }
    let old = current.fields();
    let fields = TemplateFields {
        name: body.name.unwrap_or(old.name),
        data_limit: body.data_limit.or(old.data_limit),
        expire_duration: body.expire_duration.or(old.expire_duration),
        username_prefix: body.username_prefix.or(old.username_prefix),
        username_suffix: body.username_suffix.or(old.username_suffix),
        inbounds: requested.unwrap_or(old.inbounds),
    };
    let template = state
        .store
        .update_template(id, &fields)
        .await
        .map_err(template_not_found)?;
    tracing::info!(template = id, by = %by.0.username, "user template modified");
    Ok(Json(respond(template, &inbounds)))
}

#[utoipa::path(delete, path = "/user_template/{id}", tag = "User Template",
    params(("id" = i64, Path)),
    responses((status = 200, body = Object), (status = 403, body = Detail),
        (status = 404, body = Detail)))]
pub async fn remove(
    State(state): State<AppState>,
    by: SudoAdmin,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    state
        .store
        .delete_template(id)
        .await
        .map_err(template_not_found)?;
    tracing::info!(template = id, by = %by.0.username, "user template deleted");
    Ok(Json(json!({})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplatesQuery {
    offset: Option<i64>,
    /// 0 or absent: no limit.
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/user_template", tag = "User Template", params(TemplatesQuery),
    responses((status = 200, body = Vec<UserTemplateResponse>), (status = 422, body = Detail)))]
pub async fn list(
    State(state): State<AppState>,
    _: CurrentAdmin,
    Query(query): Query<TemplatesQuery>,
) -> Result<Json<Vec<UserTemplateResponse>>, ApiError> {
    let (offset, limit) = page(query.offset, query.limit)?;
    let templates = state.store.templates(offset, limit).await?;
    let inbounds = state.store.inbounds().await?;
    Ok(Json(
        templates
            .into_iter()
            .map(|t| respond(t, &inbounds))
            .collect(),
    ))
}
