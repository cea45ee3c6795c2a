//! Shared test fixtures: a fresh database per test on either backend, and
//! the real router in-process over it.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use nexpoint::api::{AppState, JwtKeys, hash_password};
use nexpoint::nodes::NodeManager;
use nexpoint::pki::Pki;
use std::collections::BTreeMap;

use nexpoint::domain::{Proxies, ResetStrategy, UserStatus};
use nexpoint::store::{NewAdmin, NewNode, NewUser, Store};
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

pub struct TestDb {
    pub store: Store,
    dir: tempfile::TempDir,
    drop_pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        Self {
            store: Store::connect(&url).await.unwrap(),
            dir,
            drop_pg: None,
        }
    }

    pub async fn postgres() -> Self {
        let admin_url = std::env::var("NEXPOINT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        sqlx::any::install_default_drivers();
        let name = format!("nexpoint_test_{}", hex::encode(rand::random::<[u8; 6]>()));
        let mut admin = sqlx::AnyConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Self {
            store: Store::connect(&url).await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
            drop_pg: Some((admin_url, name)),
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = self.drop_pg {
            let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

/// Runs `async fn NAME(store: &Store)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = $crate::common::TestDb::sqlite().await;
                super::$name(&db.store).await;
                db.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let db = $crate::common::TestDb::postgres().await;
                super::$name(&db.store).await;
                db.finish().await;
            }
        }
    };
}

pub struct App {
    pub router: Router,
    pub store: Store,
}

/// Runs `async fn NAME(app: &App)` against the real router once on SQLite
/// and once on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = $crate::common::TestDb::sqlite().await;
                super::$name(&$crate::common::app(&db).await).await;
                db.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let db = $crate::common::TestDb::postgres().await;
                super::$name(&$crate::common::app(&db).await).await;
                db.finish().await;
            }
        }
    };
}

/// The real router over `db`, with admins root (sudo), reseller and other, password "pw".
pub async fn app(db: &TestDb) -> App {
    let store = db.store.clone();
    store
        .set_core_config(nexpoint::domain::inbounds::DEFAULT_CORE_CONFIG)
        .await
        .unwrap();
    for (name, sudo) in [("root", true), ("reseller", false), ("other", false)] {
        store
            .create_admin(NewAdmin {
                username: name,
                hashed_password: &hash_password("pw").unwrap(),
                is_sudo: sudo,
            })
            .await
            .unwrap();
    }
    let pki = Arc::new(Pki::load_or_create(db.dir.path()).unwrap());
    let nodes = NodeManager::new(store.clone(), Arc::clone(&pki), Duration::from_secs(60));
    let state = AppState {
        store: store.clone(),
        jwt: JwtKeys::new("test-secret", 60),
        pki,
        nodes,
        subscription_secret: "sub-secret".into(),
        public_url: "http://cp.example:8000".into(),
        subscription_url_prefix: "".into(),
        enrollment_expire_minutes: 60,
        subscription: Default::default(),
        jobs: Default::default(),
    };
    App {
        router: nexpoint::api::router(state),
        store,
    }
}

impl App {
    pub async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, body.to_vec())
    }

    pub async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let (status, _, body) = self.call(req).await;
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (status, value)
    }

    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        let req = Request::post("/api/admin/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "username={username}&password={password}"
            )))
            .unwrap();
        let (status, _, body) = self.call(req).await;
        (status, serde_json::from_slice(&body).unwrap())
    }

    pub async fn token(&self, username: &str) -> String {
        let (status, body) = self.login(username, "pw").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

/// A request with a raw body, for input serde never sees as JSON.
pub async fn raw(
    app: &App,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let (status, _, body) = app.call(req).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// An active vmess user with no limits, to create through the store.
pub fn new_user(name: &str) -> NewUser {
    let mut proxies: Proxies = serde_json::from_str(r#"{"vmess": {}}"#).unwrap();
    proxies.fill_missing_credentials();
    NewUser {
        username: name.into(),
        status: UserStatus::Active,
        proxies,
        excluded_inbounds: BTreeMap::new(),
        data_limit: None,
        data_limit_reset_strategy: ResetStrategy::NoReset,
        expire: None,
        note: None,
        admin_id: None,
        on_hold_expire_duration: None,
        on_hold_timeout: None,
        auto_delete_in_days: None,
    }
}

/// A node created through the store (never enrolled); returns its id.
pub async fn new_node(store: &Store, name: &str) -> i64 {
    store
        .create_node(
            NewNode {
                name: name.into(),
                address: "127.0.0.1".into(),
                port: 1,
                api_port: 2,
                usage_coefficient: 1.0,
            },
            &format!("hash-{name}"),
            i64::MAX,
            &["VMess TCP".into()],
        )
        .await
        .unwrap()
        .id
}
