//! Notifications end to end: the real `nexpoint serve` delivering to real
//! HTTP receivers on loopback (one failing, one slow, one down for a while),
//! to a Telegram Bot API stand-in, and across a SIGKILL mid-delivery.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use hmac::{Hmac, Mac};
use nexpoint_tests::control_plane::{expect_success, login};
use nexpoint_tests::control_plane_restart::restart_control_plane;
use nexpoint_tests::paths::nexpoint_bin;
use nexpoint_tests::postgres::TestDatabase;
use nexpoint_tests::process::ChildProcess;
use nexpoint_tests::receivers::{TelegramStandIn, WebhookReceiver};
use nexpoint_tests::{ControlPlane, ControlPlaneOptions, wait_until};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "hook-secret";
const DELIVERY: Duration = Duration::from_secs(60);

fn webhook_args(urls: &[&str]) -> Vec<String> {
    vec![
        "--webhook-address".into(),
        urls.join(","),
        "--webhook-secret".into(),
        SECRET.into(),
        // Retries every second or two, so a receiver that comes back is
        // served again quickly.
        "--notify-retry-max-seconds".into(),
        "2".into(),
    ]
}

/// The actions and usernames of `items`, in order.
fn actions(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap_or_default().to_owned(),
                i["username"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Waits until `receiver` holds `count` distinct items.
async fn wait_for_items(receiver: &WebhookReceiver, count: usize, what: &str) -> Result<()> {
    wait_until(DELIVERY, what, || async {
        let got = receiver.unique_items().len();
        ensure!(got >= count, "{got} of {count} items");
        Ok(())
    })
    .await
}

/// Every request carries the secret and a valid signature over its
/// timestamp and body, and its items in increasing id order.
fn check_requests(receiver: &WebhookReceiver) -> Result<()> {
    for request in receiver.requests() {
        ensure!(
            request.secret.as_deref() == Some(SECRET),
            "x-webhook-secret"
        );
        let timestamp = request.timestamp.context("x-nexpoint-timestamp")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())?;
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&request.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        ensure!(
            request.signature.as_deref() == Some(expected.as_str()),
            "signature"
        );
        let ids: Vec<i64> = request
            .items
            .iter()
            .filter_map(|i| i["id"].as_i64())
            .collect();
        ensure!(ids.len() == request.items.len(), "an item without id");
        ensure!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids out of order: {ids:?}"
        );
    }
    // First arrivals come in id order: a re-send repeats, never reorders.
    let firsts: Vec<i64> = receiver
        .unique_items()
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    ensure!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "first arrivals out of order: {firsts:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_address_gets_every_user_event_in_order_despite_failing_slow_and_down_receivers() {
    let healthy = WebhookReceiver::start().await.unwrap();
    let failing = WebhookReceiver::start().await.unwrap();
    failing.fail_with(500);
    let slow = WebhookReceiver::start().await.unwrap();
    slow.set_delay(Duration::from_millis(1500));
    let down = WebhookReceiver::start().await.unwrap();
    down.set_down(true);
    let mut extra = webhook_args(&[&healthy.url, &failing.url, &slow.url, &down.url]);
    extra.extend(["--job-reminders-interval-seconds".into(), "1".into()]);
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        extra_args: extra,
        ..Default::default()
    })
    .await
    .unwrap();

    cp.create_simple_user("ann", &["vmess"]).await.unwrap();
    cp.create_simple_user("bob", &["vless"]).await.unwrap();
    expect_success(
        cp.api(Method::PUT, "/api/user/ann")
            .json(&json!({"data_limit": 1_000_000})),
        "PUT /api/user/ann",
    )
    .await
    .unwrap();
    expect_success(
        cp.api(Method::PUT, "/api/user/bob")
            .json(&json!({"status": "disabled"})),
        "PUT /api/user/bob",
    )
    .await
    .unwrap();
    expect_success(
        cp.api(Method::POST, "/api/user/ann/revoke_sub"),
        "revoke_sub",
    )
    .await
    .unwrap();
    cp.delete_user("bob").await.unwrap();
    let expected: Vec<(String, String)> = [
        ("user_created", "ann"),
        ("user_created", "bob"),
        ("user_updated", "ann"),
        ("user_updated", "bob"),
        ("user_disabled", "bob"),
        ("subscription_revoked", "ann"),
        ("user_deleted", "bob"),
    ]
    .iter()
    .map(|(a, u)| (a.to_string(), u.to_string()))
    .collect();

    // The healthy address is not held up by the others.
    wait_for_items(&healthy, expected.len(), "the healthy receiver")
        .await
        .unwrap();
    assert_eq!(actions(&healthy.unique_items()), expected);
    let first = &healthy.unique_items()[0];
    assert_eq!(first["by"]["username"], "e2e-admin");
    assert_eq!(first["user"]["status"], "active");
    for key in [
        "enqueued_at",
        "send_at",
        "tries",
        "used_percent",
        "days_left",
        "reason",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }

    // The failing and down addresses have their own retry state.
    let jobs = wait_until(DELIVERY, "failures recorded per address", || async {
        let jobs = expect_success(cp.api(Method::GET, "/api/jobs"), "GET /api/jobs").await?;
        let failed = jobs["deliveries"]
            .as_array()
            .context("deliveries")?
            .iter()
            .filter(|d| d["attempts"].as_i64() > Some(0) && d["last_error"].is_string())
            .count();
        ensure!(failed >= 2, "{failed} destinations with failures: {jobs}");
        Ok(jobs)
    })
    .await
    .unwrap();
    assert!(failing.unique_items().len() <= expected.len());
    let reminders = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "days_left_reminders")
        .cloned()
        .expect("the reminders job is listed");
    assert_eq!(reminders["interval_seconds"], 1);

    // Back after a pause: everything arrives, in order.
    failing.fail_with(0);
    down.set_down(false);
    for (receiver, name) in [(&failing, "failing"), (&slow, "slow"), (&down, "down")] {
        wait_for_items(receiver, expected.len(), name)
            .await
            .unwrap();
        assert_eq!(actions(&receiver.unique_items()), expected, "{name}");
        check_requests(receiver).unwrap();
    }
    check_requests(&healthy).unwrap();
    assert_eq!(
        healthy.items().len(),
        expected.len(),
        "nothing re-sent to a receiver that said 2xx"
    );

    // Every periodic job ran and reported.
    wait_until(DELIVERY, "the reminders job has run", || async {
        let jobs = expect_success(cp.api(Method::GET, "/api/jobs"), "GET /api/jobs").await?;
        let job = jobs["jobs"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|j| j["name"] == "days_left_reminders")
                    .cloned()
            })
            .context("job listed")?;
        ensure!(job["runs"].as_u64() >= Some(1), "{job}");
        ensure!(job["last_outcome"] == "ok", "{job}");
        ensure!(job["last_duration_ms"].is_u64(), "{job}");
        Ok(())
    })
    .await
    .unwrap();
}

