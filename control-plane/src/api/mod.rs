//! The HTTP surface: Marzban-compatible REST under /api, subscriptions under
//! /sub, node enrollment, and a small home page. Handlers stay thin: parse,
//! authorize, call the store or domain, map errors.

mod admins;
mod auth;
mod complete_writes;
mod core;
pub(crate) mod dates;
mod error;
pub(crate) mod extract;
mod health;
mod home;
mod hosts;
mod jobs;
mod login_limit;
mod logs;
mod node_core;
mod nodes;
pub(crate) mod openapi;
mod system;
mod templates;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_scalar::Servable;

pub use auth::{JwtKeys, hash_password, verify_password};
pub use error::ApiError;
pub use nodes::CreatedNode;
pub use users::actions::set_user_owner;
pub use users::{Render, UserCreate, UserResponse, create_user};

use crate::nodes::NodeManager;
use crate::pki::Pki;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub jwt: JwtKeys,
    pub pki: Arc<Pki>,
    pub nodes: NodeManager,
    /// Secret that signs subscription tokens.
    pub subscription_secret: Arc<str>,
    /// Base URL for enrollment commands, e.g. "http://203.0.113.5:8000".
    pub public_url: Arc<str>,
    /// Prefix of subscription URLs; empty gives relative "/sub/..." URLs.
    pub subscription_url_prefix: Arc<str>,
    pub enrollment_expire_minutes: i64,
    /// Formats, headers and pages of subscriptions.
    pub subscription: Arc<crate::subscription::SubscriptionSettings>,
    /// How the periodic jobs last ran.
    pub jobs: crate::jobs::scheduler::JobRegistry,
}

pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::<AppState>::new()
        .routes(routes!(admins::token))
        .routes(routes!(admins::current, admins::create))
        .routes(routes!(admins::modify, admins::remove))
        .routes(routes!(admins::list))
        .routes(routes!(admins::disable_users))
        .routes(routes!(admins::activate_users))
        .routes(routes!(admins::reset_usage))
        .routes(routes!(admins::usage))
        .routes(routes!(templates::create, templates::list))
        .routes(routes!(
            templates::get_one,
            templates::modify,
            templates::remove
        ))
        .routes(routes!(users::create))
        .routes(routes!(users::get_one, users::edit::modify, users::delete))
        .routes(routes!(users::list))
        .routes(routes!(users::actions::reset_usage))
        .routes(routes!(users::actions::revoke_sub))
        .routes(routes!(users::actions::active_next))
        .routes(routes!(users::actions::set_owner))
        .routes(routes!(users::actions::reset_all))
        .routes(routes!(users::usage::user_usage))
        .routes(routes!(users::usage::users_usage))
        .routes(routes!(users::expired::list, users::expired::delete))
        .routes(routes!(nodes::create))
        .routes(routes!(nodes::enroll))
        .routes(routes!(nodes::get_one, nodes::modify, nodes::delete))
        .routes(routes!(nodes::list))
        .routes(routes!(nodes::settings))
        .routes(routes!(nodes::reconnect))
        .routes(routes!(nodes::usage))
        .routes(routes!(
            node_core::config,
            node_core::replace_config,
            node_core::reset_config
        ))
        .routes(routes!(node_core::rotate_certificate))
        .routes(routes!(system::stats))
        .routes(routes!(jobs::list))
        .routes(routes!(system::inbounds))
        .routes(routes!(hosts::list, hosts::replace))
        .routes(routes!(core::stats))
        .routes(routes!(core::restart))
        .routes(routes!(core::config, core::replace_config))
        .split_for_parts();
    // WebSockets stay out of the OpenAPI document (it cannot describe them);
    // the spec lists them.
    let api = api
        .route("/core/logs", get(logs::core_logs))
        .route("/node/{id}/logs", get(logs::node_logs));
    let api = api
        .fallback(|| async { ApiError::NotFound("Not Found".into()) })
        .layer(axum::Extension(login_limit::LoginLimiter::default()))
        .layer(axum::middleware::from_fn(
            complete_writes::run_to_completion,
        ));
    let mut doc = openapi::ApiDoc::openapi();
    doc.merge(openapi);
    let mut doc = prefixed(doc, "/api");
    doc.merge(crate::subscription::openapi());
    Router::new()
        .nest("/api", api)
        .merge(crate::subscription::router())
        .merge(utoipa_scalar::Scalar::with_url("/docs", doc.clone()))
        .route("/openapi.json", get(move || async move { axum::Json(doc) }))
        .route("/", get(home::page))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .with_state(state)
}

/// Handlers document paths relative to where they are nested.
fn prefixed(mut doc: utoipa::openapi::OpenApi, prefix: &str) -> utoipa::openapi::OpenApi {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (format!("{prefix}{path}"), item))
        .collect();
    doc
}
