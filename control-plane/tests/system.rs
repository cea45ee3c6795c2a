//! GET /api/system and /api/inbounds through the real router, and the
//! trigger-kept user counts behind them, on SQLite and PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{App, TestDb, app};
use nexpoint::store::{
    Backend, NewAdmin, NewNode, Store, StoreError, UsageBatch, UserCounts, UserUsageDelta, now,
};
use serde_json::{Value, json};
use sqlx::{AnyPool, Connection};

async fn create_user(app: &App, token: &str, username: &str, on_hold: bool) -> Value {
    let mut body = json!({"username": username, "proxies": {"vmess": {}}});
    if on_hold {
        body["status"] = json!("on_hold");
        body["on_hold_expire_duration"] = json!(3600);
    }
    let (status, user) = app.json("POST", "/api/user", Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    user
}

async fn user_id(store: &Store, username: &str) -> i64 {
    store.user_by_username(username).await.unwrap().unwrap().id
}

async fn node(store: &Store, name: &str) -> i64 {
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
            &[],
        )
        .await
        .unwrap()
        .id
}

/// Traffic for `users` on `node`, seen now: they become online.
async fn traffic(store: &Store, node: i64, users: &[i64], up: i64, down: i64) {
    let sequence = store.node(node).await.unwrap().usage_sequence;
    store
        .apply_usage(&UsageBatch {
            node_id: node,
            after_sequence: sequence,
            last_sequence: sequence + 1,
            coefficient: 1.0,
            deltas: users
                .iter()
                .map(|&user_id| UserUsageDelta {
                    user_id,
                    uplink: up,
                    downlink: down,
                    recorded_at: now(),
                })
                .collect(),
        })
        .await
        .unwrap();
}

