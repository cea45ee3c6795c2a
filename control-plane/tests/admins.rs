//! The admin endpoints through the real router, on SQLite and PostgreSQL.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{App, TestDb, app, raw};
use nexpoint::api::JwtKeys;
use nexpoint::domain::{Proxies, ResetStrategy, UserStatus};
use nexpoint::store::{NewNode, NewUser, UsageBatch, UserUsageDelta, now};
use serde_json::{Value, json};

/// Every admin as the store sees it, for "nothing changed" checks.
async fn snapshot(app: &App) -> Vec<String> {
    app.store
        .admins(None, 0, None)
        .await
        .unwrap()
        .into_iter()
        .map(|a| format!("{a:?}"))
        .collect()
}

async fn list_names(app: &App, token: &str, query: &str) -> Vec<String> {
    let (status, body) = app
        .json("GET", &format!("/api/admins{query}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap().to_owned())
        .collect()
}

fn new_user(name: &str, status: UserStatus, admin_id: i64) -> NewUser {
    let mut proxies: Proxies = serde_json::from_str(r#"{"vless": {}}"#).unwrap();
    proxies.fill_missing_credentials();
    NewUser {
        username: name.into(),
        status,
        proxies,
        excluded_inbounds: BTreeMap::new(),
        data_limit: None,
        data_limit_reset_strategy: ResetStrategy::NoReset,
        expire: None,
        note: None,
        admin_id: Some(admin_id),
        on_hold_expire_duration: None,
        on_hold_timeout: None,
        auto_delete_in_days: None,
    }
}

async fn admin_id(app: &App, username: &str) -> i64 {
    app.store
        .admin_by_username(username)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn create_returns_the_admin_and_refuses_duplicates(app: &App) {
    let root = app.token("root").await;
    let (status, body) = app
        .json(
            "POST",
            "/api/admin",
            Some(&root),
            Some(json!({
                "username": "Seller2", "password": "s3cret", "is_sudo": false,
                "telegram_id": 42, "discord_webhook": "https://discord.com/api/webhooks/1/x"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "username": "Seller2", "is_sudo": false, "telegram_id": 42,
            "discord_webhook": "https://discord.com/api/webhooks/1/x", "users_usage": 0
        })
    );
    assert_eq!(app.login("seller2", "s3cret").await.0, StatusCode::OK);

    // 0 and "" mean none, as in Marzban.
    let (status, body) = app
        .json(
            "POST",
            "/api/admin",
            Some(&root),
            Some(
                json!({"username": "boss", "password": "pw", "is_sudo": true,
                "telegram_id": 0, "discord_webhook": ""}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_sudo"], true);
    assert_eq!(body["telegram_id"], Value::Null);
    assert_eq!(body["discord_webhook"], Value::Null);
    let boss = app.token("boss").await;
    assert_eq!(list_names(app, &boss, "").await.len(), 5);

    let before = snapshot(app).await;
    for name in ["seller2", "SELLER2", "Root"] {
        let (status, body) = app
            .json(
                "POST",
                "/api/admin",
                Some(&root),
                Some(json!({"username": name, "password": "x", "is_sudo": false})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}: {body}");
        assert_eq!(body["detail"], "Admin already exists");
    }
    assert_eq!(snapshot(app).await, before);
}
on_both!(create_returns_the_admin_and_refuses_duplicates);

async fn create_validates_every_field(app: &App) {
    let root = app.token("root").await;
    let ok = json!({"username": "newbie", "password": "pw", "is_sudo": false});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = ok.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (with("username", json!("ab")), "username"),
        (with("username", json!("a".repeat(33))), "username"),
        (with("username", json!("has space")), "username"),
        (with("username", json!(12)), "body"),
        (with("password", json!("")), "password"),
        (with("password", json!("p".repeat(129))), "password"),
        (without("password"), "body"),
        (without("is_sudo"), "body"),
        (with("is_sudo", json!("yes")), "body"),
        (with("telegram_id", json!("abc")), "body"),
        (with("telegram_id", json!(1e30)), "body"),
        (with("telegram_id", json!(u64::MAX)), "body"),
        (
            with("discord_webhook", json!("http://discord.com/x")),
            "discord_webhook",
        ),
        (
            with(
                "discord_webhook",
                json!("https://discord.com.evil.example/x"),
            ),
            "discord_webhook",
        ),
        (
            with(
                "discord_webhook",
                json!(format!("https://discord.com/{}", "a".repeat(1100))),
            ),
            "discord_webhook",
        ),
        (json!([1, 2]), "body"),
    ];
    let before = snapshot(app).await;
    for (body, field) in cases {
        let (status, got) = app
            .json("POST", "/api/admin", Some(&root), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {got}");
        assert!(got["detail"].get(field).is_some(), "{body} -> {got}");
    }
    for text in ["{", "", "{\"username\": \"newbie\",}"] {
        let (status, got) = raw(app, "POST", "/api/admin", &root, text).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text:?}");
        assert!(got["detail"].get("body").is_some(), "{got}");
    }
    assert_eq!(snapshot(app).await, before);
    assert_eq!(
        app.json("POST", "/api/admin", Some(&root), Some(ok))
            .await
            .0,
        StatusCode::OK
    );
}
on_both!(create_validates_every_field);

async fn only_sudo_admins_manage_admins(app: &App) {
    let reseller = app.token("reseller").await;
    let admin = app.store.admin_by_username("root").await.unwrap().unwrap();
    let forged = JwtKeys::new("not-the-secret", 60).issue(&admin).unwrap();
    let endpoints: [(&str, &str, Option<Value>); 9] = [
        (
            "POST",
            "/api/admin",
            Some(json!({"username": "x1x", "password": "p", "is_sudo": true})),
        ),
        ("PUT", "/api/admin/other", Some(json!({"is_sudo": true}))),
        ("DELETE", "/api/admin/other", None),
        ("GET", "/api/admins", None),
        ("POST", "/api/admin/other/users/disable", None),
        ("POST", "/api/admin/other/users/activate", None),
        ("POST", "/api/admin/usage/reset/other", None),
        ("GET", "/api/admin/usage/other", None),
        // Unknown targets are still 403, not 404: nothing leaks.
        ("DELETE", "/api/admin/ghost", None),
    ];
    let before = snapshot(app).await;
    for (method, path, body) in endpoints {
        let (status, got) = app.json(method, path, Some(&reseller), body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {got}");
        assert_eq!(got["detail"], "You're not allowed");
        // Even a malformed body: authorization comes first.
        let (status, _) = raw(app, method, path, &reseller, "{").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} malformed");
        for token in [None, Some(forged.as_str()), Some("garbage")] {
            let (status, got) = app.json(method, path, token, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {got}");
        }
    }
    assert_eq!(snapshot(app).await, before);
    // Every admin sees itself.
    let (status, me) = app.json("GET", "/api/admin", Some(&reseller), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"username": "reseller", "is_sudo": false, "telegram_id": null,
            "discord_webhook": null, "users_usage": 0})
    );
}
on_both!(only_sudo_admins_manage_admins);

async fn modify_updates_fields_and_a_new_password_ends_old_tokens(app: &App) {
    let root = app.token("root").await;
    let reseller = app
        .store
        .admin_by_username("reseller")
        .await
        .unwrap()
        .unwrap();
    // Tokens carry whole seconds: one issued a minute ago predates the change.
    let old_token = JwtKeys::new("test-secret", 60)
        .issue_at(&reseller, now() - 60)
        .unwrap();

    let (status, body) = app
        .json(
            "PUT",
            "/api/admin/RESELLER",
            Some(&root),
            Some(json!({"is_sudo": false, "telegram_id": 7,
                "discord_webhook": "https://discord.com/api/webhooks/2/y"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"username": "reseller", "is_sudo": false, "telegram_id": 7,
            "discord_webhook": "https://discord.com/api/webhooks/2/y", "users_usage": 0})
    );
    // No password given: old tokens still work.
    assert_eq!(
        app.json("GET", "/api/admin", Some(&old_token), None)
            .await
            .0,
        StatusCode::OK
    );

    // null keeps, 0 and "" clear.
    let (_, body) = app
        .json(
            "PUT",
            "/api/admin/reseller",
            Some(&root),
            Some(json!({"is_sudo": false, "telegram_id": null})),
        )
        .await;
    assert_eq!(body["telegram_id"], 7);
    assert_eq!(
        body["discord_webhook"],
        "https://discord.com/api/webhooks/2/y"
    );
    let (_, body) = app
        .json(
            "PUT",
            "/api/admin/reseller",
            Some(&root),
            Some(json!({"is_sudo": false, "telegram_id": 0, "discord_webhook": ""})),
        )
        .await;
    assert_eq!(body["telegram_id"], Value::Null);
    assert_eq!(body["discord_webhook"], Value::Null);

    let (status, _) = app
        .json(
            "PUT",
            "/api/admin/reseller",
            Some(&root),
            Some(json!({"is_sudo": false, "password": "n3w"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.json("GET", "/api/admin", Some(&old_token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("reseller", "pw").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login("reseller", "n3w").await.0, StatusCode::OK);

    // Promotion works; the promoted admin now reaches sudo endpoints.
    let (_, body) = app
        .json(
            "PUT",
            "/api/admin/other",
            Some(&root),
            Some(json!({"is_sudo": true})),
        )
        .await;
    assert_eq!(body["is_sudo"], true);
    let other = app.token("other").await;
    assert_eq!(
        app.json("GET", "/api/admins", Some(&other), None).await.0,
        StatusCode::OK
    );
    // Another sudo admin is off limits; oneself is not, but cannot demote.
    let (status, body) = app
        .json(
            "PUT",
            "/api/admin/other",
            Some(&root),
            Some(json!({"is_sudo": false})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .json(
            "PUT",
            "/api/admin/root",
            Some(&root),
            Some(json!({"is_sudo": false, "telegram_id": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_sudo"], true);
    assert_eq!(body["telegram_id"], 5);

    let (status, body) = app
        .json(
            "PUT",
            "/api/admin/ghost",
            Some(&root),
            Some(json!({"is_sudo": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Admin not found");
}
on_both!(modify_updates_fields_and_a_new_password_ends_old_tokens);

async fn modify_rejects_bad_input_without_writing(app: &App) {
    let root = app.token("root").await;
    let cases = [
        (json!({"password": "x"}), "body"),
        (json!({"is_sudo": 1}), "body"),
        (json!({"is_sudo": false, "password": ""}), "password"),
        (
            json!({"is_sudo": false, "password": "p".repeat(129)}),
            "password",
        ),
        (json!({"is_sudo": false, "telegram_id": "7"}), "body"),
        (json!({"is_sudo": false, "telegram_id": u64::MAX}), "body"),
        (
            json!({"is_sudo": true, "password": "fine", "discord_webhook": "ftp://x"}),
            "discord_webhook",
        ),
    ];
    let before = snapshot(app).await;
    for (body, field) in cases {
        let (status, got) = app
            .json(
                "PUT",
                "/api/admin/reseller",
                Some(&root),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {got}");
        assert!(got["detail"].get(field).is_some(), "{body} -> {got}");
    }
    for text in [
        "nope",
        r#"{"is_sudo": false, "telegram_id": 18446744073709551616}"#,
        r#"{"is_sudo": false, "telegram_id": 1e400}"#,
    ] {
        let (status, got) = raw(app, "PUT", "/api/admin/reseller", &root, text).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}: {got}");
    }
    assert_eq!(snapshot(app).await, before);
    assert_eq!(app.login("reseller", "pw").await.0, StatusCode::OK);
}
on_both!(modify_rejects_bad_input_without_writing);

async fn delete_keeps_the_users_without_an_owner(app: &App) {
    let root = app.token("root").await;
    let other = app.token("other").await;
    let (status, body) = app
        .json(
            "POST",
            "/api/user",
            Some(&other),
            Some(json!({"username": "orphan", "proxies": {"vmess": {}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["admin"]["username"], "other");

    let (status, body) = app
        .json("DELETE", "/api/admin/Other", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["detail"], "Admin removed successfully");
    let (status, user) = app.json("GET", "/api/user/orphan", Some(&root), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["admin"], Value::Null);
    // The removed admin's token is dead.
    assert_eq!(
        app.json("GET", "/api/admin", Some(&other), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app
        .json("DELETE", "/api/admin/other", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Admin not found");
    // The name is free again.
    let (status, _) = app
        .json(
            "POST",
            "/api/admin",
            Some(&root),
            Some(json!({"username": "other", "password": "pw", "is_sudo": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Sudo accounts, oneself included, cannot be deleted here.
    let before = snapshot(app).await;
    let (status, body) = app
        .json("DELETE", "/api/admin/root", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(snapshot(app).await, before);
}
on_both!(delete_keeps_the_users_without_an_owner);

async fn list_filters_and_pages(app: &App) {
    let root = app.token("root").await;
    for name in ["under_score", "percent"] {
        let (status, _) = app
            .json(
                "POST",
                "/api/admin",
                Some(&root),
                Some(json!({"username": name, "password": "pw", "is_sudo": false})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let all = ["root", "reseller", "other", "under_score", "percent"];
    assert_eq!(list_names(app, &root, "").await, all);
    assert_eq!(list_names(app, &root, "?limit=0&offset=0").await, all);
    assert_eq!(list_names(app, &root, "?username=SELL").await, ["reseller"]);
    assert_eq!(list_names(app, &root, "?username=R").await.len(), 5);
    assert_eq!(
        list_names(app, &root, "?offset=1&limit=2").await,
        ["reseller", "other"]
    );
    assert_eq!(
        list_names(app, &root, "?offset=9").await,
        Vec::<String>::new()
    );
    assert_eq!(
        list_names(app, &root, "?username=r&offset=3").await,
        ["under_score", "percent"]
    );
    // LIKE's wildcards match themselves only.
    assert_eq!(list_names(app, &root, "?username=_").await, ["under_score"]);
    assert_eq!(
        list_names(app, &root, "?username=%25").await,
        Vec::<String>::new()
    );
    assert_eq!(
        list_names(app, &root, "?username=r%25t").await,
        Vec::<String>::new()
    );

    for (query, field) in [
        ("?offset=-1", "offset"),
        ("?limit=-5", "limit"),
        ("?limit=abc", "query"),
        ("?offset=99999999999999999999", "query"),
    ] {
        let (status, body) = app
            .json("GET", &format!("/api/admins{query}"), Some(&root), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(body["detail"].get(field).is_some(), "{query}: {body}");
    }
}
on_both!(list_filters_and_pages);

async fn usage_reads_and_resets(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let (status, user) = app
        .json(
            "POST",
            "/api/user",
            Some(&reseller),
            Some(json!({"username": "heavy", "proxies": {"vmess": {}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let user_id = app
        .store
        .user_by_username("heavy")
        .await
        .unwrap()
        .unwrap()
        .id;
    let node = app
        .store
        .create_node(
            NewNode {
                name: "n1".into(),
                address: "127.0.0.1".into(),
                port: 1,
                api_port: 2,
                usage_coefficient: 1.0,
            },
            "hash-n1",
            i64::MAX,
            &[],
        )
        .await
        .unwrap();
    app.store
        .apply_usage(&UsageBatch {
            node_id: node.id,
            after_sequence: 0,
            last_sequence: 1,
            coefficient: 1.0,
            deltas: vec![UserUsageDelta {
                user_id,
                uplink: 1000,
                downlink: 234,
                recorded_at: now(),
            }],
        })
        .await
        .unwrap();

    let (status, body) = app
        .json("GET", "/api/admin/usage/Reseller", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!(1234));
    let (status, body) = app
        .json("POST", "/api/admin/usage/reset/reseller", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "reseller");
    assert_eq!(body["users_usage"], 0);
    let (_, body) = app
        .json("GET", "/api/admin/usage/reseller", Some(&root), None)
        .await;
    assert_eq!(body, json!(0));
    // The users keep their own traffic.
    let (_, user) = app.json("GET", "/api/user/heavy", Some(&root), None).await;
    assert_eq!(user["used_traffic"], 1234);

    for (method, path) in [
        ("GET", "/api/admin/usage/ghost"),
        ("POST", "/api/admin/usage/reset/ghost"),
    ] {
        let (status, body) = app.json(method, path, Some(&root), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["detail"], "Admin not found");
    }
}
on_both!(usage_reads_and_resets);

fn statuses(changes: &nexpoint::store::UserChanges) -> BTreeMap<String, &'static str> {
    changes
        .changed
        .iter()
        .map(|u| (u.username.clone(), u.status.as_str()))
        .collect()
}

async fn bulk_disable_and_activate_change_only_that_admins_users_live(app: &App) {
    let root = app.token("root").await;
    let reseller = admin_id(app, "reseller").await;
    let other = admin_id(app, "other").await;
    let store = &app.store;
    store
        .create_user(new_user("act", UserStatus::Active, reseller))
        .await
        .unwrap();
    let mut hold = new_user("hold", UserStatus::OnHold, reseller);
    hold.on_hold_expire_duration = Some(86_400);
    store.create_user(hold).await.unwrap();
    let mut lapsed = new_user("lapsed", UserStatus::Disabled, reseller);
    lapsed.expire = Some(now() - 10);
    store.create_user(lapsed).await.unwrap();
    store
        .create_user(new_user("dis", UserStatus::Disabled, reseller))
        .await
        .unwrap();
    store
        .create_user(new_user("lim", UserStatus::Limited, reseller))
        .await
        .unwrap();
    store
        .create_user(new_user("theirs", UserStatus::Active, other))
        .await
        .unwrap();

    let base = store.current_revision().await.unwrap();
    let (status, body) = app
        .json(
            "POST",
            "/api/admin/Reseller/users/disable",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["detail"], "Users successfully disabled");
    let changes = store.user_changes_since(base).await.unwrap();
    assert!(changes.revision > base);
    // Active and on-hold users only; nothing restarts, the nodes get a change set.
    assert_eq!(
        statuses(&changes),
        BTreeMap::from([("act".into(), "disabled"), ("hold".into(), "disabled")])
    );
    assert!(changes.deleted_emails.is_empty());

    // Nothing left to disable: no new revision.
    let after_disable = changes.revision;
    let (status, _) = app
        .json(
            "POST",
            "/api/admin/reseller/users/disable",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.current_revision().await.unwrap(), after_disable);

    let (status, body) = app
        .json(
            "POST",
            "/api/admin/reseller/users/activate",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["detail"], "Users successfully activated");
    let changes = store.user_changes_since(after_disable).await.unwrap();
    assert!(changes.revision > after_disable);
    assert_eq!(
        statuses(&changes),
        BTreeMap::from([
            ("act".into(), "active"),
            // Never started: back on hold, as Marzban.
            ("hold".into(), "on_hold"),
            ("dis".into(), "active"),
            // Past its expiry: not served again.
            ("lapsed".into(), "expired"),
        ])
    );
    let theirs = store.user_by_username("theirs").await.unwrap().unwrap();
    assert_eq!(theirs.status, UserStatus::Active);
    let lim = store.user_by_username("lim").await.unwrap().unwrap();
    assert_eq!(lim.status, UserStatus::Limited);

    for action in ["disable", "activate"] {
        let path = format!("/api/admin/ghost/users/{action}");
        let (status, body) = app.json("POST", &path, Some(&root), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["detail"], "Admin not found");
    }
    assert_eq!(store.current_revision().await.unwrap(), changes.revision);
}
on_both!(bulk_disable_and_activate_change_only_that_admins_users_live);

#[tokio::test]
async fn admin_endpoints_are_documented() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let req = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (status, _, body) = app.call(req).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/api/admin", &["get", "post"][..]),
        ("/api/admin/{username}", &["put", "delete"]),
        ("/api/admins", &["get"]),
        ("/api/admin/{username}/users/disable", &["post"]),
        ("/api/admin/{username}/users/activate", &["post"]),
        ("/api/admin/usage/reset/{username}", &["post"]),
        ("/api/admin/usage/{username}", &["get"]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path}");
        }
    }
    db.finish().await;
}
