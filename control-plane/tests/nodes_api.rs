//! Node management (settings, modify, reconnect, usage) and subscribers' own
//! info and usage, through the real router on SQLite and PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::App;
use nexpoint::store::{NodeHealth, UsageBatch, UserUsageDelta};
use serde_json::{Value, json};

async fn create_node(app: &App, token: &str, name: &str) -> Value {
    let (status, node) = app
        .json(
            "POST",
            "/api/node",
            Some(token),
            Some(json!({"name": name, "address": "198.51.100.4", "add_as_new_host": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{node}");
    node
}

async fn get_node(app: &App, token: &str, id: &Value) -> Value {
    let (status, node) = app
        .json("GET", &format!("/api/node/{id}"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{node}");
    without_message(node)
}

/// The node's task writes its message ("waiting for enrollment") whenever
/// it gets to it: leave it out of comparisons.
fn without_message(mut node: Value) -> Value {
    node.as_object_mut().unwrap().remove("message");
    node
}

async fn settings_give_the_ca_certificate(app: &App) {
    let root = app.token("root").await;
    let (status, body) = app
        .json("GET", "/api/node/settings", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["min_node_version"], "v0.1.0");
    let pem = body["certificate"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    // The certificate enrollment hands nodes as their CA.
    let (_, node) = app
        .json(
            "POST",
            "/api/node",
            Some(&root),
            Some(json!({"name": "edge", "address": "127.0.0.1"})),
        )
        .await;
    let (_, csr) = nexpoint_certs::node_key_and_csr("edge").unwrap();
    let (_, enrolled) = app
        .json(
            "POST",
            "/api/node/enroll",
            None,
            Some(json!({"token": node["enrollment_token"], "csr": csr})),
        )
        .await;
    assert_eq!(enrolled["ca_certificate"], body["certificate"]);

    let reseller = app.token("reseller").await;
    assert_eq!(
        app.json("GET", "/api/node/settings", Some(&reseller), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.json("GET", "/api/node/settings", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
on_both!(settings_give_the_ca_certificate);

async fn modify_changes_only_what_is_given(app: &App) {
    let root = app.token("root").await;
    let node = create_node(app, &root, "edge").await;
    let id = &node["id"];
    let path = format!("/api/node/{id}");
    let (status, body) = app
        .json(
            "PUT",
            &path,
            Some(&root),
            Some(json!({"name": "Edge-2", "port": 7000, "api_port": 7001,
                "usage_coefficient": 1.5, "address": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Edge-2");
    assert_eq!(body["address"], "198.51.100.4");
    assert_eq!(
        (&body["port"], &body["api_port"]),
        (&json!(7000), &json!(7001))
    );
    assert_eq!(body["usage_coefficient"], 1.5);
    assert_eq!(without_message(body), get_node(app, &root, id).await);

    let (status, body) = app.json("PUT", &path, Some(&root), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Edge-2");

    // Disabled: kept disabled by node tasks and by edits without a status.
    let (status, body) = app
        .json(
            "PUT",
            &path,
            Some(&root),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "disabled");
    app.store
        .set_node_health(
            id.as_i64().unwrap(),
            NodeHealth {
                status: "connected",
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (_, body) = app
        .json("PUT", &path, Some(&root), Some(json!({"name": "edge"})))
        .await;
    assert_eq!(
        (&body["status"], &body["name"]),
        (&json!("disabled"), &json!("edge"))
    );
    let (status, body) = app
        .json("POST", &format!("{path}/reconnect"), Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Any other status enables it again.
    let (_, body) = app
        .json(
            "PUT",
            &path,
            Some(&root),
            Some(json!({"status": "connected"})),
        )
        .await;
    assert_eq!(body["status"], "connecting");
    let (status, body) = app
        .json("POST", &format!("{path}/reconnect"), Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["detail"], "Reconnection task scheduled");
}
on_both!(modify_changes_only_what_is_given);

async fn invalid_modifications_are_refused_and_change_nothing(app: &App) {
    let root = app.token("root").await;
    let node = create_node(app, &root, "edge").await;
    create_node(app, &root, "Other").await;
    let path = format!("/api/node/{}", node["id"]);
    let before = get_node(app, &root, &node["id"]).await;
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"name": "n".repeat(257)}), "name"),
        (json!({"address": "two words"}), "address"),
        (json!({"address": ""}), "address"),
        (json!({"port": 0}), "port"),
        (json!({"port": 65536}), "port"),
        (json!({"api_port": -1}), "api_port"),
        (json!({"usage_coefficient": 0}), "usage_coefficient"),
        (json!({"usage_coefficient": -2.5}), "usage_coefficient"),
        (json!({"status": "gone"}), "status"),
        (json!({"port": "62050"}), "body"),
        (json!({"usage_coefficient": "1"}), "body"),
        (json!(["edge"]), "body"),
    ];
    for (body, field) in cases {
        let (status, got) = app
            .json("PUT", &path, Some(&root), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {got}");
        assert!(got["detail"].get(field).is_some(), "{field}: {got}");
        assert_eq!(get_node(app, &root, &node["id"]).await, before, "{body}");
    }
    let malformed = Request::put(&path)
        .header(header::AUTHORIZATION, format!("Bearer {root}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"name\":"))
        .unwrap();
    assert_eq!(
        app.call(malformed).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Names are unique in any case.
    let (status, got) = app
        .json("PUT", &path, Some(&root), Some(json!({"name": "OTHER"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{got}");
    assert_eq!(got["detail"], "Node \"OTHER\" already exists");
    assert_eq!(get_node(app, &root, &node["id"]).await, before);
    // Its own name in another case is fine.
    let (status, _) = app
        .json("PUT", &path, Some(&root), Some(json!({"name": "EDGE"})))
        .await;
    assert_eq!(status, StatusCode::OK);

    for (method, p) in [
        ("PUT", "/api/node/999"),
        ("POST", "/api/node/999/reconnect"),
    ] {
        let (status, got) = app.json(method, p, Some(&root), Some(json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{p}: {got}");
        assert_eq!(got["detail"], "Node not found");
    }
    assert_eq!(
        app.json("PUT", "/api/node/abc", Some(&root), Some(json!({})))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let reseller = app.token("reseller").await;
    for (method, p) in [("PUT", path.clone()), ("POST", format!("{path}/reconnect"))] {
        let (status, _) = app
            .json(method, &p, Some(&reseller), Some(json!({"name": "mine"})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
        assert_eq!(
            app.json(method, &p, None, Some(json!({}))).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(get_node(app, &root, &node["id"]).await["name"], "EDGE");
}
on_both!(invalid_modifications_are_refused_and_change_nothing);

/// Usage `bytes` for `user_id` on node `node_id`, recorded at `at`.
async fn usage(app: &App, node_id: i64, user_id: i64, bytes: i64, at: i64) {
    let sequence = app.store.node(node_id).await.unwrap().usage_sequence;
    app.store
        .apply_usage(&UsageBatch {
            node_id,
            after_sequence: sequence,
            last_sequence: sequence + 1,
            coefficient: 2.0,
            deltas: vec![UserUsageDelta {
                user_id,
                uplink: bytes / 2,
                downlink: bytes / 2,
                recorded_at: at,
            }],
        })
        .await
        .unwrap();
}

async fn nodes_usage(app: &App, token: &str, query: String) -> Value {
    let (status, body) = app
        .json(
            "GET",
            &format!("/api/nodes/usage{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

const MAY_1: i64 = 1_714_521_600; // 2024-05-01T00:00:00Z

async fn usage_is_reported_per_node_and_period(app: &App) {
    let root = app.token("root").await;
    let (a, b) = (
        create_node(app, &root, "a").await["id"].as_i64().unwrap(),
        create_node(app, &root, "b").await["id"].as_i64().unwrap(),
    );
    let mut ids = Vec::new();
    for name in ["alice", "bobby"] {
        let (status, user) = app
            .json(
                "POST",
                "/api/user",
                Some(&root),
                Some(json!({"username": name, "proxies": {"vless": {}}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        ids.push(app.store.user_by_username(name).await.unwrap().unwrap().id);
    }
    usage(app, a, ids[0], 100, MAY_1 + 10).await;
    usage(app, a, ids[1], 1000, MAY_1 + 3600 + 5).await;
    usage(app, b, ids[0], 10, MAY_1 + 86_400).await;
    let now = nexpoint::store::now();
    usage(app, b, ids[1], 4, now).await;

    let get = |q: &str| nodes_usage(app, &root, q.to_owned());
    // Scaled by the coefficient (2) and reported as downlink.
    let all = get("?start=2024-04-01T00:00:00&end=2099-01-01T00:00:00").await;
    assert_eq!(
        all,
        json!({"usages": [
            {"node_id": a, "node_name": "a", "uplink": 0, "downlink": 2200},
            {"node_id": b, "node_name": "b", "uplink": 0, "downlink": 28}]})
    );
    // Hour rows whose hour starts within the period.
    let first_hour = get("?start=2024-05-01T00:00:00&end=2024-05-01T00:59:59Z").await;
    assert_eq!(first_hour["usages"][0]["downlink"], 200);
    assert_eq!(first_hour["usages"][1]["downlink"], 0);
    // By default the last 30 days.
    let recent = get("").await;
    assert_eq!(recent["usages"][0]["downlink"], 0);
    assert_eq!(recent["usages"][1]["downlink"], 8);
    assert_eq!(get("?start=&end=").await, recent);

    for bad in [
        "?start=yesterday",
        "?end=2024-13-01T00:00:00",
        "?start=2024-05-02T00:00:00&end=2024-05-01T00:00:00",
    ] {
        let (status, body) = app
            .json("GET", &format!("/api/nodes/usage{bad}"), Some(&root), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["detail"].as_object().unwrap().len() == 1, "{body}");
    }
    let reseller = app.token("reseller").await;
    assert_eq!(
        app.json("GET", "/api/nodes/usage", Some(&reseller), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // The subscriber's own view, behind the subscription token.
    let (_, alice) = app.json("GET", "/api/user/alice", Some(&root), None).await;
    let url = alice["subscription_url"].as_str().unwrap();
    let (status, body) = app
        .json(
            "GET",
            &format!("{url}/usage?start=2024-04-01T00:00:00&end=2099-01-01T00:00:00"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"username": "alice", "usages": [
            {"node_id": a, "node_name": "a", "used_traffic": 200},
            {"node_id": b, "node_name": "b", "used_traffic": 20}]})
    );
    let (status, body) = app.json("GET", &format!("{url}/usage"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["usages"][0]["used_traffic"], 0);
    let (status, body) = app
        .json("GET", &format!("{url}/usage?start=nope"), None, None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"]["start"].is_string());
}
on_both!(usage_is_reported_per_node_and_period);

async fn subscribers_see_their_own_info(app: &App) {
    let root = app.token("root").await;
    let (status, user) = app
        .json(
            "POST",
            "/api/user",
            Some(&root),
            Some(
                json!({"username": "carol", "proxies": {"trojan": {"password": "tp"}},
                "data_limit": 5000, "expire": 2_000_000_000, "note": "secret note"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let url = user["subscription_url"].as_str().unwrap().to_owned();
    let (status, info) = app.json("GET", &format!("{url}/info"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let mut keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "data_limit",
            "data_limit_reset_strategy",
            "expire",
            "lifetime_used_traffic",
            "links",
            "next_plan",
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
    assert_eq!(info["username"], "carol");
    assert_eq!(info["proxies"], user["proxies"]);
    assert_eq!(
        (&info["data_limit"], &info["expire"], &info["status"]),
        (&json!(5000), &json!(2_000_000_000), &json!("active"))
    );
    assert_eq!(info["links"], user["links"]);
    assert!(
        info["subscription_url"]
            .as_str()
            .unwrap()
            .starts_with("/sub/")
    );
    // Reading the info is not a subscription fetch.
    assert_eq!(info["sub_updated_at"], Value::Null);

    for bad in [
        format!("{url}x/info"),
        "/sub/garbage-token-value/info".to_owned(),
        format!(
            "/sub/{}/usage",
            nexpoint::subscription::token::issue_at("carol", 1_000, "sub-secret")
        ),
    ] {
        let (status, body) = app.json("GET", &bad, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
        assert_eq!(body["detail"], "Not Found");
    }
    let (status, _) = app
        .json("DELETE", "/api/user/carol", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.json("GET", &format!("{url}/info"), None, None).await.0,
        StatusCode::NOT_FOUND
    );
}
on_both!(subscribers_see_their_own_info);
