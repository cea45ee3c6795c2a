//! Creating users.

use crate::fixtures::*;
use crate::on_both;

async fn create_goes_through_the_domain(app: &App) {
    let root = app.token("root").await;
    let base = revision(app).await;
    let plan = json!({"data_limit": 5000, "expire": 2_592_000, "add_remaining_traffic": true,
        "fire_on_either": false});
    let user = create(
        app,
        &root,
        json!({
            "username": "planned", "proxies": {"vless": {"flow": "xtls-rprx-vision"}},
            "data_limit": 1000, "expire": now() + 86_400, "data_limit_reset_strategy": "week",
            "note": "n", "auto_delete_in_days": -1, "next_plan": plan,
        }),
    )
    .await;
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "admin",
            "auto_delete_in_days",
            "created_at",
            "data_limit",
            "data_limit_reset_strategy",
            "edit_at",
            "excluded_inbounds",
            "expire",
            "inbounds",
            "lifetime_used_traffic",
            "links",
            "next_plan",
            "note",
            "on_hold_expire_duration",
            "on_hold_timeout",
            "online_at",
            "proxies",
            "status",
            "sub_last_user_agent",
            "sub_updated_at",
            "subscription_url",
            "used_traffic",
            "username",
        ]
    );
    assert_eq!(user["status"], "active");
    assert_eq!(user["next_plan"], plan);
    assert_eq!(user["auto_delete_in_days"], -1);
    assert_eq!(user["data_limit_reset_strategy"], "week");
    assert_eq!(user["edit_at"], Value::Null);
    assert_eq!(user["proxies"]["vless"]["flow"], "xtls-rprx-vision");
    assert_eq!(user["admin"]["username"], "root");
    let stored = row(app, "planned").await;
    assert_eq!(stored.last_status_change, Some(stored.created_at));
    assert_eq!(stored.next_plan.as_ref().unwrap().data_limit, Some(5000));
    assert_eq!(changed_since(app, base).await, ["planned"]);
    let (_, fetched) = app
        .json("GET", "/api/user/planned", Some(&root), None)
        .await;
    assert_eq!(without_url(fetched), without_url(user));

    // An expiry already past: expired from the start...
    let lapsed = create(
        app,
        &root,
        json!({"username": "lapsed", "proxies": {"vmess": {}}, "expire": now() - 60}),
    )
    .await;
    assert_eq!(lapsed["status"], "expired");
    // ...unless a next plan takes over: a fresh plan, active.
    let renewed = create(
        app,
        &root,
        json!({"username": "renewed", "proxies": {"vmess": {}}, "expire": now() - 60,
            "data_limit": 100, "next_plan": {"data_limit": 700, "expire": 3600}}),
    )
    .await;
    assert_eq!(renewed["status"], "active");
    assert_eq!(renewed["data_limit"], 700);
    assert!(close_to(&renewed["expire"], now() + 3600), "{renewed}");
    assert_eq!(renewed["next_plan"], Value::Null);
    // On hold, the expiry waits for the first connection.
    let held = create(
        app,
        &root,
        json!({"username": "held", "proxies": {"trojan": {}}, "status": "on_hold",
            "on_hold_expire_duration": 86_400, "on_hold_timeout": "2040-01-01T00:00:00"}),
    )
    .await;
    assert_eq!(held["status"], "on_hold");
    assert_eq!(held["expire"], Value::Null);
    assert_eq!(held["on_hold_expire_duration"], 86_400);
    assert_eq!(held["on_hold_timeout"], "2040-01-01T00:00:00");
    // 0 means none, as in Marzban.
    let zero = create(
        app,
        &root,
        json!({"username": "zero", "proxies": {"vmess": {}}, "data_limit": 0, "expire": 0}),
    )
    .await;
    assert_eq!(zero["data_limit"], Value::Null);
    assert_eq!(zero["expire"], Value::Null);
}
on_both!(create_goes_through_the_domain);

async fn create_rejects_bad_input_without_writing(app: &App) {
    let root = app.token("root").await;
    create(
        app,
        &root,
        json!({"username": "Taken", "proxies": {"vmess": {}}}),
    )
    .await;
    let ok = json!({"username": "fresh", "proxies": {"vmess": {}}});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("username", json!("a".repeat(33))), "username"),
        (with("username", json!("bad name")), "username"),
        (with("username", json!(42)), "body"),
        (with("note", json!("n".repeat(501))), "note"),
        (with("data_limit", json!(-1)), "data_limit"),
        (with("expire", json!(-1)), "expire"),
        (
            with("on_hold_expire_duration", json!(-5)),
            "on_hold_expire_duration",
        ),
        (with("data_limit", json!("lots")), "body"),
        (with("data_limit", json!(1e30)), "body"),
        (with("expire", json!(u64::MAX)), "body"),
        (with("auto_delete_in_days", json!(1.5)), "body"),
        (with("status", json!("paused")), "body"),
        (with("status", json!("disabled")), "status"),
        (with("status", json!("limited")), "status"),
        (with("data_limit_reset_strategy", json!("hourly")), "body"),
        (with("next_plan", json!("soon")), "body"),
        (with("next_plan", json!({"data_limit": -1})), "next_plan"),
        (with("next_plan", json!({"expire": -1})), "next_plan"),
        (
            with("on_hold_timeout", json!("tomorrow")),
            "on_hold_timeout",
        ),
        (with("proxies", json!({})), "proxies"),
        (with("proxies", json!({"wireguard": {}})), "body"),
        (
            with("proxies", json!({"vless": {"flow": "xtls-rprx-direct"}})),
            "proxies",
        ),
        (
            with("proxies", json!({"vmess": {"id": "not-a-uuid"}})),
            "proxies",
        ),
        (
            with("proxies", json!({"trojan": {"password": ""}})),
            "proxies",
        ),
        (
            with("proxies", json!({"trojan": {"password": "p".repeat(129)}})),
            "proxies",
        ),
        (
            with("proxies", json!({"shadowsocks": {"method": "rc4-md5"}})),
            "proxies",
        ),
        (
            json!({"username": "fresh", "proxies": {"vmess": {}}, "status": "on_hold",
                "on_hold_expire_duration": 60, "expire": now() + 600}),
            "status",
        ),
        (with("status", json!("on_hold")), "status"),
    ];
    for (body, field) in cases {
        let got = refused(
            app,
            "POST",
            "/api/user",
            Some(&root),
            Some(body.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(got["detail"].get(field).is_some(), "{body}: {got}");
    }
    let before = snapshot(app).await;
    for text in [
        "{",
        "[]",
        "null",
        "{\"username\": \"fresh\", \"proxies\": {\"vmess\": {}},}",
    ] {
        let (status, got) = raw(app, "POST", "/api/user", &root, text).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}: {got}");
        assert!(got["detail"]["body"].is_string(), "{text}: {got}");
    }
    assert_eq!(snapshot(app).await, before);

    let got = refused(
        app,
        "POST",
        "/api/user",
        Some(&root),
        Some(with("username", json!("TAKEN"))),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(got["detail"], "User already exists");
    let got = refused(
        app,
        "POST",
        "/api/user",
        Some(&root),
        Some(with("inbounds", json!({"vmess": ["nope"]}))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(got["detail"], "Inbound nope doesn't exist");
    refused(
        app,
        "POST",
        "/api/user",
        None,
        Some(ok.clone()),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    refused(
        app,
        "POST",
        "/api/user",
        Some("not-a-token"),
        Some(ok),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
on_both!(create_rejects_bad_input_without_writing);
