//! /api/core endpoints through the real router, on SQLite and PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::App;
use nexpoint::domain::inbounds::DEFAULT_CORE_CONFIG;
use nexpoint::store::{NewNode, NodeHealth};
use serde_json::{Value, json};

async fn node(app: &App, name: &str) -> i64 {
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

async fn health(app: &App, id: i64, status: &'static str, version: &str) {
    app.store
        .set_node_health(
            id,
            NodeHealth {
                status,
                xray_version: Some(version.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

async fn core_reports_the_nodes_cores(app: &App) {
    let reseller = app.token("reseller").await;
    let (status, body) = app.json("GET", "/api/core", Some(&reseller), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"version": "", "started": false, "logs_websocket": "/api/core/logs"})
    );

    let (a, b, c) = (
        node(app, "a").await,
        node(app, "b").await,
        node(app, "c").await,
    );
    health(app, a, "error", "4.45.2").await;
    let (_, body) = app.json("GET", "/api/core", Some(&reseller), None).await;
    assert_eq!(
        (&body["version"], &body["started"]),
        (&json!("4.45.2"), &json!(false))
    );
    health(app, b, "connected", "1.8.24").await;
    health(app, c, "connected", "1.8.24").await;
    let (_, body) = app.json("GET", "/api/core", Some(&reseller), None).await;
    assert_eq!(
        (&body["version"], &body["started"]),
        (&json!("1.8.24"), &json!(true))
    );
    assert_eq!(
        app.json("GET", "/api/core", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
on_both!(core_reports_the_nodes_cores);

async fn restart_is_for_sudo_admins(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let n = node(app, "a").await;
    let (status, body) = app
        .json("POST", "/api/core/restart", Some(&root), None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    // The node's task was restarted; it reports the node still awaits enrollment.
    let mut waited = 0;
    while app.store.node(n).await.unwrap().message.is_none() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(
        app.store.node(n).await.unwrap().message.as_deref(),
        Some("waiting for enrollment")
    );
    assert_eq!(
        app.json("POST", "/api/core/restart", Some(&reseller), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.json("POST", "/api/core/restart", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
on_both!(restart_is_for_sudo_admins);

async fn get_text(app: &App, token: &str) -> (StatusCode, String) {
    let req = Request::get("/api/core/config")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = app.call(req).await;
    if status == StatusCode::OK {
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }
    (status, String::from_utf8(body).unwrap())
}

async fn put_text(app: &App, token: &str, text: &str) -> (StatusCode, String) {
    let req = Request::put("/api/core/config")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(text.to_owned()))
        .unwrap();
    let (status, _, body) = app.call(req).await;
    (status, String::from_utf8(body).unwrap())
}

/// Keys deliberately out of alphabetical order: the text is kept as sent.
const NEW_CONFIG: &str = r#"{
  "log": {"loglevel": "info"},
  "inbounds": [
    {"tag": "VLESS WS", "protocol": "vless", "port": 8443,
     "streamSettings": {"network": "ws", "security": "tls"}},
    {"tag": "api", "protocol": "dokodemo-door", "port": 8080}
  ],
  "outbounds": [{"protocol": "freedom", "tag": "DIRECT"}]
}"#;

async fn config_is_the_template_nodes_render(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let (status, text) = get_text(app, &root).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, DEFAULT_CORE_CONFIG);
    assert_eq!(get_text(app, &reseller).await.0, StatusCode::FORBIDDEN);

    let before = app.store.current_revision().await.unwrap();
    let (status, text) = put_text(app, &root, NEW_CONFIG).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(text, NEW_CONFIG);
    assert_eq!(get_text(app, &root).await.1, NEW_CONFIG);
    let (stored, revision) = app.store.core_config().await.unwrap().unwrap();
    assert_eq!(stored, NEW_CONFIG);
    assert!(revision > before);
    // Everything reading the template sees the new inbounds.
    let (_, inbounds) = app.json("GET", "/api/inbounds", Some(&root), None).await;
    assert_eq!(
        inbounds,
        json!({"vless": [{"tag": "VLESS WS", "protocol": "vless", "network": "ws",
            "tls": "tls", "port": 8443}]})
    );
    let (_, hosts) = app.json("GET", "/api/hosts", Some(&root), None).await;
    assert_eq!(hosts, json!({"VLESS WS": []}));
    // The same text again changes nothing.
    assert_eq!(put_text(app, &root, NEW_CONFIG).await.0, StatusCode::OK);
    assert_eq!(app.store.core_config().await.unwrap().unwrap().1, revision);

    assert_eq!(
        put_text(app, &reseller, DEFAULT_CORE_CONFIG).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = app
        .json(
            "PUT",
            "/api/core/config",
            None,
            Some(json!({"inbounds": []})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(get_text(app, &root).await.1, NEW_CONFIG);
}
on_both!(config_is_the_template_nodes_render);

async fn invalid_configs_are_refused_with_the_reason(app: &App) {
    let root = app.token("root").await;
    let before = app.store.core_config().await.unwrap().unwrap();
    let cases = [
        ("{", "EOF"),
        ("[]", "JSON object"),
        ("\"text\"", "JSON object"),
        ("{}", "\"inbounds\" array"),
        (r#"{"inbounds": {}}"#, "\"inbounds\" array"),
        (
            r#"{"inbounds": [{"protocol": "vmess", "port": 1}]}"#,
            "inbound #0 has no tag",
        ),
        (
            r#"{"inbounds": [{"tag": "a", "protocol": "vmess", "port": 70000}]}"#,
            "no valid port",
        ),
        (
            r#"{"inbounds": [{"tag": "a", "protocol": "vmess", "port": 1},
                {"tag": "a", "protocol": "trojan", "port": 2}]}"#,
            "used twice",
        ),
    ];
    for (text, reason) in cases {
        let (status, body) = put_text(app, &root, text).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text} -> {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let message = body["detail"]["body"].as_str().unwrap();
        assert!(message.contains(reason), "{text} -> {message}");
        assert_eq!(app.store.core_config().await.unwrap().unwrap(), before);
    }
    let req = Request::put("/api/core/config")
        .header(header::AUTHORIZATION, format!("Bearer {root}"))
        .body(Body::from(vec![0xff, 0xfe]))
        .unwrap();
    assert_eq!(app.call(req).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.store.core_config().await.unwrap().unwrap(), before);
}
on_both!(invalid_configs_are_refused_with_the_reason);
