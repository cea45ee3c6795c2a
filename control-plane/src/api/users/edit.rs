//! `PUT /api/user/{username}`: Marzban's UserModify.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Deserializer};

use super::{
    Detail, UserResponse, change_user, check_note, check_proxies, exclusions, field_error,
    parse_datetime,
};
use crate::api::auth::CurrentAdmin;
use crate::api::extract::{Json, Path};
use crate::api::{ApiError, AppState};
use crate::domain::lifecycle::zero_means_none;
use crate::domain::{
    Action, Inbound, Modification, NextPlan, Proxies, ProxyProtocol, ResetStrategy, UserStatus,
};
use crate::store::{User, now};

/// Every field is optional: absent (or null) leaves it unchanged, as in
/// Marzban. For `expire`, `data_limit` and `on_hold_expire_duration`, 0
/// means none. `next_plan: null` removes the next plan.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UserModify {
    /// Replaces the user's protocols: a protocol left out is removed, a new
    /// one gets generated credentials, and credentials left out of a kept
    /// protocol stay as they are. `{}` keeps the proxies.
    proxies: Option<Proxies>,
    /// Inbound tags by protocol for the protocols given; `{}` keeps them.
    inbounds: Option<BTreeMap<String, Vec<String>>>,
    expire: Option<i64>,
    data_limit: Option<i64>,
    data_limit_reset_strategy: Option<ResetStrategy>,
    /// active, disabled or on_hold.
    status: Option<UserStatus>,
    /// An empty note clears it.
    note: Option<String>,
    on_hold_expire_duration: Option<i64>,
    on_hold_timeout: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<NextPlan>)]
    next_plan: Option<Option<NextPlan>>,
    /// Negative: never deleted; 0: as soon as it expires.
    auto_delete_in_days: Option<i64>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<NextPlan>>, D::Error> {
    Option::<NextPlan>::deserialize(d).map(Some)
}

/// The requested proxies, with the credentials of protocols the user keeps
/// carried over when the request leaves them out.
fn merge_proxies(old: &Proxies, requested: &Proxies) -> Proxies {
    let mut new = requested.clone();
    if let (Some(n), Some(o)) = (&mut new.vmess, &old.vmess) {
        n.id = n.id.take().or_else(|| o.id.clone());
    }
    if let (Some(n), Some(o)) = (&mut new.vless, &old.vless) {
        n.id = n.id.take().or_else(|| o.id.clone());
    }
    if let (Some(n), Some(o)) = (&mut new.trojan, &old.trojan) {
        n.password = n.password.take().or_else(|| o.password.clone());
    }
    if let (Some(n), Some(o)) = (&mut new.shadowsocks, &old.shadowsocks) {
        n.password = n.password.take().or_else(|| o.password.clone());
    }
    new.fill_missing_credentials();
    new
}

/// What the request changes outside the lifecycle: proxies, inbounds, note.
fn apply_settings(
    user: &mut User,
    body: &UserModify,
    inbounds: &[Inbound],
) -> Result<(), ApiError> {
    if let Some(requested) = body.proxies.as_ref().filter(|p| !p.is_empty()) {
        let proxies = merge_proxies(&user.proxies, requested);
        check_proxies(&proxies)?;
        let kept = proxies.protocols();
        user.excluded_inbounds
            .retain(|p, _| ProxyProtocol::parse(p).is_some_and(|p| kept.contains(&p)));
        user.proxies = proxies;
    }
    if let Some(requested) = body.inbounds.as_ref().filter(|i| !i.is_empty()) {
        let updated = exclusions(requested, &user.proxies, inbounds)?;
        for protocol in requested.keys() {
            user.excluded_inbounds.remove(protocol);
        }
        user.excluded_inbounds.extend(updated);
    }
    if let Some(note) = &body.note {
        user.note = (!note.is_empty()).then(|| note.clone());
    }
    Ok(())
}

#[utoipa::path(put, path = "/user/{username}", tag = "User", request_body = UserModify,
    params(("username" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 400, body = Detail),
        (status = 401, body = Detail), (status = 403, body = Detail),
        (status = 404, body = Detail), (status = 422, body = Detail)))]
/// Modifies a user. Status, quota and expiry changes follow the domain's
/// rules: raising the limit re-admits a limited user, extending the expiry
/// an expired one; on_hold needs a hold duration and no expire.
pub async fn modify(
    State(state): State<AppState>,
    admin: CurrentAdmin,
    Path(username): Path<String>,
    Json(body): Json<UserModify>,
) -> Result<Json<UserResponse>, ApiError> {
    check_note(body.note.as_deref())?;
    let on_hold_timeout = body
        .on_hold_timeout
        .as_deref()
        .map(|v| parse_datetime("on_hold_timeout", v))
        .transpose()?;
    let modification = Modification {
        status: body.status,
        data_limit: zero_means_none(body.data_limit),
        expire: zero_means_none(body.expire),
        data_limit_reset_strategy: body.data_limit_reset_strategy,
        on_hold_expire_duration: zero_means_none(body.on_hold_expire_duration),
        on_hold_timeout: on_hold_timeout.map(Some),
        next_plan: body.next_plan.clone(),
        auto_delete_in_days: body.auto_delete_in_days.map(Some),
    };
    let inbounds = state.store.inbounds().await?;
    let now = now();
    let response = change_user(&state, &admin, &username, |user| {
        apply_settings(user, &body, &inbounds)?;
        let mut account = user.account();
        let events = account.modify(&modification, now).map_err(field_error)?;
        user.set_account(account);
        user.edit_at = Some(now);
        // Marzban reports the edit, then each change of status it made.
        let mut actions = vec![Action::UserUpdated];
        actions.extend(super::actions::actions_of(&events));
        Ok(actions)
    })
    .await?;
    tracing::info!(username = %username, by = %admin.0.username, "user modified");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(json: &str) -> Proxies {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn kept_protocols_keep_credentials_unless_given() {
        let old = proxies(
            r#"{"vmess": {"id": "v-old"}, "trojan": {"password": "t-old"},
                "vless": {"id": "l-old", "flow": "xtls-rprx-vision"}}"#,
        );
        let new = merge_proxies(
            &old,
            &proxies(r#"{"vmess": {}, "vless": {"id": "l-new"}, "shadowsocks": {}}"#),
        );
        assert_eq!(new.vmess.unwrap().id.as_deref(), Some("v-old"));
        let vless = new.vless.unwrap();
        assert_eq!(vless.id.as_deref(), Some("l-new"));
        assert_eq!(vless.flow, "");
        assert!(new.trojan.is_none());
        assert_eq!(new.shadowsocks.unwrap().password.unwrap().len(), 22);
    }

    #[test]
    fn next_plan_null_differs_from_absent() {
        let absent: UserModify = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.next_plan, None);
        let null: UserModify = serde_json::from_str(r#"{"next_plan": null}"#).unwrap();
        assert_eq!(null.next_plan, Some(None));
        let set: UserModify = serde_json::from_str(r#"{"next_plan": {"data_limit": 5}}"#).unwrap();
        assert_eq!(set.next_plan.unwrap().unwrap().data_limit, Some(5));
    }
}
