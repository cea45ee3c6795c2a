//! Every operation in the OpenAPI document, driven with bad credentials and
//! bad bodies: each answers 4xx with a JSON `detail`, never a 5xx, and the
//! database is the same afterwards.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{App, TestDb, app};
use nexpoint::api::JwtKeys;
use serde_json::Value;

/// Operations anyone may call (their own checks are tested elsewhere).
fn public(path: &str) -> bool {
    path == "/api/admin/token" || path == "/api/node/enroll" || path.starts_with("/sub/")
}

fn concrete(path: &str) -> String {
    // Path parameters get values that exist nowhere.
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 1..end];
        out.push_str(if name.contains("id") {
            "987654"
        } else {
            "nobody-here"
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

async fn send(
    app: &App,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let (status, _, bytes) = app.call(req).await;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// What must not change when every request is refused.
async fn fingerprint(app: &App, token: &str) -> Vec<Value> {
    let mut out = vec![Value::from(app.store.current_revision().await.unwrap())];
    for path in [
        "/api/users",
        "/api/admins",
        "/api/nodes",
        "/api/hosts",
        "/api/user_template",
        "/api/core/config",
    ] {
        let (status, body) = send(app, "GET", path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        out.push(body);
    }
    out
}

fn assert_refused(what: &str, status: StatusCode, body: &Value) {
    assert!(status.is_client_error(), "{what}: {status} {body}");
    assert!(
        body.get("detail").is_some(),
        "{what}: {status} without detail: {body}"
    );
}

async fn sweep(app: &App) {
    let root = app.token("root").await;
    let (status, doc) = send(app, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let before = fingerprint(app, &root).await;

    let admin = app.store.admin_by_username("root").await.unwrap().unwrap();
    let expired = JwtKeys::new("test-secret", 1)
        .issue_at(&admin, nexpoint::store::now() - 3600)
        .unwrap();
    let forged = JwtKeys::new("not-the-secret", 60).issue(&admin).unwrap();

    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let uri = concrete(path);
            operations += 1;
            if !public(path) {
                for (label, token) in [
                    ("no token", None),
                    ("expired token", Some(expired.as_str())),
                    ("forged token", Some(forged.as_str())),
                    ("garbage token", Some("x.y.z")),
                ] {
                    let (status, body) = send(app, &method, &uri, token, None).await;
                    assert_eq!(
                        status,
                        StatusCode::UNAUTHORIZED,
                        "{method} {path} with {label}: {body}"
                    );
                    assert_refused(&format!("{method} {path} {label}"), status, &body);
                }
            }
            if op.get("requestBody").is_some() {
                let json_body = op["requestBody"]["content"]
                    .get("application/json")
                    .is_some();
                let bodies: &[&str] = if json_body {
                    &[
                        "{",
                        "[]",
                        "null",
                        "\"text\"",
                        "{\"username\": 42, \"name\": [], \"data_limit\": \"big\", \"status\": \"nonsense\"}",
                    ]
                } else {
                    &["%%%"]
                };
                for body in bodies {
                    let (status, value) = send(app, &method, &uri, Some(&root), Some(body)).await;
                    assert_refused(&format!("{method} {path} with body {body}"), status, &value);
                }
            }
            if method != "GET" {
                continue;
            }
            // Whatever the query, no 5xx.
            let junk = format!(
                "{uri}?offset=-1&limit=abc&start=notadate&end=2024-13-45&sort=%00&status=zzz"
            );
            let (status, body) = send(app, &method, &junk, Some(&root), None).await;
            assert!(
                !status.is_server_error(),
                "{method} {junk}: {status} {body}"
            );
        }
    }
    assert!(operations > 40, "only {operations} operations documented");
    assert_eq!(
        fingerprint(app, &root).await,
        before,
        "a refused request changed the database"
    );
}

#[tokio::test]
async fn sqlite() {
    let db = TestDb::sqlite().await;
    sweep(&app(&db).await).await;
    db.finish().await;
}

#[tokio::test]
async fn postgres() {
    let db = TestDb::postgres().await;
    sweep(&app(&db).await).await;
    db.finish().await;
}
