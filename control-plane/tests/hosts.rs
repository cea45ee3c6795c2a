//! GET and PUT /api/hosts through the real router, on SQLite and PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::App;
use serde_json::{Value, json};

const TAGS: [&str; 4] = ["VMess TCP", "VLESS TCP", "Trojan TCP", "Shadowsocks TCP"];

async fn hosts(app: &App, token: &str) -> Value {
    let (status, body) = app.json("GET", "/api/hosts", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A host with every field given.
fn full_host() -> Value {
    json!({
        "remark": "DE {USERNAME} [{PROTOCOL}]",
        "address": "de.example.com,*.cdn.example.com",
        "port": 443,
        "sni": "sni.example.com",
        "host": "h1.example.com,h2.example.com",
        "path": "/ws?ed=2048",
        "security": "tls",
        "alpn": "h2,http/1.1",
        "fingerprint": "chrome",
        "allowinsecure": true,
        "is_disabled": false,
        "mux_enable": true,
        "fragment_setting": "10-100,100-200,tlshello",
        "noise_setting": "rand:10-20,100-200&str:hello",
        "random_user_agent": true,
        "use_sni_as_host": true
    })
}

async fn hosts_list_every_tag_and_only_sudo_sees_them(app: &App) {
    let root = app.token("root").await;
    let all = hosts(app, &root).await;
    assert_eq!(
        all,
        json!({"VMess TCP": [], "VLESS TCP": [], "Trojan TCP": [], "Shadowsocks TCP": []})
    );

    // A node adds itself as a host of every inbound, with Marzban's defaults.
    let (status, _) = app
        .json(
            "POST",
            "/api/node",
            Some(&root),
            Some(json!({"name": "edge", "address": "198.51.100.4"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let all = hosts(app, &root).await;
    for tag in TAGS {
        assert_eq!(
            all[tag],
            json!([{
                "remark": "edge ({USERNAME}) [{PROTOCOL} - {TRANSPORT}]",
                "address": "198.51.100.4",
                "port": null, "sni": null, "host": null, "path": null,
                "security": "inbound_default", "alpn": "", "fingerprint": "",
                "allowinsecure": null, "is_disabled": false, "mux_enable": false,
                "fragment_setting": null, "noise_setting": null,
                "random_user_agent": false, "use_sni_as_host": false
            }]),
            "{tag}"
        );
    }

    let reseller = app.token("reseller").await;
    let (status, body) = app.json("GET", "/api/hosts", Some(&reseller), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app
        .json("PUT", "/api/hosts", Some(&reseller), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.json("GET", "/api/hosts", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.json("PUT", "/api/hosts", None, Some(json!({}))).await.0,
        StatusCode::UNAUTHORIZED
    );
}
on_both!(hosts_list_every_tag_and_only_sudo_sees_them);

async fn put_replaces_the_given_tags_in_order(app: &App) {
    let root = app.token("root").await;
    let minimal = json!({"remark": "second", "address": "2.example.com"});
    let (status, body) = app
        .json(
            "PUT",
            "/api/hosts",
            Some(&root),
            Some(json!({"VLESS TCP": [full_host(), minimal], "Trojan TCP": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, hosts(app, &root).await);
    assert_eq!(body["VLESS TCP"][0], full_host());
    // Left out or null: the defaults.
    assert_eq!(
        body["VLESS TCP"][1],
        json!({
            "remark": "second", "address": "2.example.com",
            "port": null, "sni": null, "host": null, "path": null,
            "security": "inbound_default", "alpn": "", "fingerprint": "",
            "allowinsecure": null, "is_disabled": false, "mux_enable": false,
            "fragment_setting": null, "noise_setting": null,
            "random_user_agent": false, "use_sni_as_host": false
        })
    );
    assert_eq!(body["VMess TCP"], json!([]));

    // Tags left out keep their hosts; a given tag is replaced whole.
    let (status, body) = app
        .json(
            "PUT",
            "/api/hosts",
            Some(&root),
            Some(
                json!({"VMess TCP": [{"remark": "v", "address": "v.example.com", "alpn": null,
                "security": null, "port": null, "is_disabled": true}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["VLESS TCP"].as_array().unwrap().len(), 2);
    assert_eq!(body["VMess TCP"][0]["is_disabled"], true);
    assert_eq!(body["VMess TCP"][0]["security"], "inbound_default");
    let (status, body) = app
        .json(
            "PUT",
            "/api/hosts",
            Some(&root),
            Some(json!({"VLESS TCP": [{"remark": "only", "address": "o.example.com"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["VLESS TCP"].as_array().unwrap().len(), 1);
    assert_eq!(body["VLESS TCP"][0]["remark"], "only");

    // Subscriptions use the enabled hosts: one VLESS link, none for the
    // disabled VMess host.
    let (status, user) = app
        .json(
            "POST",
            "/api/user",
            Some(&root),
            Some(json!({"username": "alice", "proxies": {"vless": {}, "vmess": {}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let links = user["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert!(links[0].as_str().unwrap().contains("@o.example.com:10002"));
}
on_both!(put_replaces_the_given_tags_in_order);

async fn invalid_hosts_are_refused_and_change_nothing(app: &App) {
    let root = app.token("root").await;
    let (status, _) = app
        .json(
            "PUT",
            "/api/hosts",
            Some(&root),
            Some(json!({"VMess TCP": [full_host()]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let before = hosts(app, &root).await;

    let with = |field: &str, value: Value| {
        let mut host = full_host();
        host[field] = value;
        json!({"VLESS TCP": [{"remark": "ok", "address": "ok.example.com"}], "VMess TCP": [host]})
    };
    let cases = [
        (with("port", json!(0)), "port"),
        (with("port", json!(65536)), "port"),
        (with("port", json!("443")), "body"),
        (with("is_disabled", json!("yes")), "body"),
        (with("remark", json!(null)), "body"),
        (with("remark", json!("x".repeat(257))), "remark"),
        (with("remark", json!("{USERNAME")), "remark"),
        (with("address", json!("a}b")), "address"),
        (with("address", json!("")), "address"),
        (with("address", json!("a".repeat(257))), "address"),
        (with("sni", json!("s".repeat(1001))), "sni"),
        (with("host", json!("h".repeat(1001))), "host"),
        (with("path", json!("/".repeat(257))), "path"),
        (with("security", json!("reality")), "security"),
        (with("alpn", json!("h4")), "alpn"),
        (with("fingerprint", json!("netscape")), "fingerprint"),
        (
            with("fragment_setting", json!("10-100,100-200")),
            "fragment_setting",
        ),
        (
            with("fragment_setting", json!("1".repeat(101))),
            "fragment_setting",
        ),
        (with("noise_setting", json!("noise:1")), "noise_setting"),
        (
            with("noise_setting", json!(format!("str:{}", "n".repeat(2000)))),
            "noise_setting",
        ),
        (json!({"VMess TCP": {"remark": "not a list"}}), "body"),
        (json!(["not", "a", "map"]), "body"),
    ];
    for (body, field) in cases {
        let (status, got) = app
            .json("PUT", "/api/hosts", Some(&root), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {got}");
        assert!(got["detail"].get(field).is_some(), "{field}: {got}");
        assert_eq!(hosts(app, &root).await, before, "{body}");
    }

    let malformed = Request::put("/api/hosts")
        .header(header::AUTHORIZATION, format!("Bearer {root}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"VMess TCP\": ["))
        .unwrap();
    let (status, _, body) = app.call(malformed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["detail"]["body"].is_string(), "{body}");

    // An unknown tag: 400, and the known tag next to it is not touched.
    let (status, got) = app
        .json(
            "PUT",
            "/api/hosts",
            Some(&root),
            Some(json!({"VMess TCP": [], "Nope": [{"remark": "r", "address": "a"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{got}");
    assert_eq!(got["detail"], "Inbound Nope doesn't exist");
    assert_eq!(hosts(app, &root).await, before);
}
on_both!(invalid_hosts_are_refused_and_change_nothing);

async fn node_hosts_stay_tied_to_their_node(app: &App) {
    let root = app.token("root").await;
    let (status, node) = app
        .json(
            "POST",
            "/api/node",
            Some(&root),
            Some(json!({"name": "edge", "address": "198.51.100.4"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{node}");
    // Renaming the node's host keeps it the node's; another host is not.
    let (status, _) = app
        .json(
            "PUT",
            "/api/hosts",
            Some(&root),
            Some(json!({"VMess TCP": [
                {"remark": "renamed", "address": "198.51.100.4"},
                {"remark": "cdn", "address": "cdn.example.com"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The node moves: its own hosts follow it.
    let (status, _) = app
        .json(
            "PUT",
            &format!("/api/node/{}", node["id"]),
            Some(&root),
            Some(json!({"address": "203.0.113.9"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let all = hosts(app, &root).await;
    assert_eq!(all["VMess TCP"][0]["address"], "203.0.113.9");
    assert_eq!(all["VMess TCP"][0]["remark"], "renamed");
    assert_eq!(all["VMess TCP"][1]["address"], "cdn.example.com");
    assert_eq!(all["VLESS TCP"][0]["address"], "203.0.113.9");

    let (status, _) = app
        .json(
            "DELETE",
            &format!("/api/node/{}", node["id"]),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let all = hosts(app, &root).await;
    assert_eq!(
        all,
        json!({
            "VMess TCP": [{
                "remark": "cdn", "address": "cdn.example.com",
                "port": null, "sni": null, "host": null, "path": null,
                "security": "inbound_default", "alpn": "", "fingerprint": "",
                "allowinsecure": null, "is_disabled": false, "mux_enable": false,
                "fragment_setting": null, "noise_setting": null,
                "random_user_agent": false, "use_sni_as_host": false
            }],
            "VLESS TCP": [], "Trojan TCP": [], "Shadowsocks TCP": []
        })
    );
}
on_both!(node_hosts_stay_tied_to_their_node);
