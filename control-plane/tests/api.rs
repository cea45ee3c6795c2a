//! The REST API in-process: authentication, ownership rules, subscriptions
//! and enrollment, through the real router and a real SQLite store.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use nexpoint::api::{JwtKeys, hash_password};
use serde_json::json;
mod common;
use common::{TestDb, app};

#[tokio::test]
async fn login_gives_a_bearer_token_and_wrong_passwords_a_detail() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let (status, body) = app.login("root", "nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Incorrect username or password");
    let (status, body) = app.login("ghost", "pw").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let token = app.token("ROOT").await;
    let (status, me) = app.json("GET", "/api/admin", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "root");
    assert_eq!(me["is_sudo"], true);

    let (status, body) = app.json("GET", "/api/admin", Some("garbage"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn repeated_wrong_passwords_are_rate_limited_per_username() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    for _ in 0..5 {
        assert_eq!(app.login("root", "nope").await.0, StatusCode::UNAUTHORIZED);
    }
    // The sixth attempt is refused before the password is checked, even the right one.
    let req = Request::post("/api/admin/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("username=Root&password=pw"))
        .unwrap();
    let (status, headers, body) = app.call(req).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("Too many"),
        "{body}"
    );
    let wait: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    // Other admins still log in; a success clears an admin's own failures.
    app.token("reseller").await;
    assert_eq!(
        app.login("reseller", "nope").await.0,
        StatusCode::UNAUTHORIZED
    );
    app.token("reseller").await;
}

#[tokio::test]
async fn a_password_change_invalidates_older_tokens() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let admin = app
        .store
        .admin_by_username("reseller")
        .await
        .unwrap()
        .unwrap();
    // Tokens carry whole seconds: one issued a minute ago predates the reset.
    let token = JwtKeys::new("test-secret", 60)
        .issue_at(&admin, nexpoint::store::now() - 60)
        .unwrap();
    assert_eq!(
        app.json("GET", "/api/admin", Some(&token), None).await.0,
        StatusCode::OK
    );
    app.store
        .set_admin_password("reseller", &hash_password("new").unwrap(), false)
        .await
        .unwrap();
    let (status, _) = app.json("GET", "/api/admin", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("reseller", "new").await.0, StatusCode::OK);
}

