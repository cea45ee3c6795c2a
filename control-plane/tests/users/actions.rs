//! Usage reset, next plan, subscription revocation, owners, bulk reset.

use crate::fixtures::*;
use crate::on_both;

async fn reset_readmits_and_drops_the_next_plan(app: &App) {
    let root = app.token("root").await;
    let n1 = node(app, "n1").await;
    create(
        app,
        &root,
        json!({"username": "full", "proxies": {"vmess": {}}, "data_limit": 1000,
            "expire": now() + 86_400, "next_plan": {"data_limit": 3000, "fire_on_either": false}}),
    )
    .await;
    traffic(app, n1, "full", 1200).await;
    assert_eq!(row(app, "full").await.status, UserStatus::Limited);

    let base = revision(app).await;
    let body = post(app, &root, "/api/user/Full/reset").await;
    assert_eq!(body["username"], "full");
    assert_eq!(body["used_traffic"], 0);
    assert_eq!(body["lifetime_used_traffic"], 1200);
    assert_eq!(body["status"], "active");
    assert_eq!(body["data_limit"], 1000);
    assert_eq!(body["next_plan"], Value::Null);
    let stored = row(app, "full").await;
    assert!(
        stored
            .last_usage_reset_at
            .is_some_and(|t| (t - now()).abs() <= 5)
    );
    assert!(
        stored
            .last_status_change
            .is_some_and(|t| (t - now()).abs() <= 5)
    );
    assert_eq!(changed_since(app, base).await, ["full"]);
    // The per-node history stays: it is what happened.
    let (_, usage) = app
        .json("GET", "/api/user/full/usage", Some(&root), None)
        .await;
    assert_eq!(usage["usages"][1]["used_traffic"], 1200);

    // An expired user stays expired: only its usage goes.
    create(
        app,
        &root,
        json!({"username": "gone", "proxies": {"vmess": {}}, "expire": now() - 10}),
    )
    .await;
    traffic(app, n1, "gone", 50).await;
    let base = revision(app).await;
    let body = post(app, &root, "/api/user/gone/reset").await;
    assert_eq!(body["status"], "expired");
    assert_eq!(body["used_traffic"], 0);
    assert_eq!(body["lifetime_used_traffic"], 50);
    assert_eq!(changed_since(app, base).await, ["gone"]);
    let got = refused(
        app,
        "POST",
        "/api/user/ghost/reset",
        Some(&root),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(got["detail"], "User not found");
}
on_both!(reset_readmits_and_drops_the_next_plan);

async fn active_next_applies_the_next_plan(app: &App) {
    let reseller = app.token("reseller").await;
    let n1 = node(app, "n1").await;
    create(
        app,
        &reseller,
        json!({"username": "renew", "proxies": {"vmess": {}}, "data_limit": 1000,
            "expire": now() + 86_400,
            "next_plan": {"data_limit": 2000, "expire": 7 * 86_400, "add_remaining_traffic": true}}),
    )
    .await;
    traffic(app, n1, "renew", 400).await;

    let base = revision(app).await;
    let body = post(app, &reseller, "/api/user/renew/active-next").await;
    // The unused 600 bytes carry over; the expiry counts from now.
    assert_eq!(body["data_limit"], 2600);
    assert_eq!(body["used_traffic"], 0);
    assert_eq!(body["lifetime_used_traffic"], 400);
    assert!(close_to(&body["expire"], now() + 7 * 86_400), "{body}");
    assert_eq!(body["next_plan"], Value::Null);
    assert_eq!(body["status"], "active");
    assert_eq!(changed_since(app, base).await, ["renew"]);

    let got = refused(
        app,
        "POST",
        "/api/user/renew/active-next",
        Some(&reseller),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(got["detail"], "User doesn't have next plan");

    // An on-hold user starts with its next plan.
    let until = now() + 90 * 86_400;
    create(
        app,
        &reseller,
        json!({"username": "waiting", "proxies": {"vmess": {}}, "status": "on_hold",
            "on_hold_expire_duration": 3600, "next_plan": {"data_limit": 10, "expire": until}}),
    )
    .await;
    let body = post(app, &reseller, "/api/user/waiting/active-next").await;
    assert_eq!(body["status"], "active");
    assert_eq!(body["expire"], until);
    assert_eq!(body["data_limit"], 10);
    assert_eq!(body["on_hold_expire_duration"], Value::Null);
}
on_both!(active_next_applies_the_next_plan);

async fn revoke_sub_kills_the_old_url_and_credentials(app: &App) {
    let reseller = app.token("reseller").await;
    let user = create(
        app,
        &reseller,
        json!({"username": "leaky", "proxies": {"vless": {"flow": "xtls-rprx-vision"},
            "trojan": {"password": "old-pass"}, "shadowsocks": {"method": "aes-256-gcm"}}}),
    )
    .await;
    let old_url = user["subscription_url"].as_str().unwrap().to_owned();
    assert_eq!(fetch_subscription(app, &old_url).await, StatusCode::OK);

    let base = revision(app).await;
    let body = post(app, &reseller, "/api/user/leaky/revoke_sub").await;
    let (old, new) = (&user["proxies"], &body["proxies"]);
    assert_ne!(new["vless"]["id"], old["vless"]["id"]);
    assert_eq!(new["vless"]["flow"], "xtls-rprx-vision");
    assert_ne!(new["trojan"]["password"], "old-pass");
    assert_ne!(
        new["shadowsocks"]["password"],
        old["shadowsocks"]["password"]
    );
    assert_eq!(new["shadowsocks"]["method"], "aes-256-gcm");
    assert!(body["edit_at"].is_string());
    assert_eq!(changed_since(app, base).await, ["leaky"]);
    let stored = row(app, "leaky").await;
    assert_eq!(stored.proxies, serde_json::from_value(new.clone()).unwrap());

    let new_url = body["subscription_url"].as_str().unwrap().to_owned();
    assert_ne!(new_url, old_url);
    assert_eq!(
        fetch_subscription(app, &old_url).await,
        StatusCode::NOT_FOUND
    );
    let (status, _) = app
        .json("GET", &format!("{old_url}/info"), None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(fetch_subscription(app, &new_url).await, StatusCode::OK);
    // The URL a later read hands out works too.
    let (_, fetched) = app
        .json("GET", "/api/user/leaky", Some(&reseller), None)
        .await;
    let url = fetched["subscription_url"].as_str().unwrap();
    assert_eq!(fetch_subscription(app, url).await, StatusCode::OK);
}
on_both!(revoke_sub_kills_the_old_url_and_credentials);

async fn set_owner_moves_a_user_between_admins(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    create(
        app,
        &root,
        json!({"username": "moving", "proxies": {"vmess": {}}}),
    )
    .await;
    refused(
        app,
        "GET",
        "/api/user/moving",
        Some(&reseller),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;

    let base = revision(app).await;
    let (status, body) = app
        .json(
            "PUT",
            "/api/user/Moving/set-owner?admin_username=Reseller",
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["admin"]["username"], "reseller");
    assert_eq!(changed_since(app, base).await, ["moving"]);
    let (status, _) = app
        .json("GET", "/api/user/moving", Some(&reseller), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let cases = [
        (
            "/api/user/moving/set-owner?admin_username=ghost",
            Some(&root),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/user/ghost/set-owner?admin_username=root",
            Some(&root),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/user/moving/set-owner",
            Some(&root),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // Owners that are not sudo may not give users away.
        (
            "/api/user/moving/set-owner?admin_username=root",
            Some(&reseller),
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/user/moving/set-owner?admin_username=root",
            None,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (path, token, want) in cases {
        let got = refused(app, "PUT", path, token.map(String::as_str), None, want).await;
        if path.contains("ghost") {
            let expected = if path.starts_with("/api/user/ghost") {
                "User not found"
            } else {
                "Admin not found"
            };
            assert_eq!(got["detail"], expected);
        }
    }
}
on_both!(set_owner_moves_a_user_between_admins);

async fn bulk_reset_resets_everyone_in_one_revision(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let n1 = node(app, "n1").await;
    create(
        app,
        &root,
        json!({"username": "full", "proxies": {"vmess": {}}, "data_limit": 100,
            "expire": now() + 86_400, "next_plan": {"data_limit": 5, "fire_on_either": false}}),
    )
    .await;
    create(
        app,
        &reseller,
        json!({"username": "busy", "proxies": {"vmess": {}}}),
    )
    .await;
    create(
        app,
        &root,
        json!({"username": "over", "proxies": {"vmess": {}}, "expire": now() - 10}),
    )
    .await;
    create(
        app,
        &reseller,
        json!({"username": "off", "proxies": {"vmess": {}}}),
    )
    .await;
    put(app, &reseller, "off", json!({"status": "disabled"})).await;
    for (name, bytes) in [("full", 150), ("busy", 70), ("over", 30), ("off", 20)] {
        traffic(app, n1, name, bytes).await;
    }
    assert_eq!(row(app, "full").await.status, UserStatus::Limited);

    let got = refused(
        app,
        "POST",
        "/api/users/reset",
        Some(&reseller),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(got["detail"], "You're not allowed");
    refused(
        app,
        "POST",
        "/api/users/reset",
        None,
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let base = revision(app).await;
    let body = post(app, &root, "/api/users/reset").await;
    assert_eq!(body, json!({"detail": "Users successfully reset."}));
    // One revision, carried by the only user whose place in the cores changed.
    assert_eq!(revision(app).await, base + 1);
    assert_eq!(changed_since(app, base).await, ["full"]);
    let expected = [
        ("busy", UserStatus::Active, 70),
        ("full", UserStatus::Active, 150),
        ("off", UserStatus::Disabled, 20),
        ("over", UserStatus::Expired, 30),
    ];
    for (name, status, lifetime) in expected {
        let user = row(app, name).await;
        assert_eq!(
            (user.status, user.used_traffic, user.lifetime_used_traffic),
            (status, 0, lifetime),
            "{name}"
        );
        assert!(user.last_usage_reset_at.is_some(), "{name}");
    }
    assert_eq!(row(app, "full").await.next_plan, None);

    // Nothing to re-admit: the usage goes, no revision.
    traffic(app, n1, "busy", 5).await;
    let base = revision(app).await;
    post(app, &root, "/api/users/reset").await;
    assert_eq!(revision(app).await, base);
    assert_eq!(row(app, "busy").await.used_traffic, 0);
}
on_both!(bulk_reset_resets_everyone_in_one_revision);
