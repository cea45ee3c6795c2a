//! Modifying users.

use crate::fixtures::*;
use crate::on_both;

async fn modify_sets_every_field_and_keeps_the_rest(app: &App) {
    let root = app.token("root").await;
    let user = create(
        app,
        &root,
        json!({"username": "mod", "proxies": {"vmess": {}, "vless": {"flow": "xtls-rprx-vision"}},
            "data_limit": 1000, "expire": now() + 86_400, "note": "first"}),
    )
    .await;
    let created = row(app, "mod").await;
    let plan = json!({"data_limit": 9000, "expire": now() + 30 * 86_400,
        "add_remaining_traffic": false, "fire_on_either": true});
    let expire = now() + 2 * 86_400;

    let base = revision(app).await;
    let body = put(
        app,
        &root,
        "MOD",
        json!({
            "data_limit": 5000, "expire": expire, "data_limit_reset_strategy": "month",
            "note": "second", "auto_delete_in_days": 7, "on_hold_timeout": "2040-02-03T04:05:06",
            "next_plan": plan,
        }),
    )
    .await;
    assert_eq!(body["username"], "mod");
    assert_eq!(body["data_limit"], 5000);
    assert_eq!(body["expire"], expire);
    assert_eq!(body["data_limit_reset_strategy"], "month");
    assert_eq!(body["note"], "second");
    assert_eq!(body["auto_delete_in_days"], 7);
    assert_eq!(body["on_hold_timeout"], "2040-02-03T04:05:06");
    assert_eq!(body["next_plan"], plan);
    assert_eq!(body["status"], "active");
    assert_eq!(body["proxies"], user["proxies"]);
    assert!(body["edit_at"].is_string(), "{body}");
    let stored = row(app, "mod").await;
    // A new reset strategy starts a new usage period.
    assert!(
        stored
            .last_usage_reset_at
            .is_some_and(|t| (t - now()).abs() <= 5)
    );
    assert_eq!(stored.last_status_change, created.last_status_change);
    assert_eq!(changed_since(app, base).await, ["mod"]);
    let (_, fetched) = app.json("GET", "/api/user/mod", Some(&root), None).await;
    assert_eq!(without_url(fetched), without_url(body));

    // Fields left out stay, the next plan included (Marzban would drop it).
    let base = revision(app).await;
    let body = put(app, &root, "mod", json!({"note": "third", "expire": null})).await;
    assert_eq!(body["note"], "third");
    assert_eq!(body["data_limit"], 5000);
    assert_eq!(body["expire"], expire);
    assert_eq!(body["next_plan"], plan);
    assert_eq!(body["auto_delete_in_days"], 7);
    assert_eq!(changed_since(app, base).await, ["mod"]);

    // 0 clears the quota and the expiry, "" the note, null the next plan.
    let body = put(
        app,
        &root,
        "mod",
        json!({"data_limit": 0, "expire": 0, "note": "", "next_plan": null}),
    )
    .await;
    assert_eq!(body["data_limit"], Value::Null);
    assert_eq!(body["expire"], Value::Null);
    assert_eq!(body["note"], Value::Null);
    assert_eq!(body["next_plan"], Value::Null);
    assert_eq!(row(app, "mod").await.next_plan, None);

    // Proxies: a kept protocol keeps its credentials, a dropped one goes, a
    // new one gets what is given or generated; inbounds per protocol given.
    let vmess_id = user["proxies"]["vmess"]["id"].clone();
    let base = revision(app).await;
    let body = put(
        app,
        &root,
        "mod",
        json!({"proxies": {"vmess": {}, "trojan": {"password": "tp"}}, "inbounds": {"vmess": []}}),
    )
    .await;
    assert_eq!(body["proxies"]["vmess"]["id"], vmess_id);
    assert_eq!(body["proxies"]["trojan"]["password"], "tp");
    assert!(body["proxies"].get("vless").is_none(), "{body}");
    assert_eq!(body["excluded_inbounds"], json!({"vmess": ["VMess TCP"]}));
    assert_eq!(
        body["inbounds"],
        json!({"trojan": ["Trojan TCP"], "vmess": []})
    );
    assert_eq!(changed_since(app, base).await, ["mod"]);
    let given = "0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a";
    let body = put(
        app,
        &root,
        "mod",
        json!({"proxies": {"vmess": {"id": given}, "trojan": {}}}),
    )
    .await;
    assert_eq!(body["proxies"]["vmess"]["id"], given);
    assert_eq!(body["proxies"]["trojan"]["password"], "tp");
    assert_eq!(body["excluded_inbounds"], json!({"vmess": ["VMess TCP"]}));
    // Dropping a protocol drops its exclusions; `{}` changes nothing.
    let body = put(
        app,
        &root,
        "mod",
        json!({"proxies": {"trojan": {}}, "inbounds": {}}),
    )
    .await;
    assert_eq!(body["excluded_inbounds"], json!({}));
    assert_eq!(body["inbounds"], json!({"trojan": ["Trojan TCP"]}));
    let body = put(app, &root, "mod", json!({"proxies": {}})).await;
    assert_eq!(body["proxies"]["trojan"]["password"], "tp");
    let stored = row(app, "mod").await;
    assert_eq!(stored.proxies.protocols().len(), 1);
}
on_both!(modify_sets_every_field_and_keeps_the_rest);