#[tokio::test]
async fn non_sudo_admins_reach_only_their_own_users_and_no_nodes() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let reseller = app.token("reseller").await;
    let other = app.token("other").await;
    let root = app.token("root").await;
    let (status, user) = app
        .json(
            "POST",
            "/api/user",
            Some(&reseller),
            Some(json!({"username": "carol", "proxies": {"vless": {}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["admin"]["username"], "reseller");

    assert_eq!(
        app.json("GET", "/api/user/carol", Some(&reseller), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.json("GET", "/api/user/carol", Some(&root), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = app.json("GET", "/api/user/carol", Some(&other), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["detail"], "You're not allowed");
    assert_eq!(
        app.json("DELETE", "/api/user/carol", Some(&other), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    assert_eq!(
        app.json("GET", "/api/nodes", Some(&reseller), None).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = app
        .json(
            "POST",
            "/api/node",
            Some(&reseller),
            Some(json!({"name": "n", "address": "127.0.0.1"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_eq!(
        app.json("DELETE", "/api/user/carol", Some(&reseller), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.json("GET", "/api/user/carol", Some(&root), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn user_input_is_validated_field_by_field() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let root = app.token("root").await;
    let cases = [
        (
            json!({"username": "x", "proxies": {"vmess": {}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username",
        ),
        (
            json!({"username": "okname"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "proxies",
        ),
        (
            json!({"username": "okname", "proxies": {"wireguard": {}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
        ),
        (
            json!({"username": "okname", "proxies": {"vmess": {}}, "data_limit": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "data_limit",
        ),
        (
            json!({"username": "okname", "proxies": {"vmess": {}}, "status": "limited"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "status",
        ),
        (
            json!({"username": "okname", "proxies": {"vmess": {}}, "status": "on_hold"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            // Marzban's field for "User cannot be on hold without a valid
            // on_hold_expire_duration." (the domain's rule).
            "status",
        ),
        (
            json!({"username": "okname", "proxies": {"shadowsocks": {"method": "rc4"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "proxies",
        ),
        (
            json!({"username": "okname", "proxies": {"vmess": {}}, "note": "n".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "note",
        ),
    ];
    for (body, want, field) in cases {
        let (status, got) = app
            .json("POST", "/api/user", Some(&root), Some(body.clone()))
            .await;
        assert_eq!(status, want, "{body} -> {got}");
        assert!(got["detail"].get(field).is_some(), "{body} -> {got}");
    }
    let (status, got) = app
        .json("POST", "/api/user", Some(&root), Some(json!({"username": "okname", "proxies": {"vmess": {}}, "inbounds": {"vmess": ["nope"]}})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(got["detail"], "Inbound nope doesn't exist");
    // Nothing half-written: the name is still free.
    let (status, _) = app
        .json("POST", "/api/user", Some(&root), Some(json!({"username": "okname", "proxies": {"vmess": {}}, "inbounds": {"vmess": ["VMess TCP"]}})))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn subscriptions_serve_links_with_headers_and_honour_the_token() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
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
    let (_, user) = app
        .json("POST", "/api/user", Some(&root), Some(json!({"username": "dave", "proxies": {"trojan": {"password": "tp"}}, "data_limit": 5000})))
        .await;
    assert_eq!(user["links"].as_array().unwrap().len(), 1);
    let url = user["subscription_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/sub/"));

    let req = Request::get(&url)
        .header(header::USER_AGENT, "v2rayNG/1.8.5")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = app.call(req).await;
    assert_eq!(status, StatusCode::OK);
    let text = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.starts_with("trojan://tp@198.51.100.4:10003?"),
        "{text}"
    );
    assert_eq!(
        headers["subscription-userinfo"],
        "upload=0; download=0; total=5000; expire=0"
    );
    assert_eq!(headers["profile-update-interval"], "12");
    let (_, fetched) = app.json("GET", "/api/user/dave", Some(&root), None).await;
    assert_eq!(fetched["sub_last_user_agent"], "v2rayNG/1.8.5");

    // A tampered token, and a token minted before the user existed, are dead.
    let mut tampered = url.clone();
    tampered.pop();
    tampered.push(if url.ends_with('A') { 'B' } else { 'A' });
    let (status, _, _) = app
        .call(Request::get(&tampered).body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let old = nexpoint::subscription::token::issue_at("dave", 1_000, "sub-secret");
    let (status, _, _) = app
        .call(
            Request::get(format!("/sub/{old}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn enrollment_signs_the_nodes_csr_once() {
    let db = TestDb::sqlite().await;
    let app = app(&db).await;
    let root = app.token("root").await;
    let (status, node) = app
        .json(
            "POST",
            "/api/node",
            Some(&root),
            Some(json!({"name": "edge", "address": "127.0.0.1", "port": 62050})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{node}");
    let token = node["enrollment_token"].as_str().unwrap().to_owned();
    let command = node["enrollment_command"].as_str().unwrap();
    assert!(
        command.starts_with("nexpoint-node enroll --control-plane http://cp.example:8000 --token ")
    );
    assert!(command.contains("--ca-fingerprint "));

    let (key_pem, csr) = nexpoint_certs::node_key_and_csr("edge").unwrap();
    assert!(key_pem.contains("PRIVATE KEY"));
    let (status, body) = app
        .json(
            "POST",
            "/api/node/enroll",
            None,
            Some(json!({"token": token, "csr": csr})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cert = body["certificate"].as_str().unwrap();
    let fp = nexpoint_certs::fingerprint_pem(cert).unwrap();
    let (_, listed) = app
        .json(
            "GET",
            &format!("/api/node/{}", node["id"]),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(listed["certificate_fingerprint"], fp);
    assert_eq!(listed["enrolled"], true);

    let (status, body) = app
        .json(
            "POST",
            "/api/node/enroll",
            None,
            Some(json!({"token": token, "csr": csr})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Invalid or expired enrollment token");

    // A bad CSR with a good token consumes nothing.
    let (_, second) = app
        .json(
            "POST",
            "/api/node",
            Some(&root),
            Some(json!({"name": "edge2", "address": "127.0.0.1"})),
        )
        .await;
    let token2 = second["enrollment_token"].as_str().unwrap();
    let (status, body) = app
        .json(
            "POST",
            "/api/node/enroll",
            None,
            Some(json!({"token": token2, "csr": "junk"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app
        .json(
            "POST",
            "/api/node/enroll",
            None,
            Some(json!({"token": token2, "csr": csr})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(
        app.json("DELETE", "/api/node/1", Some(&root), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.json("GET", "/api/node/1", Some(&root), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.json("GET", "/api/node/abc", Some(&root), None).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
