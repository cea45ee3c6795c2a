//! Per-node usage and expired users.

use crate::fixtures::*;
use crate::on_both;

fn usages(body: &Value) -> Vec<(Value, String, i64)> {
    body["usages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["node_id"].clone(),
                u["node_name"].as_str().unwrap().to_owned(),
                u["used_traffic"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn usage_is_summed_per_node_and_owner(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let other = app.token("other").await;
    let (n1, n2, gone) = (
        node(app, "n1").await,
        node(app, "n2").await,
        node(app, "gone").await,
    );
    create(
        app,
        &reseller,
        json!({"username": "mine", "proxies": {"vmess": {}}}),
    )
    .await;
    create(
        app,
        &root,
        json!({"username": "yours", "proxies": {"vmess": {}}}),
    )
    .await;
    traffic(app, n1, "mine", 100).await;
    traffic(app, n2, "mine", 30).await;
    traffic(app, gone, "mine", 7).await;
    traffic(app, n1, "yours", 1000).await;
    traffic_at(app, n1, "mine", 5000, now() - 40 * 86_400).await;
    app.store.delete_node(gone).await.unwrap();

    let get = |path: String, token: String| async move {
        let (status, body) = app.json("GET", &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    };
    let expect = |master: i64, a: i64, b: i64| {
        vec![
            (Value::Null, "Master".to_owned(), master),
            (json!(n1), "n1".to_owned(), a),
            (json!(n2), "n2".to_owned(), b),
        ]
    };
    // Default: the last 30 days. A deleted node's traffic counts as Master's.
    let body = get("/api/user/mine/usage".into(), reseller.clone()).await;
    assert_eq!(body["username"], "mine");
    assert_eq!(usages(&body), expect(7, 100, 30));
    let start = nexpoint::time_fmt::iso_utc(now() - 50 * 86_400);
    let body = get(format!("/api/user/mine/usage?start={start}"), root.clone()).await;
    assert_eq!(usages(&body), expect(7, 5100, 30));
    let (from, to) = (
        nexpoint::time_fmt::iso_utc(now() + 86_400),
        nexpoint::time_fmt::iso_utc(now() + 2 * 86_400),
    );
    let body = get(
        format!("/api/user/mine/usage?start={from}&end={to}"),
        root.clone(),
    )
    .await;
    assert_eq!(usages(&body), expect(0, 0, 0));

    let body = get("/api/users/usage".into(), root.clone()).await;
    assert_eq!(usages(&body), expect(7, 1100, 30));
    let body = get("/api/users/usage?admin=Reseller".into(), root.clone()).await;
    assert_eq!(usages(&body), expect(7, 100, 30));
    let body = get(
        "/api/users/usage?admin=root&admin=reseller".into(),
        root.clone(),
    )
    .await;
    assert_eq!(usages(&body), expect(7, 1100, 30));
    let body = get("/api/users/usage?admin=ghost".into(), root.clone()).await;
    assert_eq!(usages(&body), expect(0, 0, 0));
    // Others see their own users' traffic, whatever they ask for.
    let body = get("/api/users/usage?admin=root".into(), reseller.clone()).await;
    assert_eq!(usages(&body), expect(7, 100, 30));
    let body = get("/api/users/usage".into(), other.clone()).await;
    assert_eq!(usages(&body), expect(0, 0, 0));

    let got = refused(
        app,
        "GET",
        "/api/user/mine/usage",
        Some(&other),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(got["detail"], "You're not allowed");
    let got = refused(
        app,
        "GET",
        "/api/user/ghost/usage",
        Some(&root),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(got["detail"], "User not found");
    for path in [
        "/api/user/mine/usage?start=yesterday",
        "/api/users/usage?end=2024-13-01T00:00:00",
        "/api/users/usage?start=2024-05-02T00:00:00&end=2024-05-01T00:00:00",
    ] {
        refused(
            app,
            "GET",
            path,
            Some(&root),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    for path in ["/api/user/mine/usage", "/api/users/usage"] {
        refused(app, "GET", path, None, None, StatusCode::UNAUTHORIZED).await;
    }
}
on_both!(usage_is_summed_per_node_and_owner);

async fn expired_users_are_listed_and_deleted(app: &App) {
    let root = app.token("root").await;
    let reseller = app.token("reseller").await;
    let n1 = node(app, "n1").await;
    let t = now();
    for (name, token, expire) in [
        ("old", &root, t - 10 * 86_400),
        ("recent", &root, t - 3600),
        ("theirs", &reseller, t - 7200),
        ("fresh", &root, t + 86_400),
    ] {
        create(
            app,
            token,
            json!({"username": name, "proxies": {"vmess": {}}, "expire": expire}),
        )
        .await;
    }
    create(
        app,
        &root,
        json!({"username": "forever", "proxies": {"vmess": {}}}),
    )
    .await;
    // Limited, and past its expiry too: expired as well. Limited with time
    // left: not expired.
    for name in ["spent", "cheap"] {
        create(
            app,
            &root,
            json!({"username": name, "proxies": {"vmess": {}}, "data_limit": 100,
                "expire": t + 3600}),
        )
        .await;
        traffic(app, n1, name, 100).await;
    }
    let body = put(app, &root, "spent", json!({"expire": t - 60})).await;
    assert_eq!(body["status"], "limited");

    let list = |query: &'static str, token: String| async move {
        let (status, body) = app
            .json(
                "GET",
                &format!("/api/users/expired{query}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        serde_json::from_value::<Vec<String>>(body).unwrap()
    };
    assert_eq!(
        list("", root.clone()).await,
        ["old", "recent", "spent", "theirs"]
    );
    let day_ago = nexpoint::time_fmt::iso_utc(t - 86_400);
    let later = nexpoint::time_fmt::iso_utc(t + 10 * 86_400);
    let query = |q: String| -> &'static str { Box::leak(q.into_boxed_str()) };
    assert_eq!(
        list(query(format!("?expired_after={day_ago}")), root.clone()).await,
        ["recent", "spent", "theirs"]
    );
    assert_eq!(
        list(query(format!("?expired_before={day_ago}")), root.clone()).await,
        ["old"]
    );
    // Never beyond now: a user with time left has not expired.
    assert_eq!(
        list(query(format!("?expired_before={later}")), root.clone()).await,
        ["old", "recent", "spent", "theirs"]
    );
    assert_eq!(list("", reseller.clone()).await, ["theirs"]);
    for bad in [
        "?expired_after=yesterday".to_owned(),
        format!("?expired_after={later}&expired_before={day_ago}"),
    ] {
        for method in ["GET", "DELETE"] {
            refused(
                app,
                method,
                &format!("/api/users/expired{bad}"),
                Some(&root),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    }

    // A non-sudo admin deletes its own expired users only.
    let theirs = row(app, "theirs").await;
    let base = revision(app).await;
    let (status, body) = app
        .json("DELETE", "/api/users/expired", Some(&reseller), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!(["theirs"]));
    assert_eq!(revision(app).await, base + 1);
    let changes = app.store.user_changes_since(base).await.unwrap();
    assert_eq!(changes.deleted_emails, [theirs.email()]);
    assert!(
        app.store
            .user_by_username("theirs")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(list("", root.clone()).await, ["old", "recent", "spent"]);
    let got = refused(
        app,
        "DELETE",
        "/api/users/expired",
        Some(&reseller),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        got["detail"],
        "No expired users found in the specified date range"
    );

    let base = revision(app).await;
    let (status, body) = app
        .json(
            "DELETE",
            &format!("/api/users/expired?expired_after={day_ago}"),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!(["recent", "spent"]));
    assert_eq!(revision(app).await, base + 1);
    assert_eq!(
        app.store
            .user_changes_since(base)
            .await
            .unwrap()
            .deleted_emails
            .len(),
        2
    );
    assert_eq!(list("", root.clone()).await, ["old"]);
    for method in ["GET", "DELETE"] {
        refused(
            app,
            method,
            "/api/users/expired",
            None,
            None,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
}
on_both!(expired_users_are_listed_and_deleted);
