//! The user template endpoints through the real router, on SQLite and
//! PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{App, TestDb, app, raw};
use nexpoint::api::JwtKeys;
use serde_json::{Value, json};

async fn snapshot(app: &App) -> Vec<String> {
    app.store
        .templates(0, None)
        .await
        .unwrap()
        .into_iter()
        .map(|t| format!("{t:?}"))
        .collect()
}

async fn create(app: &App, token: &str, body: Value) -> Value {
    let (status, got) = app
        .json(
            "POST",
            "/api/user_template",
            Some(token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body} -> {got}");
    got
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

async fn create_read_and_list(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let full = create(
        app,
        &root,
        json!({
            "name": "Monthly 50G", "data_limit": 50_000_000_000i64, "expire_duration": 2_592_000,
            "username_prefix": "m-", "username_suffix": "@shop",
            "inbounds": {"vmess": ["VMess TCP"], "vless": ["VLESS TCP", "VLESS TCP"]}
        }),
    )
    .await;
    let id = full["id"].as_i64().unwrap();
    assert_eq!(
        full,
        json!({
            "id": id, "name": "Monthly 50G", "data_limit": 50_000_000_000i64,
            "expire_duration": 2_592_000, "username_prefix": "m-", "username_suffix": "@shop",
            "inbounds": {"vmess": ["VMess TCP"], "vless": ["VLESS TCP"]}
        })
    );
    // Only a name is needed; {} means every inbound.
    let bare = create(app, &root, json!({"name": "bare"})).await;
    assert_eq!(
        bare,
        json!({
            "id": bare["id"], "name": "bare", "data_limit": null, "expire_duration": null,
            "username_prefix": null, "username_suffix": null, "inbounds": {}
        })
    );
    let zero = create(
        app,
        &root,
        json!({"name": "zero", "data_limit": 0, "expire_duration": 0, "inbounds": {"trojan": []}}),
    )
    .await;
    assert_eq!(zero["data_limit"], 0);
    assert_eq!(zero["inbounds"], json!({"trojan": []}));

    // Every admin reads templates.
    for token in [&root, &reseller] {
        let (status, got) = app
            .json(
                "GET",
                &format!("/api/user_template/{id}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got, full);
        let (status, list) = app
            .json("GET", "/api/user_template", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(names(&list), ["Monthly 50G", "bare", "zero"]);
        assert_eq!(list[0], full);
    }
    for (query, want) in [
        ("?offset=1", &["bare", "zero"][..]),
        ("?limit=1", &["Monthly 50G"]),
        ("?offset=1&limit=1", &["bare"]),
        ("?offset=0&limit=0", &["Monthly 50G", "bare", "zero"]),
        ("?offset=5", &[]),
    ] {
        let (status, list) = app
            .json(
                "GET",
                &format!("/api/user_template{query}"),
                Some(&reseller),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(names(&list), want, "{query}");
    }
    for (query, field) in [
        ("?offset=-1", "offset"),
        ("?limit=-1", "limit"),
        ("?limit=ten", "query"),
    ] {
        let (status, body) = app
            .json(
                "GET",
                &format!("/api/user_template{query}"),
                Some(&root),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(body["detail"].get(field).is_some(), "{query}: {body}");
    }

    let (status, body) = app
        .json("GET", "/api/user_template/999999", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "User Template not found");
    let (status, body) = app
        .json("GET", "/api/user_template/abc", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"].get("path").is_some(), "{body}");
}
on_both!(create_read_and_list);

async fn names_are_unique_ignoring_case(app: &App) {
    let root = app.token("root").await;
    create(app, &root, json!({"name": "Gold"})).await;
    let silver = create(app, &root, json!({"name": "silver"})).await;
    let before = snapshot(app).await;
    for name in ["Gold", "gold", "GOLD"] {
        let (status, body) = app
            .json(
                "POST",
                "/api/user_template",
                Some(&root),
                Some(json!({"name": name, "data_limit": 5})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}: {body}");
        assert_eq!(body["detail"], "Template by this name already exists");
        // Renaming onto another template's name conflicts too.
        let (status, body) = app
            .json(
                "PUT",
                &format!("/api/user_template/{}", silver["id"]),
                Some(&root),
                Some(json!({"name": name, "data_limit": 5})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}: {body}");
    }
    assert_eq!(snapshot(app).await, before);
    // A template may change the case of its own name.
    let (status, body) = app
        .json(
            "PUT",
            &format!("/api/user_template/{}", silver["id"]),
            Some(&root),
            Some(json!({"name": "Silver"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Silver");
}
on_both!(names_are_unique_ignoring_case);

async fn input_is_validated_field_by_field(app: &App) {
    let root = app.token("root").await;
    let existing = create(app, &root, json!({"name": "keep", "data_limit": 1})).await;
    let put_path = format!("/api/user_template/{}", existing["id"]);
    let ok = json!({"name": "fine"});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("name", json!("")), "name"),
        (with("name", json!("   ")), "name"),
        (with("name", json!("n".repeat(65))), "name"),
        (with("name", json!(5)), "body"),
        (with("data_limit", json!(-1)), "data_limit"),
        (with("data_limit", json!("1GB")), "body"),
        (with("data_limit", json!(1.5)), "body"),
        (with("data_limit", json!(u64::MAX)), "body"),
        (with("expire_duration", json!(-86400)), "expire_duration"),
        (with("expire_duration", json!(true)), "body"),
        (with("username_prefix", json!("")), "username_prefix"),
        (
            with("username_prefix", json!("p".repeat(21))),
            "username_prefix",
        ),
        (with("username_prefix", json!("a b")), "username_prefix"),
        (with("username_suffix", json!("ü")), "username_suffix"),
        (
            with("username_suffix", json!("s".repeat(21))),
            "username_suffix",
        ),
        (with("inbounds", json!({"wireguard": []})), "inbounds"),
        (with("inbounds", json!({"vmess": "VMess TCP"})), "body"),
        (with("inbounds", json!(["VMess TCP"])), "body"),
        (json!("fine"), "body"),
    ];
    let before = snapshot(app).await;
    for (body, field) in &cases {
        for (method, path) in [("POST", "/api/user_template"), ("PUT", put_path.as_str())] {
            let (status, got) = app
                .json(method, path, Some(&root), Some(body.clone()))
                .await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {body} -> {got}"
            );
            assert!(
                got["detail"].get(*field).is_some(),
                "{method} {body} -> {got}"
            );
        }
    }
    let (status, got) = app
        .json(
            "POST",
            "/api/user_template",
            Some(&root),
            Some(json!({"data_limit": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(got["detail"].get("name").is_some(), "{got}");
    for text in ["{", "", r#"{"name": "x", "data_limit": 1e400}"#] {
        for (method, path) in [("POST", "/api/user_template"), ("PUT", put_path.as_str())] {
            let (status, got) = raw(app, method, path, &root, text).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {text:?}"
            );
            assert!(got["detail"].get("body").is_some(), "{got}");
        }
    }
    // Tags must be inbounds of that protocol in the current core config.
    for inbounds in [
        json!({"vmess": ["nope"]}),
        json!({"vmess": ["VLESS TCP"]}),
        json!({"vmess": ["VMess TCP"], "trojan": ["nope"]}),
    ] {
        for (method, path) in [("POST", "/api/user_template"), ("PUT", put_path.as_str())] {
            let (status, got) = app
                .json(
                    method,
                    path,
                    Some(&root),
                    Some(json!({"name": "fine", "inbounds": inbounds})),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {inbounds}");
            assert!(
                got["detail"].as_str().unwrap().ends_with("doesn't exist"),
                "{got}"
            );
        }
    }
    let (_, got) = app
        .json(
            "POST",
            "/api/user_template",
            Some(&root),
            Some(json!({"name": "fine", "inbounds": {"vless": ["nope"]}})),
        )
        .await;
    assert_eq!(got["detail"], "Inbound nope doesn't exist");
    assert_eq!(snapshot(app).await, before);
    // The rejected name is still free.
    create(app, &root, ok).await;
}
on_both!(input_is_validated_field_by_field);

async fn only_sudo_admins_write_templates(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let t = create(app, &root, json!({"name": "t"})).await;
    let path = format!("/api/user_template/{}", t["id"]);
    let admin = app.store.admin_by_username("root").await.unwrap().unwrap();
    let forged = JwtKeys::new("not-the-secret", 60).issue(&admin).unwrap();
    let body = json!({"name": "renamed"});
    let writes = [
        ("POST", "/api/user_template", Some(body.clone())),
        ("PUT", path.as_str(), Some(body.clone())),
        ("DELETE", path.as_str(), None),
        // Unknown ids are 403 as well: no probing.
        ("PUT", "/api/user_template/999999", Some(body.clone())),
        ("DELETE", "/api/user_template/999999", None),
    ];
    let before = snapshot(app).await;
    for (method, path, body) in &writes {
        let (status, got) = app.json(method, path, Some(&reseller), body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {got}");
        assert_eq!(got["detail"], "You're not allowed");
        let (status, _) = raw(app, method, path, &reseller, "{").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} malformed");
    }
    let reads = [
        ("GET", path.as_str(), None),
        ("GET", "/api/user_template", None),
    ];
    for (method, path, body) in writes.iter().chain(reads.iter()) {
        for token in [None, Some(forged.as_str()), Some("garbage")] {
            let (status, got) = app.json(method, path, token, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {got}");
        }
    }
    assert_eq!(snapshot(app).await, before);
}
on_both!(only_sudo_admins_write_templates);

async fn modify_keeps_what_is_left_out(app: &App) {
    let root = app.token("root").await;
    let t = create(
        app,
        &root,
        json!({
            "name": "base", "data_limit": 10, "expire_duration": 20,
            "username_prefix": "p", "username_suffix": "s", "inbounds": {"vmess": ["VMess TCP"]}
        }),
    )
    .await;
    let id = t["id"].as_i64().unwrap();
    let path = format!("/api/user_template/{id}");
    let put = async |body: Value| {
        let (status, got) = app.json("PUT", &path, Some(&root), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        got
    };

    // Null, absent and {} inbounds keep their values (Marzban's rule).
    let got = put(json!({"data_limit": 0, "username_prefix": null, "inbounds": {}})).await;
    assert_eq!(
        got,
        json!({
            "id": id, "name": "base", "data_limit": 0, "expire_duration": 20,
            "username_prefix": "p", "username_suffix": "s", "inbounds": {"vmess": ["VMess TCP"]}
        })
    );
    let got = put(json!({
        "name": "renamed", "expire_duration": 30, "username_suffix": "x.y",
        "inbounds": {"shadowsocks": ["Shadowsocks TCP"], "vless": []}
    }))
    .await;
    assert_eq!(
        got,
        json!({
            "id": id, "name": "renamed", "data_limit": 0, "expire_duration": 30,
            "username_prefix": "p", "username_suffix": "x.y",
            "inbounds": {"shadowsocks": ["Shadowsocks TCP"], "vless": []}
        })
    );
    let (status, read) = app.json("GET", &path, Some(&root), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, got);

    let (status, body) = app
        .json(
            "PUT",
            "/api/user_template/999999",
            Some(&root),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "User Template not found");
    let (status, _) = app
        .json(
            "PUT",
            "/api/user_template/1.5",
            Some(&root),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
on_both!(modify_keeps_what_is_left_out);

async fn delete_removes_once(app: &App) {
    let root = app.token("root").await;
    let t = create(app, &root, json!({"name": "gone"})).await;
    let keep = create(app, &root, json!({"name": "kept"})).await;
    let path = format!("/api/user_template/{}", t["id"]);
    let (status, body) = app.json("DELETE", &path, Some(&root), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({}));
    for method in ["GET", "DELETE"] {
        let (status, body) = app.json(method, &path, Some(&root), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(body["detail"], "User Template not found");
    }
    let (_, list) = app
        .json("GET", "/api/user_template", Some(&root), None)
        .await;
    assert_eq!(list, json!([keep]));
    // The name can be used again.
    create(app, &root, json!({"name": "GONE"})).await;
}
on_both!(delete_removes_once);

async fn tags_that_leave_the_core_config_leave_the_template(app: &App) {
    let root = app.token("root").await;
    let config = |extra: &str| {
        format!(
            r#"{{"inbounds": [
                {{"tag": "VMess TCP", "protocol": "vmess", "port": 10001}},
                {{"tag": "VLESS TCP", "protocol": "vless", "port": 10002}}{extra}
            ], "outbounds": [{{"protocol": "freedom", "tag": "DIRECT"}}]}}"#
        )
    };
    app.store
        .set_core_config(&config(
            r#", {"tag": "VMess WS", "protocol": "vmess", "port": 10005, "streamSettings": {"network": "ws"}},
                {"tag": "VLESS WS", "protocol": "vless", "port": 10006, "streamSettings": {"network": "ws"}}"#,
        ))
        .await
        .unwrap();
    let t = create(
        app,
        &root,
        json!({"name": "ws", "inbounds": {"vmess": ["VMess TCP", "VMess WS"], "vless": ["VLESS WS"]}}),
    )
    .await;
    assert_eq!(
        t["inbounds"],
        json!({"vmess": ["VMess TCP", "VMess WS"], "vless": ["VLESS WS"]})
    );
    app.store.set_core_config(&config("")).await.unwrap();
    let (_, got) = app
        .json(
            "GET",
            &format!("/api/user_template/{}", t["id"]),
            Some(&root),
            None,
        )
        .await;
    // A protocol whose every tag left is dropped, not widened to "all".
    assert_eq!(got["inbounds"], json!({"vmess": ["VMess TCP"]}));
}
on_both!(tags_that_leave_the_core_config_leave_the_template);

#[tokio::test]
async fn template_endpoints_are_documented() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let req = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (status, _, body) = app.call(req).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    for (path, methods) in [
        ("/api/user_template", &["get", "post"][..]),
        ("/api/user_template/{id}", &["get", "put", "delete"]),
    ] {
        for method in methods {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
    }
    db.finish().await;
}
