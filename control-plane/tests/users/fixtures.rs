#![allow(unused_imports, dead_code)] // Shared by the modules of this suite; each uses a part.

pub use axum::body::Body;
pub use axum::http::{Request, StatusCode, header};
pub use nexpoint::domain::UserStatus;
pub use nexpoint::store::{NewNode, UsageBatch, User, UserFilter, UserUsageDelta, now};
pub use serde_json::{Value, json};

pub use crate::common::{App, TestDb, app, raw};

pub fn usernames(body: &Value) -> Vec<String> {
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn seed(app: &App) -> (String, String) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    for (i, name) in ["Alpha", "bravo", "charlie", "delta", "echo"]
        .iter()
        .enumerate()
    {
        let token = if i % 2 == 0 { &root } else { &reseller };
        let (status, body) = app
            .json(
                "POST",
                "/api/user",
                Some(token),
                Some(json!({
                    "username": name,
                    "proxies": {"vmess": {}},
                    "data_limit": (5 - i as i64) * 1000,
                    "expire": if i == 2 { Value::Null } else { json!(2_000_000_000 + i as i64) },
                    "note": if *name == "delta" { "VIP_customer 100%" } else { "" },
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    (root, reseller)
}

// ---------------------------------------------------------------------------
// Fixtures for the write endpoints.

/// Creates a user through the API and returns its response.
pub async fn create(app: &App, token: &str, body: Value) -> Value {
    let (status, user) = app.json("POST", "/api/user", Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    user
}

pub async fn row(app: &App, username: &str) -> User {
    app.store
        .user_by_username(username)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{username} exists"))
}

/// Every user as the store sees it, and the revision: "nothing changed".
pub async fn snapshot(app: &App) -> (i64, Vec<String>) {
    let (users, _) = app.store.list_users(&UserFilter::default()).await.unwrap();
    (
        app.store.current_revision().await.unwrap(),
        users.iter().map(|u| format!("{u:?}")).collect(),
    )
}

/// Usernames the nodes receive as changed after `base`.
pub async fn changed_since(app: &App, base: i64) -> Vec<String> {
    let mut names: Vec<String> = app
        .store
        .user_changes_since(base)
        .await
        .unwrap()
        .changed
        .into_iter()
        .map(|u| u.username)
        .collect();
    names.sort();
    names
}

pub async fn revision(app: &App) -> i64 {
    app.store.current_revision().await.unwrap()
}

pub async fn node(app: &App, name: &str) -> i64 {
    app.store
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

/// `bytes` of traffic on a node, at `at`, through usage ingestion.
pub async fn traffic_at(app: &App, node_id: i64, username: &str, bytes: i64, at: i64) {
    let user_id = row(app, username).await.id;
    let sequence = app.store.node(node_id).await.unwrap().usage_sequence;
    app.store
        .apply_usage(&UsageBatch {
            node_id,
            after_sequence: sequence,
            last_sequence: sequence + 1,
            coefficient: 1.0,
            deltas: vec![UserUsageDelta {
                user_id,
                uplink: bytes / 2,
                downlink: bytes - bytes / 2,
                recorded_at: at,
            }],
        })
        .await
        .unwrap();
}

pub async fn traffic(app: &App, node_id: i64, username: &str, bytes: i64) {
    traffic_at(app, node_id, username, bytes, now()).await;
}

pub fn close_to(value: &Value, expected: i64) -> bool {
    value.as_i64().is_some_and(|v| (v - expected).abs() <= 5)
}

/// Sends a request that must be refused and checks the database kept still.
pub async fn refused(
    app: &App,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    want: StatusCode,
) -> Value {
    let before = snapshot(app).await;
    let (status, got) = app.json(method, path, token, body.clone()).await;
    assert_eq!(status, want, "{method} {path} {body:?}: {got}");
    assert!(
        got["detail"].is_string() || got["detail"].is_object(),
        "{got}"
    );
    assert_eq!(
        snapshot(app).await,
        before,
        "{method} {path} {body:?} wrote"
    );
    got
}

pub async fn put(app: &App, token: &str, username: &str, body: Value) -> Value {
    let (status, user) = app
        .json(
            "PUT",
            &format!("/api/user/{username}"),
            Some(token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}: {user}");
    user
}

pub async fn post(app: &App, token: &str, path: &str) -> Value {
    let (status, body) = app.json("POST", path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// A subscription fetch, as a client makes it.
pub async fn fetch_subscription(app: &App, url: &str) -> StatusCode {
    let req = Request::get(url)
        .header(header::USER_AGENT, "v2rayNG/1.8.5")
        .body(Body::empty())
        .unwrap();
    app.call(req).await.0
}

pub fn without_url(mut user: Value) -> Value {
    user.as_object_mut().unwrap().remove("subscription_url");
    user
}
