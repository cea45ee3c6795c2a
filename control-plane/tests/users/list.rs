//! The users list: filters, search, sort lists, pages.

use crate::fixtures::*;
use crate::on_both;

async fn list_filters_sorts_and_pages(app: &App) {
    let (root, reseller) = seed(app).await;
    let get = |q: &'static str, token: String| async move {
        let (status, body) = app
            .json("GET", &format!("/api/users{q}"), Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        body
    };
    let all = get("", root.clone()).await;
    assert_eq!(all["total"], 5);
    assert_eq!(
        usernames(&all),
        ["Alpha", "bravo", "charlie", "delta", "echo"]
    );

    let page = get("?offset=1&limit=2&sort=-username", root.clone()).await;
    assert_eq!(page["total"], 5);
    assert_eq!(usernames(&page), ["delta", "charlie"]);

    let by_limit = get("?sort=data_limit", root.clone()).await;
    assert_eq!(
        usernames(&by_limit),
        ["echo", "delta", "charlie", "bravo", "Alpha"]
    );
    // No expiry sorts after every date ascending, first descending.
    let by_expire = get("?sort=-expire,username", root.clone()).await;
    assert_eq!(usernames(&by_expire)[0], "charlie");
    let by_expire = get("?sort=expire", root.clone()).await;
    assert_eq!(usernames(&by_expire)[4], "charlie");

    let named = get("?username=ALPHA&username=echo", root.clone()).await;
    assert_eq!(usernames(&named), ["Alpha", "echo"]);
    let search = get("?search=vip", root.clone()).await;
    assert_eq!(usernames(&search), ["delta"]);
    // LIKE metacharacters are literal.
    assert_eq!(
        usernames(&get("?search=100%25", root.clone()).await),
        ["delta"]
    );
    assert_eq!(get("?search=%25_", root.clone()).await["total"], 0);
    // A searched or named page carries the total of every match, also on a
    // page past the end.
    let named_page = get(
        "?username=alpha&username=bravo&username=echo&limit=1&offset=1",
        root.clone(),
    )
    .await;
    assert_eq!(
        (usernames(&named_page), &named_page["total"]),
        (vec!["bravo".to_owned()], &json!(3))
    );
    let past_end = get("?username=alpha&username=bravo&offset=5", root.clone()).await;
    assert_eq!(
        (usernames(&past_end).len(), &past_end["total"]),
        (0, &json!(2))
    );
    let by_admin = get("?admin=reseller", root.clone()).await;
    assert_eq!(usernames(&by_admin), ["bravo", "delta"]);
    assert_eq!(get("?status=active", root.clone()).await["total"], 5);
    assert_eq!(get("?status=limited", root.clone()).await["total"], 0);

    // A non-sudo admin sees only its own users, whatever it asks for.
    let own = get("?admin=root", reseller.clone()).await;
    assert_eq!(usernames(&own), ["bravo", "delta"]);

    for bad in [
        "?sort=password",
        "?status=deleted",
        "?offset=-1",
        "?limit=abc",
        "?limit=-5",
    ] {
        let (status, body) = app
            .json("GET", &format!("/api/users{bad}"), Some(&root), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["detail"].is_object(), "{bad}: {body}");
    }
    let (status, _) = app.json("GET", "/api/users", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
on_both!(list_filters_sorts_and_pages);

/// The list sorts by usage on a key ingestion does not write: it follows
/// traffic when the usage-history job refreshes it, and resets at once.
async fn usage_sort_follows_refreshes_and_resets(app: &App) {
    let (root, _) = seed(app).await;
    let node = node(app, "n1").await;
    for (name, bytes) in [
        ("Alpha", 100),
        ("bravo", 300),
        ("charlie", 200),
        ("delta", 50),
    ] {
        traffic(app, node, name, bytes).await;
    }
    let by_usage = || async {
        let (status, body) = app
            .json("GET", "/api/users?sort=-used_traffic", Some(&root), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        usernames(&body)
    };
    // Not refreshed yet: every key is 0, so the newest user comes first.
    assert_eq!(
        by_usage().await,
        ["echo", "delta", "charlie", "bravo", "Alpha"]
    );
    assert_eq!(app.store.refresh_usage_order().await.unwrap(), 4);
    assert_eq!(
        by_usage().await,
        ["bravo", "charlie", "Alpha", "delta", "echo"]
    );
    // Nothing changed since: nothing to write.
    assert_eq!(app.store.refresh_usage_order().await.unwrap(), 0);

    // One user's reset moves it at once.
    post(app, &root, "/api/user/bravo/reset").await;
    assert_eq!(
        by_usage().await,
        ["charlie", "Alpha", "delta", "echo", "bravo"]
    );
    // So does resetting everyone (one statement for many users).
    post(app, &root, "/api/users/reset").await;
    assert_eq!(
        by_usage().await,
        ["echo", "delta", "charlie", "bravo", "Alpha"]
    );
    assert_eq!(app.store.refresh_usage_order().await.unwrap(), 0);
}
on_both!(usage_sort_follows_refreshes_and_resets);
