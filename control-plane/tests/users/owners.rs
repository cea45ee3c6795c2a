//! Owner rules endpoint by endpoint, and the OpenAPI listing.

use crate::fixtures::*;
use crate::on_both;

async fn only_owners_touch_their_users_endpoint_by_endpoint(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let other = app.token("other").await;
    create(
        app,
        &reseller,
        json!({"username": "owned", "proxies": {"vmess": {}},
            "next_plan": {"data_limit": 1000}}),
    )
    .await;
    let user_endpoints: [(&str, &str, Option<Value>); 7] = [
        ("GET", "/api/user/owned", None),
        ("PUT", "/api/user/owned", Some(json!({"note": "mine now"}))),
        // Before the reset, which drops the next plan.
        ("POST", "/api/user/owned/active-next", None),
        ("POST", "/api/user/owned/reset", None),
        ("POST", "/api/user/owned/revoke_sub", None),
        ("GET", "/api/user/owned/usage", None),
        ("DELETE", "/api/user/owned", None),
    ];
    for (method, path, body) in &user_endpoints {
        let got = refused(
            app,
            method,
            path,
            Some(&other),
            body.clone(),
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(got["detail"], "You're not allowed", "{method} {path}");
        refused(
            app,
            method,
            path,
            None,
            body.clone(),
            StatusCode::UNAUTHORIZED,
        )
        .await;
        refused(
            app,
            method,
            path,
            Some("not-a-token"),
            body.clone(),
            StatusCode::UNAUTHORIZED,
        )
        .await;
        let unknown = path.replace("owned", "nobody");
        let got = refused(
            app,
            method,
            &unknown,
            Some(&root),
            body.clone(),
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(got["detail"], "User not found", "{method} {unknown}");
    }
    // Sudo only, even for the owner.
    for (method, path) in [
        ("PUT", "/api/user/owned/set-owner?admin_username=other"),
        ("POST", "/api/users/reset"),
    ] {
        for token in [&other, &reseller] {
            let got = refused(app, method, path, Some(token), None, StatusCode::FORBIDDEN).await;
            assert_eq!(got["detail"], "You're not allowed", "{method} {path}");
        }
    }
    // The lists only ever hold the caller's own users.
    create(
        app,
        &reseller,
        json!({"username": "lapsed", "proxies": {"vmess": {}}, "expire": now() - 60}),
    )
    .await;
    let (_, listed) = app
        .json("GET", "/api/users/expired", Some(&other), None)
        .await;
    assert_eq!(listed, json!([]));
    refused(
        app,
        "DELETE",
        "/api/users/expired",
        Some(&other),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;

    // The owner may do all of it, and so may a sudo admin; each write is a
    // change the nodes receive.
    let email = row(app, "owned").await.email();
    let owners = [&reseller, &root].into_iter().cycle();
    for (token, (method, path, body)) in owners.zip(&user_endpoints) {
        let base = revision(app).await;
        let (status, got) = app.json(method, path, Some(token), body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {got}");
        let changes = app.store.user_changes_since(base).await.unwrap();
        match *method {
            "GET" => assert_eq!(changes.revision, base, "{method} {path}"),
            "DELETE" => assert_eq!(changes.deleted_emails, std::slice::from_ref(&email)),
            _ => assert_eq!(changed_since(app, base).await, ["owned"], "{method} {path}"),
        }
    }
}
on_both!(only_owners_touch_their_users_endpoint_by_endpoint);

#[tokio::test]
async fn user_endpoints_are_documented() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let (status, doc) = app.json("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/api/user", &["post"][..]),
        ("/api/user/{username}", &["get", "put", "delete"]),
        ("/api/user/{username}/reset", &["post"]),
        ("/api/user/{username}/revoke_sub", &["post"]),
        ("/api/user/{username}/active-next", &["post"]),
        ("/api/user/{username}/usage", &["get"]),
        ("/api/user/{username}/set-owner", &["put"]),
        ("/api/users", &["get"]),
        ("/api/users/reset", &["post"]),
        ("/api/users/usage", &["get"]),
        ("/api/users/expired", &["get", "delete"]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
    }
    let schemas = &doc["components"]["schemas"];
    for schema in [
        "UserModify",
        "UserResponse",
        "NextPlan",
        "UserUsagesResponse",
        "UsersUsagesResponse",
    ] {
        assert!(schemas[schema].is_object(), "{schema}");
    }
    db.finish().await;
}