async fn killed_mid_delivery(database_url: Option<String>) -> Result<()> {
    const USERS: i64 = 120;
    let receiver = WebhookReceiver::start().await?;
    // Slow enough that a batch is still unanswered when the kill comes.
    receiver.set_delay(Duration::from_secs(3));
    let mut cp = ControlPlane::start_with(ControlPlaneOptions {
        database_url,
        extra_args: webhook_args(&[&receiver.url]),
        ..Default::default()
    })
    .await?;
    for i in 0..USERS {
        cp.create_simple_user(&format!("user{i:03}"), &["vmess"])
            .await?;
    }
    wait_until(DELIVERY, "a batch in flight", || async {
        ensure!(!receiver.requests().is_empty(), "no request yet");
        Ok(())
    })
    .await?;
    cp.process.kill().await?;
    receiver.set_delay(Duration::ZERO);
    let before = receiver.unique_items().len() as i64;
    ensure!(
        before < USERS,
        "everything arrived before the kill: no test"
    );

    restart_control_plane(&mut cp, 250).await?;
    // Logins are notified too, but not to webhooks (user actions only): the
    // items are exactly the users'.
    wait_for_items(
        &receiver,
        USERS as usize,
        "every notification after the restart",
    )
    .await?;
    check_requests(&receiver)?;
    ensure!(
        receiver.unique_items().len() as i64 == USERS,
        "more items than users"
    );
    let duplicates = receiver.items().len() as i64 - USERS;
    ensure!(
        duplicates > 0,
        "the batch unanswered at the kill is sent again (at least once on the wire)"
    );
    let names: Vec<String> = receiver
        .unique_items()
        .iter()
        .map(|i| i["username"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected: Vec<String> = (0..USERS).map(|i| format!("user{i:03}")).collect();
    if names != expected {
        bail!("order: {names:?}");
    }
    cp.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_mid_delivery_loses_nothing_on_sqlite() {
    killed_mid_delivery(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_mid_delivery_loses_nothing_on_postgres() {
    let db = TestDatabase::create().await.unwrap();
    let result = killed_mid_delivery(Some(db.url.clone())).await;
    db.drop_database().await.unwrap();
    result.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn telegram_gets_valid_messages_and_never_a_password() {
    const TOKEN: &str = "123456:test-token";
    const CHAT: i64 = -100_555;
    const RESELLER_CHAT: i64 = 777;
    let bot = TelegramStandIn::start(TOKEN, &[CHAT, RESELLER_CHAT])
        .await
        .unwrap();
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        extra_args: vec![
            "--telegram-api-token".into(),
            TOKEN.into(),
            "--telegram-admin-id".into(),
            CHAT.to_string(),
            "--telegram-api-base".into(),
            bot.base_url.clone(),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let password = "hunter2-do-not-send";
    let refused = cp
        .anonymous
        .post(cp.url("/api/admin/token"))
        .form(&[("username", "<script>"), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    cp.create_simple_user("tg_user", &["vmess"]).await.unwrap();

    let messages = wait_until(DELIVERY, "the failed login and the new user", || async {
        let messages = bot.messages();
        ensure!(
            messages
                .iter()
                .any(|m| m.text.contains("Failed admin login"))
                && messages.iter().any(|m| m.text.contains("tg_user")),
            "messages {messages:?}, rejected {:?}",
            bot.rejections()
        );
        Ok(messages)
    })
    .await
    .unwrap();
    assert!(bot.rejections().is_empty(), "{:?}", bot.rejections());
    let failed = messages
        .iter()
        .find(|m| m.text.contains("Failed admin login"))
        .unwrap();
    assert_eq!(failed.chat_id, CHAT);
    assert!(failed.text.contains("&lt;script&gt;"), "{}", failed.text);
    assert!(failed.text.contains("127.0.0.1"), "{}", failed.text);
    for m in &messages {
        assert!(!m.text.contains(password), "{}", m.text);
    }
    // The harness's own successful login is reported too.
    assert!(messages.iter().any(|m| m.text.contains("Admin login")));

    // An admin with a telegram_id gets what happens to its own users.
    expect_success(
        cp.api(Method::POST, "/api/admin").json(&json!({
            "username": "reseller", "password": "reseller-pw", "is_sudo": false,
            "telegram_id": RESELLER_CHAT,
        })),
        "POST /api/admin",
    )
    .await
    .unwrap();
    let token = login(&cp.anonymous, &cp.base_url, "reseller", "reseller-pw")
        .await
        .unwrap();
    expect_success(
        cp.anonymous
            .post(cp.url("/api/user"))
            .bearer_auth(token)
            .json(&json!({"username": "resold", "proxies": {"vmess": {}}})),
        "POST /api/user as reseller",
    )
    .await
    .unwrap();
    let own = wait_until(DELIVERY, "the reseller's chat", || async {
        let own: Vec<_> = bot
            .messages()
            .into_iter()
            .filter(|m| m.chat_id == RESELLER_CHAT)
            .collect();
        ensure!(!own.is_empty(), "rejected {:?}", bot.rejections());
        Ok(own)
    })
    .await
    .unwrap();
    assert!(own[0].text.contains("User created") && own[0].text.contains("resold"));
    assert!(
        own.iter().all(|m| m.text.contains("resold")),
        "only its own users: {own:?}"
    );
}

#[tokio::test]
async fn a_malformed_webhook_address_is_a_clear_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let mut p = ChildProcess::spawn(
        "nexpoint",
        nexpoint_bin(),
        ["serve", "--data-dir", &data, "--listen", "127.0.0.1:0"],
        &[("NEXPOINT_WEBHOOK_ADDRESS", "hooks.example/no-scheme")],
    )
    .unwrap();
    let status = p.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(!status.success());
    let output = p.output_text();
    assert!(output.contains("--webhook-address"), "{output}");
    assert!(output.contains("not a URL"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
}