async fn system(app: &App, token: &str) -> Value {
    let (status, body) = app.json("GET", "/api/system", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn counts(body: &Value) -> [i64; 7] {
    [
        "total_user",
        "online_users",
        "users_active",
        "users_on_hold",
        "users_disabled",
        "users_expired",
        "users_limited",
    ]
    .map(|k| body[k].as_i64().unwrap_or_else(|| panic!("{k} in {body}")))
}

async fn system_counts_the_callers_users(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let other = app.token("other").await;
    for name in ["root1", "root2"] {
        create_user(app, &root, name, false).await;
    }
    create_user(app, &root, "root3", true).await;
    for name in ["sold1", "sold2", "sold3"] {
        create_user(app, &reseller, name, false).await;
    }
    create_user(app, &reseller, "sold4", true).await;
    // Disabling a reseller's users moves them between statuses.
    let (status, body) = app
        .json(
            "POST",
            "/api/admin/reseller/users/disable",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .json(
            "POST",
            "/api/user",
            Some(&reseller),
            Some(json!({"username": "sold5", "proxies": {"trojan": {}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // root1 and sold5 have traffic now: they are online.
    let n = node(&app.store, "edge").await;
    let (r1, s5) = (
        user_id(&app.store, "root1").await,
        user_id(&app.store, "sold5").await,
    );
    traffic(&app.store, n, &[r1, s5], 100, 250).await;

    let all = system(app, &root).await;
    // total, online, active, on_hold, disabled, expired, limited
    assert_eq!(counts(&all), [8, 2, 3, 1, 4, 0, 0], "{all}");
    assert_eq!(all["incoming_bandwidth"], 200);
    assert_eq!(all["outgoing_bandwidth"], 500);
    assert_eq!(all["version"], env!("CARGO_PKG_VERSION"));
    assert!(all["mem_total"].as_u64().unwrap() > 0, "{all}");
    assert!(all["mem_used"].as_u64().unwrap() <= all["mem_total"].as_u64().unwrap());
    assert!(all["cpu_cores"].as_u64().unwrap() > 0);
    assert!(all["cpu_usage"].is_number());
    assert!(all["incoming_bandwidth_speed"].as_i64().unwrap() >= 0);
    assert!(all["outgoing_bandwidth_speed"].as_i64().unwrap() >= 0);
    assert_eq!(all.as_object().unwrap().len(), 16, "{all}");

    let own = system(app, &reseller).await;
    assert_eq!(counts(&own), [5, 1, 1, 0, 4, 0, 0], "{own}");
    // Traffic is the fleet's, whoever asks.
    assert_eq!(own["incoming_bandwidth"], 200);
    let none = system(app, &other).await;
    assert_eq!(counts(&none), [0; 7], "{none}");

    let (status, body) = app.json("GET", "/api/system", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = app.json("GET", "/api/system", Some("nope"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
on_both!(system_counts_the_callers_users);

async fn inbounds_are_grouped_by_protocol_in_config_order(app: &App) {
    let reseller = app.token("reseller").await;
    let (status, body) = app
        .call(
            Request::get("/api/inbounds")
                .header(header::AUTHORIZATION, format!("Bearer {reseller}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .into_status_and_text();
    assert_eq!(status, StatusCode::OK, "{body}");
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        parsed["vless"],
        json!([{"tag": "VLESS TCP", "protocol": "vless", "network": "tcp", "tls": "none", "port": 10002}])
    );
    let order: Vec<usize> = ["vmess", "vless", "trojan", "shadowsocks"]
        .iter()
        .map(|p| body.find(&format!("\"{p}\":")).unwrap())
        .collect();
    assert!(order.is_sorted(), "{body}");
    assert_eq!(parsed.as_object().unwrap().len(), 4);

    // A protocol without inbounds is left out.
    app.store
        .set_core_config(
            r#"{"inbounds": [
                {"tag": "b", "protocol": "trojan", "port": 2, "streamSettings": {"network": "ws", "security": "tls"}},
                {"tag": "a", "protocol": "trojan", "port": 1},
                {"tag": "api", "protocol": "dokodemo-door", "port": 3}]}"#,
        )
        .await
        .unwrap();
    let (status, body) = app
        .json("GET", "/api/inbounds", Some(&reseller), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"trojan": [
            {"tag": "b", "protocol": "trojan", "network": "ws", "tls": "tls", "port": 2},
            {"tag": "a", "protocol": "trojan", "network": "tcp", "tls": "none", "port": 1}]})
    );
    assert_eq!(
        app.json("GET", "/api/inbounds", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
on_both!(inbounds_are_grouped_by_protocol_in_config_order);

trait StatusAndText {
    fn into_status_and_text(self) -> (StatusCode, String);
}

impl StatusAndText for (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    fn into_status_and_text(self) -> (StatusCode, String) {
        (self.0, String::from_utf8(self.2).unwrap())
    }
}

/// A database the test also writes with raw SQL, as imports, jobs or an
/// operator's psql session might.
struct RawDb {
    store: Store,
    raw: AnyPool,
    _dir: tempfile::TempDir,
    drop_pg: Option<(String, String)>,
}

/// A new empty database: its URL, and what `RawDb::finish` cleans up.
async fn blank(backend: Backend) -> (String, tempfile::TempDir, Option<(String, String)>) {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    if backend == Backend::Sqlite {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        return (url, dir, None);
    }
    let admin_url = std::env::var("NEXPOINT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("nexpoint_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    (format!("{base}/{name}"), dir, Some((admin_url, name)))
}

impl RawDb {
    async fn open(url: &str, dir: tempfile::TempDir, drop_pg: Option<(String, String)>) -> Self {
        Self {
            store: Store::connect(url).await.unwrap(),
            raw: AnyPool::connect(url).await.unwrap(),
            _dir: dir,
            drop_pg,
        }
    }

    async fn sqlite() -> Self {
        let (url, dir, drop_pg) = blank(Backend::Sqlite).await;
        Self::open(&url, dir, drop_pg).await
    }

    async fn postgres() -> Self {
        let (url, dir, drop_pg) = blank(Backend::Postgres).await;
        Self::open(&url, dir, drop_pg).await
    }

    async fn sql(&self, sql: &str) {
        sqlx::query(sql).execute(&self.raw).await.unwrap();
    }

    async fn finish(self) {
        self.raw.close().await;
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

macro_rules! on_both_raw {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = super::RawDb::sqlite().await;
                super::$name(&db).await;
                db.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let db = super::RawDb::postgres().await;
                super::$name(&db).await;
                db.finish().await;
            }
        }
    };
}

async fn admin(store: &Store, name: &str) -> i64 {
    store
        .create_admin(NewAdmin {
            username: name,
            hashed_password: "x",
            is_sudo: false,
        })
        .await
        .unwrap()
        .id
}

/// The maintained counts equal a full count, overall and for every owner.
async fn assert_exact(store: &Store, owners: &[i64], step: &str) -> UserCounts {
    let all = store.user_counts(None).await.unwrap();
    assert_eq!(
        all,
        store.user_counts_by_scan(None).await.unwrap(),
        "{step}"
    );
    for &owner in owners {
        assert_eq!(
            store.user_counts(Some(owner)).await.unwrap(),
            store.user_counts_by_scan(Some(owner)).await.unwrap(),
            "{step}: admin {owner}"
        );
    }
    all
}

/// `n` users named `{prefix}{i}`, statuses cycling through all five.
fn insert_users(prefix: &str, n: usize, owner: &str) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let status = ["active", "disabled", "limited", "expired", "on_hold"][i % 5];
            format!(
                "('{prefix}{i}', '{prefix}{i}', '{status}', '{{}}', {owner}, 0, 0)",
                owner = if owner == "cycle" {
                    ["NULL", "1", "2"][i % 3].to_owned()
                } else {
                    owner.to_owned()
                }
            )
        })
        .collect();
    format!(
        "INSERT INTO users (username, username_lower, status, proxies, admin_id, created_at, \
         revision) VALUES {}",
        rows.join(", ")
    )
}

async fn user_counts_stay_exact_through_every_change(db: &RawDb) {
    let store = &db.store;
    let (a, b) = (admin(store, "a").await, admin(store, "b").await);
    assert_eq!((a, b), (1, 2));
    // 99 owns nobody.
    let owners = [a, b, 99];
    assert_eq!(
        assert_exact(store, &owners, "empty").await,
        UserCounts::default()
    );

    db.sql(&insert_users("u", 60, "cycle")).await;
    let counts = assert_exact(store, &owners, "insert").await;
    assert_eq!((counts.total, counts.active, counts.on_hold), (60, 12, 12));
    assert_eq!(store.user_counts(Some(a)).await.unwrap().total, 20);

    // Status changes, one row and many, including to the same status.
    db.sql("UPDATE users SET status = 'active' WHERE username = 'u1'")
        .await;
    db.sql("UPDATE users SET status = 'disabled' WHERE id % 4 = 0")
        .await;
    db.sql("UPDATE users SET status = status").await;
    let counts = assert_exact(store, &owners, "status").await;
    assert_eq!(counts.total, 60);
    // Owner changes: to another admin, to none, from none, with a status.
    db.sql("UPDATE users SET admin_id = 2 WHERE admin_id = 1 AND id % 2 = 0")
        .await;
    db.sql("UPDATE users SET admin_id = NULL WHERE username IN ('u4', 'u5')")
        .await;
    db.sql("UPDATE users SET admin_id = 1 WHERE admin_id IS NULL AND id % 5 = 0")
        .await;
    db.sql("UPDATE users SET admin_id = 1, status = 'expired' WHERE username = 'u7'")
        .await;
    // Columns the counts do not depend on.
    db.sql("UPDATE users SET edit_at = 7, note = 'x'").await;
    assert_exact(store, &owners, "owner").await;

    db.sql("DELETE FROM users WHERE id % 3 = 1").await;
    let counts = assert_exact(store, &owners, "delete").await;
    assert_eq!(counts.total, 40);

    // Deleting an admin leaves its users without an owner (ON DELETE SET NULL).
    let before_b = store.user_counts(Some(b)).await.unwrap();
    assert!(before_b.total > 0);
    store.delete_admin("b").await.unwrap();
    assert_eq!(
        store.user_counts(Some(b)).await.unwrap(),
        UserCounts::default()
    );
    let counts = assert_exact(store, &owners, "admin deleted").await;
    assert_eq!(counts.total, 40);

    // The store's own writers: create, usage limiting, bulk disable, delete.
    let mut user = nexpoint::store::NewUser {
        username: "made".into(),
        status: nexpoint::domain::UserStatus::Active,
        proxies: serde_json::from_str(r#"{"vmess": {}}"#).unwrap(),
        excluded_inbounds: Default::default(),
        data_limit: Some(10),
        data_limit_reset_strategy: Default::default(),
        expire: None,
        note: None,
        admin_id: Some(a),
        on_hold_expire_duration: None,
        on_hold_timeout: None,
        auto_delete_in_days: None,
    };
    user.proxies.fill_missing_credentials();
    let made = store.create_user(user).await.unwrap();
    assert_exact(store, &owners, "created").await;
    let n = node(store, "n").await;
    traffic(store, n, &[made.id], 10, 10).await;
    let counts = assert_exact(store, &owners, "limited by usage").await;
    assert_eq!(
        store
            .user_by_username("made")
            .await
            .unwrap()
            .unwrap()
            .status,
        nexpoint::domain::UserStatus::Limited
    );
    assert_eq!(counts.total, 41);
    store.disable_admin_users(a, None).await.unwrap();
    assert_exact(store, &owners, "bulk disable").await;
    store.activate_admin_users(a, None).await.unwrap();
    assert_exact(store, &owners, "bulk activate").await;
    store.delete_user("made", None).await.unwrap();
    assert!(matches!(
        store.delete_user("made", None).await,
        Err(StoreError::NotFound)
    ));
    let counts = assert_exact(store, &owners, "deleted").await;
    assert_eq!(counts.total, 40);

    db.sql(match store.backend() {
        Backend::Postgres => "TRUNCATE users CASCADE",
        Backend::Sqlite => "DELETE FROM users",
    })
    .await;
    let counts = assert_exact(store, &owners, "emptied").await;
    assert_eq!(counts, UserCounts::default());
}
on_both_raw!(user_counts_stay_exact_through_every_change);

/// 100,000 users, every one online (the worst case for the online count):
/// GET /api/system counts them right for each owner, call after call. Its
/// latency is printed here and measured by `cargo bench --bench api`; a
/// test that timed it would fail whenever the machine is busy.
async fn system_counts_100k_users_right(db: &RawDb) {
    const USERS: i64 = 100_000;
    let store = &db.store;
    for (name, sudo) in [("root", true), ("reseller", false)] {
        store
            .create_admin(NewAdmin {
                username: name,
                hashed_password: &nexpoint::api::hash_password("pw").unwrap(),
                is_sudo: sudo,
            })
            .await
            .unwrap();
    }
    let series = match store.backend() {
        Backend::Sqlite => {
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1) \
             SELECT i FROM s"
        }
        Backend::Postgres => "SELECT generate_series(1, $1) AS i",
    };
    sqlx::query(&format!(
        "INSERT INTO users (username, username_lower, status, proxies, admin_id, created_at, \
         revision) \
         SELECT 'u' || i, 'u' || i, CASE i % 3 WHEN 0 THEN 'active' WHEN 1 THEN 'disabled' \
         ELSE 'on_hold' END, '{{}}', 1 + i % 2, 0, 0 FROM ({series}) AS s"
    ))
    .bind(USERS)
    .execute(&db.raw)
    .await
    .unwrap();
    sqlx::query("UPDATE user_traffic SET online_at = $1")
        .bind(now())
        .execute(&db.raw)
        .await
        .unwrap();
    if store.backend() == Backend::Postgres {
        db.sql("ANALYZE users").await;
    }

    let jwt = nexpoint::api::JwtKeys::new("k", 60);
    let pki = std::sync::Arc::new(nexpoint::pki::Pki::load_or_create(db._dir.path()).unwrap());
    let state = nexpoint::api::AppState {
        store: store.clone(),
        jwt: jwt.clone(),
        pki: pki.clone(),
        nodes: nexpoint::nodes::NodeManager::new(store.clone(), pki, Duration::from_secs(60)),
        subscription_secret: "s".into(),
        public_url: "http://x".into(),
        subscription_url_prefix: "".into(),
        enrollment_expire_minutes: 60,
        subscription: Default::default(),
        jobs: Default::default(),
    };
    let app = App {
        router: nexpoint::api::router(state),
        store: store.clone(),
    };
    for (who, total, online) in [("root", USERS, USERS), ("reseller", USERS / 2, USERS / 2)] {
        let admin = store.admin_by_username(who).await.unwrap().unwrap();
        let token = jwt.issue(&admin).unwrap();
        let first = system(&app, &token).await;
        assert_eq!(first["total_user"], total);
        assert_eq!(first["online_users"], online);
        let mut times = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            let body = system(&app, &token).await;
            times.push(started.elapsed());
            assert_eq!(body["total_user"], total);
        }
        times.sort();
        let p99 = times[times.len() * 99 / 100];
        println!(
            "{:?} {who}: p50 {:?}, p99 {:?}",
            store.backend(),
            times[times.len() / 2],
            p99
        );
    }
}
on_both_raw!(system_counts_100k_users_right);

#[tokio::test]
async fn openapi_documents_these_endpoints() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let (status, doc) = app.json("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/system", &["get"][..]),
        ("/api/inbounds", &["get"]),
        ("/api/hosts", &["get", "put"]),
        ("/api/core", &["get"]),
        ("/api/core/restart", &["post"]),
        ("/api/core/config", &["get", "put"]),
        ("/api/node/settings", &["get"]),
        ("/api/node/{id}", &["get", "put", "delete"]),
        ("/api/node/{id}/reconnect", &["post"]),
        ("/api/nodes/usage", &["get"]),
        ("/sub/{token}/info", &["get"]),
        ("/sub/{token}/usage", &["get"]),
    ] {
        for method in methods {
            assert!(paths[path].get(method).is_some(), "{method} {path}");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "SystemStats",
        "ProxyInbound",
        "ProxyHost",
        "ProxyHostInput",
        "CoreStats",
        "NodeSettings",
        "NodeModify",
        "NodesUsageResponse",
        "SubscriptionUserResponse",
        "UserUsagesResponse",
    ] {
        assert!(schemas.contains_key(schema), "{schema}");
    }
    db.finish().await;
}

/// Users that exist before migration 0004 are counted from the start.
async fn counts_start_from_the_users_already_there(backend: Backend) {
    let (url, dir, drop_pg) = blank(backend).await;
    let raw = AnyPool::connect(&url).await.unwrap();
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = format!("{}/../migrations/{folder}", env!("CARGO_MANIFEST_DIR"));
    let mut before = sqlx::migrate::Migrator::new(std::path::Path::new(&path))
        .await
        .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 4)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&raw).await.unwrap();
    sqlx::query(
        "INSERT INTO admins (username, username_lower, hashed_password, created_at) \
         VALUES ('a', 'a', 'x', 0), ('b', 'b', 'x', 0)",
    )
    .execute(&raw)
    .await
    .unwrap();
    sqlx::query(&insert_users("old", 31, "cycle"))
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    let db = RawDb::open(&url, dir, drop_pg).await;
    let counts = assert_exact(&db.store, &[1, 2], "migrated").await;
    assert_eq!((counts.total, counts.active), (31, 7));
    db.sql(&insert_users("new", 4, "2")).await;
    let counts = assert_exact(&db.store, &[1, 2], "after").await;
    assert_eq!(counts.total, 35);
    db.finish().await;
}

#[tokio::test]
async fn counts_start_from_the_users_already_there_sqlite() {
    counts_start_from_the_users_already_there(Backend::Sqlite).await;
}

#[tokio::test]
async fn counts_start_from_the_users_already_there_postgres() {
    counts_start_from_the_users_already_there(Backend::Postgres).await;
}
