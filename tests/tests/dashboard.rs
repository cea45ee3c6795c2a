//! The admin dashboard in a real browser, against a real `nexpoint serve`
//! with a real node (`nexpoint-node` running V2Ray).
//!
//! `tests/browser/dashboard.mjs` (playwright-core driving Debian's headless
//! Chromium) logs in, creates and edits a user, checks her subscription link
//! and QR code, watches the node's status and live logs, visits every page,
//! switches to Persian (right to left) and checks 360 px phones. Screenshots
//! of each page land in `<target>/test-artifacts/dashboard/`.
//!
//! The ignored `users_page_with_100000_users` measures how fast the users
//! page shows its first rows with 100,000 users in the database:
//! `cargo test -p nexpoint-tests --test dashboard -- --ignored --nocapture`.
//!
//! Needs dashboard/dist (scripts/build-dashboard.sh), /usr/bin/chromium, node
//! and tests/browser/node_modules (scripts/install-test-tools.sh). Missing
//! tools fail the test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nexpoint::api::hash_password;
use nexpoint::domain::{Proxies, ResetStrategy, UserStatus};
use nexpoint::store::{NewAdmin, NewUser, Store};
use nexpoint_tests::control_plane::ADMIN_USERNAME;
use nexpoint_tests::paths::{repo_root, v2ray_bin};
use nexpoint_tests::steps::connected_node;
use nexpoint_tests::{ControlPlane, ControlPlaneOptions};

const INSTALL_HINT: &str = "run scripts/install-test-tools.sh";

fn artifact_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                repo_root().join(p)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("test-artifacts").join("dashboard")
}

/// The browser, node, playwright-core and the built dashboard, or a panic
/// saying how to get them.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("NEXPOINT_CHROMIUM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "Chromium not found at {}: {INSTALL_HINT}",
        chromium.display()
    );
    let browser = repo_root().join("tests/browser");
    assert!(
        browser
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is missing in tests/browser/node_modules: {INSTALL_HINT}"
    );
    assert!(
        repo_root().join("dashboard/dist/index.html").is_file(),
        "dashboard/dist is missing: run scripts/build-dashboard.sh"
    );
    (chromium, browser)
}

/// Runs `dashboard.mjs MODE` and returns its standard output.
async fn run_browser(mode: &str, base_url: &str, params: serde_json::Value) -> String {
    let (chromium, browser_dir) = browser_tools();
    let artifacts = artifact_dir();
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let params_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(params_file.path(), params.to_string()).expect("write params");
    let child = tokio::process::Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .arg(mode)
        .arg(base_url)
        .arg(&artifacts)
        .arg(params_file.path())
        .current_dir(&browser_dir)
        .env("NEXPOINT_CHROMIUM_BIN", &chromium)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn node ({INSTALL_HINT}): {e}"));
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("the browser test finishes in 300 s")
        .expect("wait for node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    assert!(
        output.status.success(),
        "tests/browser/dashboard.mjs {mode} failed ({}); its output above lists the checks, \
         screenshots are in {}",
        output.status,
        artifacts.display()
    );
    stdout
}