async fn modify_follows_the_lifecycle_rules(app: &App) {
    let root = app.token("root").await;
    let n1 = node(app, "n1").await;
    create(
        app,
        &root,
        json!({"username": "quota", "proxies": {"vmess": {}}, "data_limit": 1000}),
    )
    .await;
    traffic(app, n1, "quota", 1000).await;
    assert_eq!(row(app, "quota").await.status, UserStatus::Limited);

    // A higher limit re-admits the user, live.
    let base = revision(app).await;
    let body = put(app, &root, "quota", json!({"data_limit": 5000})).await;
    assert_eq!(body["status"], "active");
    assert_eq!(body["used_traffic"], 1000);
    assert_eq!(changed_since(app, base).await, ["quota"]);
    let stored = row(app, "quota").await;
    assert!(
        stored
            .last_status_change
            .is_some_and(|t| (t - now()).abs() <= 5)
    );
    let body = put(app, &root, "quota", json!({"data_limit": 900})).await;
    assert_eq!(body["status"], "limited");

    // A later expiry re-admits an expired user; an earlier one expires it.
    create(
        app,
        &root,
        json!({"username": "late", "proxies": {"vmess": {}}, "expire": now() - 10}),
    )
    .await;
    let body = put(app, &root, "late", json!({"expire": now() + 3600})).await;
    assert_eq!(body["status"], "active");
    let body = put(app, &root, "late", json!({"expire": now() - 1})).await;
    assert_eq!(body["status"], "expired");

    // Disabled stays disabled whatever the limits, until an admin lifts it.
    let body = put(
        app,
        &root,
        "late",
        json!({"status": "disabled", "expire": now() + 3600}),
    )
    .await;
    assert_eq!(body["status"], "disabled");
    let disabled_at = row(app, "late").await.last_status_change;
    assert!(disabled_at.is_some());
    let body = put(app, &root, "late", json!({"data_limit": 10})).await;
    assert_eq!(body["status"], "disabled");
    let body = put(app, &root, "late", json!({"status": "active"})).await;
    assert_eq!(body["status"], "active");

    // On hold needs a hold duration and clears the expiry until it starts.
    let got = refused(
        app,
        "PUT",
        "/api/user/late",
        Some(&root),
        Some(json!({"status": "on_hold"})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(got["detail"]["status"].is_string(), "{got}");
    let body = put(
        app,
        &root,
        "late",
        json!({"status": "on_hold", "on_hold_expire_duration": 7200}),
    )
    .await;
    assert_eq!(body["status"], "on_hold");
    assert_eq!(body["expire"], Value::Null);
    assert_eq!(body["on_hold_expire_duration"], 7200);
    let got = refused(
        app,
        "PUT",
        "/api/user/late",
        Some(&root),
        Some(json!({"expire": now() + 100})),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(got["detail"]["expire"].is_string(), "{got}");
    // Active starts the plan now.
    let body = put(app, &root, "late", json!({"status": "active"})).await;
    assert_eq!(body["status"], "active");
    assert!(close_to(&body["expire"], now() + 7200), "{body}");
    assert_eq!(body["on_hold_expire_duration"], Value::Null);

    // The rules' own statuses cannot be set by hand.
    for status in ["limited", "expired"] {
        let got = refused(
            app,
            "PUT",
            "/api/user/late",
            Some(&root),
            Some(json!({ "status": status })),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(got["detail"]["status"].is_string(), "{got}");
    }
}
on_both!(modify_follows_the_lifecycle_rules);

async fn modify_rejects_bad_input_without_writing(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    create(
        app,
        &root,
        json!({"username": "target", "proxies": {"vmess": {}}, "data_limit": 1000}),
    )
    .await;
    let path = "/api/user/target";
    let cases = [
        (json!({"data_limit": "lots"}), "body"),
        (json!({"data_limit": 1.5}), "body"),
        (json!({"expire": u64::MAX}), "body"),
        (json!({"data_limit": -1}), "data_limit"),
        (json!({"expire": -5}), "expire"),
        (
            json!({"on_hold_expire_duration": -1}),
            "on_hold_expire_duration",
        ),
        (json!({"status": "paused"}), "body"),
        (json!({"status": "limited"}), "status"),
        (json!({"data_limit_reset_strategy": "hourly"}), "body"),
        (json!({"note": "n".repeat(501)}), "note"),
        (json!({"note": 5}), "body"),
        (json!({"on_hold_timeout": "soon"}), "on_hold_timeout"),
        (json!({"next_plan": "soon"}), "body"),
        (json!({"next_plan": {"data_limit": -1}}), "next_plan"),
        (json!({"next_plan": {"fire_on_either": "yes"}}), "body"),
        (json!({"proxies": {"wireguard": {}}}), "body"),
        (json!({"proxies": {"vmess": {"id": "nope"}}}), "proxies"),
        (
            json!({"proxies": {"shadowsocks": {"method": "rc4-md5"}}}),
            "proxies",
        ),
        (
            json!({"proxies": {"trojan": {"password": "x".repeat(129)}}}),
            "proxies",
        ),
        (json!({"inbounds": {"trojan": ["Trojan TCP"]}}), "inbounds"),
        (json!({"inbounds": {"carrier-pigeon": []}}), "inbounds"),
        (
            json!({"status": "on_hold", "on_hold_expire_duration": 60, "expire": now() + 60}),
            "status",
        ),
        // A valid field does not carry an invalid one through.
        (json!({"note": "ok", "data_limit": -1}), "data_limit"),
    ];
    for (body, field) in cases {
        let got = refused(
            app,
            "PUT",
            path,
            Some(&root),
            Some(body.clone()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(got["detail"].get(field).is_some(), "{body}: {got}");
    }
    let before = snapshot(app).await;
    for text in ["{", "[1]", "{\"note\": \"x\",}", "nonsense"] {
        let (status, got) = raw(app, "PUT", path, &root, text).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}: {got}");
        assert!(got["detail"]["body"].is_string(), "{text}: {got}");
    }
    assert_eq!(snapshot(app).await, before);
    let got = refused(
        app,
        "PUT",
        path,
        Some(&root),
        Some(json!({"inbounds": {"vmess": ["nope"]}})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(got["detail"], "Inbound nope doesn't exist");
    let got = refused(
        app,
        "PUT",
        "/api/user/ghost",
        Some(&root),
        Some(json!({"note": "x"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(got["detail"], "User not found");
    let got = refused(
        app,
        "PUT",
        path,
        Some(&reseller),
        Some(json!({"note": "x"})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(got["detail"], "You're not allowed");
    refused(
        app,
        "PUT",
        path,
        None,
        Some(json!({"note": "x"})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
on_both!(modify_rejects_bad_input_without_writing);
