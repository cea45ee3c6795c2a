//! `GET /sub/{token}` through the real router: the format by User-Agent, by
//! path and for browsers, the headers apps read, what is recorded, and what
//! a user who is not served gets.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use serde_json::{Value, json};

mod common;
use common::{App, TestDb, app};

async fn setup(db: &TestDb) -> (App, String, String) {
    let app = app(db).await;
    let root = app.token("root").await;
    // A node adds itself as a host of every inbound.
    let (status, _) = app
        .json(
            "POST",
            "/api/node",
            Some(&root),
            Some(json!({"name": "edge", "address": "198.51.100.4"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, user) = app
        .json(
            "POST",
            "/api/user",
            Some(&root),
            Some(json!({"username": "zoe", "proxies": {"vmess": {}, "vless": {}, "trojan": {}, "shadowsocks": {}},
                        "data_limit": 5_000_000, "expire": 4_000_000_000_i64})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let url = user["subscription_url"].as_str().unwrap().to_owned();
    (app, root, url)
}

async fn get(
    app: &App,
    url: &str,
    headers: &[(header::HeaderName, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::get(url).header(header::HOST, "sub.example:8000");
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    let (status, headers, body) = app.call(req.body(Body::empty()).unwrap()).await;
    (status, headers, String::from_utf8(body).unwrap())
}

fn content_type(headers: &axum::http::HeaderMap) -> &str {
    headers[header::CONTENT_TYPE].to_str().unwrap()
}

#[tokio::test]
async fn the_user_agent_picks_the_format() {
    let db = TestDb::sqlite().await;
    let (app, _, url) = setup(&db).await;
    for (ua, expected) in [
        ("clash-verge/v1.3.8", "clash-meta"),
        ("ClashForWindows/0.20", "clash"),
        ("SFA/1.9.0", "sing-box"),
        ("v2rayN/6.45", "v2ray-json"),
        ("Outline/1.10", "outline"),
        ("v2rayNG/1.8.5", "v2ray"),
        ("curl/8.0", "v2ray"),
    ] {
        let (status, headers, body) = get(&app, &url, &[(header::USER_AGENT, ua)]).await;
        assert_eq!(status, StatusCode::OK, "{ua}: {body}");
        // The same body as asking for the format by name.
        let (_, _, explicit) = get(&app, &format!("{url}/{expected}"), &[]).await;
        match expected {
            "clash" | "clash-meta" => {
                assert!(content_type(&headers).starts_with("text/yaml"), "{ua}");
                let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).unwrap();
                let types: Vec<&str> = doc["proxies"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|p| p["type"].as_str().unwrap())
                    .collect();
                // Plain Clash has no vless; Clash's trojan always uses TLS,
                // which the default template's trojan inbound does not.
                let want: &[&str] = if expected == "clash-meta" {
                    &["vmess", "vless", "ss"]
                } else {
                    &["vmess", "ss"]
                };
                assert_eq!(types, want, "{ua}");
            }
            "sing-box" => {
                let doc: Value = serde_json::from_str(&body).unwrap();
                assert!(doc["outbounds"].as_array().unwrap().len() >= 4, "{doc}");
            }
            "v2ray-json" => {
                let doc: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(doc.as_array().unwrap().len(), 4, "{doc}");
            }
            "outline" => {
                let doc: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(doc["server"], "198.51.100.4");
                assert!(doc["password"].is_string() && doc["method"].is_string());
            }
            _ => {
                let links = base64::engine::general_purpose::STANDARD
                    .decode(body.trim())
                    .unwrap();
                assert_eq!(String::from_utf8(links).unwrap().lines().count(), 4);
            }
        }
        if expected != "clash" && expected != "clash-meta" && expected != "sing-box" {
            assert_eq!(body, explicit, "{ua}");
        }
    }
}

#[tokio::test]
async fn an_unknown_format_is_a_clear_404() {
    let db = TestDb::sqlite().await;
    let (app, _, url) = setup(&db).await;
    let (status, _, body) = get(&app, &format!("{url}/yaml"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let detail: Value = serde_json::from_str(&body).unwrap();
    let detail = detail["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"yaml\"") && detail.contains("sing-box"),
        "{detail}"
    );
    // info and usage are still theirs.
    let (status, _, _) = get(&app, &format!("{url}/info"), &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn apps_get_their_headers_and_the_fetch_is_recorded_but_not_a_page_view() {
    let db = TestDb::postgres().await;
    let (app, root, url) = setup(&db).await;

    // A person in a browser: the page, not recorded.
    let (status, headers, body) = get(
        &app,
        &url,
        &[
            (header::ACCEPT, "text/html,application/xhtml+xml"),
            (header::USER_AGENT, "Mozilla/5.0"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type(&headers).starts_with("text/html"));
    assert!(body.contains("zoe"), "the page names the user");
    let (_, user) = app.json("GET", "/api/user/zoe", Some(&root), None).await;
    assert_eq!(user["sub_last_user_agent"], Value::Null, "{user}");
    assert_eq!(user["sub_updated_at"], Value::Null, "{user}");

    // An app: headers, and the fetch is recorded.
    let (status, headers, _) = get(&app, &url, &[(header::USER_AGENT, "SFA/1.9.0")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["subscription-userinfo"],
        "upload=0; download=0; total=5000000; expire=4000000000"
    );
    let title = headers["profile-title"].to_str().unwrap();
    let title = base64::engine::general_purpose::STANDARD
        .decode(title.strip_prefix("base64:").unwrap())
        .unwrap();
    assert_eq!(title, b"zoe");
    assert_eq!(headers["profile-update-interval"], "12");
    assert_eq!(
        headers["profile-web-page-url"],
        format!("http://sub.example:8000{url}").as_str()
    );
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"zoe\""
    );
    let (_, user) = app.json("GET", "/api/user/zoe", Some(&root), None).await;
    assert_eq!(user["sub_last_user_agent"], "SFA/1.9.0");
    assert!(user["sub_updated_at"].is_string(), "{user}");
    db.finish().await;
}

#[tokio::test]
async fn a_user_who_is_not_served_sees_why_in_every_format() {
    let db = TestDb::sqlite().await;
    let (app, root, url) = setup(&db).await;
    let (status, body) = app
        .json(
            "PUT",
            "/api/user/zoe",
            Some(&root),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, _, links) = get(&app, &format!("{url}/v2ray"), &[]).await;
    let links = base64::engine::general_purpose::STANDARD
        .decode(links.trim())
        .unwrap();
    let links = String::from_utf8(links).unwrap();
    // One per protocol, nowhere to connect to, the reason as the name.
    assert_eq!(links.lines().count(), 4, "{links}");
    for line in links.lines().filter(|l| !l.starts_with("vmess://")) {
        assert!(line.contains("@127.0.0.1:1"), "{line}");
        assert!(line.contains("disabled"), "{line}");
        assert!(!line.contains("198.51.100.4"), "{line}");
    }

    let (status, _, sing_box) = get(&app, &format!("{url}/sing-box"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&sing_box).unwrap();
    let proxies: Vec<&Value> = doc["outbounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["server"].is_string())
        .collect();
    assert!(!proxies.is_empty());
    for p in proxies {
        assert_eq!(p["server"], "127.0.0.1");
        assert_eq!(p["server_port"], 1);
        assert!(p["tag"].as_str().unwrap().contains("disabled"), "{p}");
    }
}

#[tokio::test]
async fn the_home_page_is_served() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let (status, headers, body) = get(&app, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type(&headers).starts_with("text/html"));
    assert!(body.contains("/sub/"), "{body}");
}

#[tokio::test]
async fn links_from_an_imported_marzban_keep_working_until_revoked() {
    let db = TestDb::sqlite().await;
    let (app, root, url) = setup(&db).await;
    // Issued URLs carry Nexpoint's tokens (a full HMAC after a dot).
    assert!(url.rsplit('/').next().unwrap().contains('.'), "{url}");
    // One Marzban handed out with the same secret.
    let marzban = nexpoint::subscription::token::issue_marzban_at(
        "zoe",
        nexpoint::store::now(),
        "sub-secret",
    );
    let (status, _, _) = get(&app, &format!("/sub/{marzban}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .json("POST", "/api/user/zoe/revoke_sub", Some(&root), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for old in [format!("/sub/{marzban}"), url] {
        let (status, _, _) = get(&app, &old, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{old} after revocation");
    }
}