fn assert_screenshot(dir: &Path, name: &str) {
    let png = dir.join(format!("{name}.png"));
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("screenshot {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5_000,
        "{} is not a real screenshot",
        png.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_with_a_real_node() {
    browser_tools();
    let cp = ControlPlane::start().await.expect("control plane starts");
    let _node = connected_node(&cp, "edge-1", &v2ray_bin()).await;

    // The dashboard's own HTTP contract: redirect, SPA fallback, caching.
    let http = &cp.anonymous;
    let res = http
        .get(cp.url("/dashboard"))
        .send()
        .await
        .expect("GET /dashboard");
    assert_eq!(
        res.url().path(),
        "/dashboard/",
        "/dashboard redirects to /dashboard/"
    );
    let res = http
        .get(cp.url("/dashboard/users/someone"))
        .send()
        .await
        .expect("GET a client route");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let html = res.text().await.expect("index.html");
    assert!(html.contains("<base href=\"/dashboard/\">"), "{html}");
    let asset = html
        .split('"')
        .find(|s| s.starts_with("./assets/") && s.ends_with(".js"))
        .expect("index.html names a hashed script");
    let res = http
        .get(cp.url(&format!("/dashboard/{}", &asset[2..])))
        .send()
        .await
        .expect("GET asset");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    let res = http
        .get(cp.url("/dashboard/assets/missing-123.js"))
        .send()
        .await
        .expect("GET a missing asset");
    assert_eq!(
        res.status(),
        404,
        "a missing asset is not answered with the page"
    );

    let reseller_password = "reseller-pw-1";
    let res = cp
        .api(reqwest::Method::POST, "/api/admin")
        .json(&serde_json::json!({
            "username": "reseller",
            "password": reseller_password,
            "is_sudo": false,
        }))
        .send()
        .await
        .expect("POST /api/admin");
    assert!(
        res.status().is_success(),
        "creating a non-sudo admin: {}",
        res.status()
    );

    run_browser(
        "e2e",
        &cp.base_url,
        serde_json::json!({
            "username": ADMIN_USERNAME,
            "password": cp.admin_password,
            "node": "edge-1",
            "reseller": { "username": "reseller", "password": reseller_password },
        }),
    )
    .await;
    let dir = artifact_dir();
    for name in [
        "01-login",
        "03-overview",
        "05-user-detail",
        "06-users",
        "07-nodes",
        "08-node-logs",
        "11-core",
        "13-overview-fa",
        "15-users-fa-360",
        "17-users-360",
    ] {
        assert_screenshot(&dir, name);
    }
}

/// 100,000 users written through the store in bulk into the SQLite database
/// a real `nexpoint serve` then opens.
async fn fill_users(url: &str, users: usize) {
    let store = Store::connect(url).await.expect("open the store");
    let owner = store
        .create_admin(NewAdmin {
            username: "reseller",
            hashed_password: &hash_password("pw").expect("hash"),
            is_sudo: false,
        })
        .await
        .expect("owner");
    let batch: Vec<NewUser> = (0..users)
        .map(|i| {
            let mut proxies: Proxies = serde_json::from_str(r#"{"vless": {}}"#).expect("proxies");
            proxies.fill_missing_credentials();
            NewUser {
                username: format!("user{i:06}"),
                status: UserStatus::Active,
                proxies,
                excluded_inbounds: Default::default(),
                data_limit: Some(1 << 40),
                data_limit_reset_strategy: ResetStrategy::NoReset,
                expire: Some(2_000_000_000 + i as i64),
                note: Some(format!("customer #{i}")),
                admin_id: Some(owner.id),
                on_hold_expire_duration: None,
                on_hold_timeout: None,
                auto_delete_in_days: None,
            }
        })
        .collect();
    for chunk in batch.chunks(10_000) {
        store.create_users_bulk(chunk).await.expect("bulk insert");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fills 100,000 users (about a minute); run with --ignored to measure"]
async fn users_page_with_100000_users() {
    browser_tools();
    let users: usize = std::env::var("NEXPOINT_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("big.db").display());
    let start = Instant::now();
    fill_users(&url, users).await;
    println!(
        "filled {users} users in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        database_url: Some(url),
        ..Default::default()
    })
    .await
    .expect("control plane starts");
    let out = run_browser(
        "measure",
        &cp.base_url,
        serde_json::json!({
            "username": ADMIN_USERNAME,
            "password": cp.admin_password,
            "runs": 7,
        }),
    )
    .await;
    let line = out.lines().last().expect("a result line");
    let result: serde_json::Value = serde_json::from_str(line).expect("JSON result");
    let mut first: Vec<i64> = result["first_rows_ms"]
        .as_array()
        .expect("first_rows_ms")
        .iter()
        .filter_map(|v| v.as_i64())
        .collect();
    first.sort_unstable();
    let median = first[first.len() / 2];
    println!("users page, {users} users: first rows {first:?} ms (median {median} ms); {result}");
    assert!(
        median < 1_000,
        "the users page shows its first rows in {median} ms (median), over 1 s"
    );
}
