//! The subscription page in a real browser: the page the control plane
//! renders for `GET /sub/{token}` (`Accept: text/html`), in each of its
//! languages, opened by Debian's headless Chromium at a phone's 360×800.
//!
//! The page is rendered with `nexpoint::subscription::page::render` for a
//! realistic user, served from a temporary directory over loopback HTTP, and
//! checked by tests/browser/subscription_page.mjs (playwright-core): the
//! username, usage and every link are visible, Persian is right-to-left,
//! nothing scrolls sideways, the copy buttons fill the clipboard (Clipboard
//! API and the execCommand fallback), and nothing is fetched from elsewhere.
//! Screenshots land in target/test-artifacts/subscription-page-<lang>.png.
//!
//! Needs /usr/bin/chromium, node and tests/browser/node_modules: run
//! scripts/install-test-tools.sh. Missing tools fail the test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nexpoint::domain::{Proxies, ResetStrategy, UserStatus};
use nexpoint::store::User;
use nexpoint::subscription::endpoints::{Credentials, Endpoint};
use nexpoint::subscription::links::share_link;
use nexpoint::subscription::page::{self, Lang, PageContext};
use nexpoint_tests::paths::repo_root;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const INSTALL_HINT: &str = "run scripts/install-test-tools.sh";
const GB: i64 = 1024 * 1024 * 1024;
const NOW: i64 = 1_767_225_600; // 2026-01-01 00:00:00 UTC
const SUBSCRIPTION_URL: &str =
    "https://vpn.example.com/sub/bWluYV9rLDE3NjcyMjU2MDA.3f9c2a7be1d04c56";

/// What each language's visit sends.
const ACCEPT_LANGUAGE: [(Lang, &str); 4] = [
    (Lang::En, "en-US,en;q=0.9"),
    (Lang::Fa, "fa-IR,fa;q=0.9,en-US;q=0.6,en;q=0.5"),
    (Lang::Ru, "ru-RU,ru;q=0.9,en;q=0.4"),
    (Lang::Zh, "zh-CN,zh;q=0.9,en;q=0.3"),
];

fn user() -> User {
    let proxies: Proxies = serde_json::from_str(
        r#"{"vmess": {"id": "0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a"},
            "vless": {"id": "7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a", "flow": "xtls-rprx-vision"},
            "trojan": {"password": "t7Qm2vXp9LrK"},
            "shadowsocks": {"password": "Zx81mQp0aLs3", "method": "chacha20-ietf-poly1305"}}"#,
    )
    .expect("proxies");
    User {
        id: 42,
        username: "mina_k".into(),
        status: UserStatus::Active,
        proxies,
        excluded_inbounds: Default::default(),
        used_traffic: 37 * GB + 430 * 1024 * 1024,
        lifetime_used_traffic: 212 * GB,
        data_limit: Some(50 * GB),
        data_limit_reset_strategy: ResetStrategy::Month,
        expire: Some(NOW + 23 * 86_400 - 3_600),
        note: None,
        admin_id: None,
        admin_username: None,
        on_hold_expire_duration: None,
        on_hold_timeout: None,
        auto_delete_in_days: None,
        sub_revoked_at: None,
        sub_updated_at: Some(NOW - 3_600),
        sub_last_user_agent: Some("v2rayNG/1.9.30".into()),
        online_at: Some(NOW - 600),
        created_at: NOW - 90 * 86_400,
        edit_at: None,
        next_plan: None,
        last_status_change: None,
        last_usage_reset_at: None,
    }
}

fn endpoint(remark: &str, address: &str, port: u16, credentials: Credentials) -> Endpoint {
    Endpoint::new(remark, address, port, credentials)
}

/// (remark, share link) as the handler passes them: one per protocol, the
/// kinds operators run.
fn links() -> Vec<(String, String)> {
    let vless = Endpoint {
        security: "reality".into(),
        sni: "www.microsoft.com".into(),
        fingerprint: "chrome".into(),
        ..endpoint(
            "🇩🇪 Frankfurt · VLESS Reality",
            "de1.vpn.example.com",
            443,
            Credentials::Vless {
                id: "7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a".into(),
                flow: "xtls-rprx-vision".into(),
            },
        )
    };
    let vmess = Endpoint {
        network: "ws".into(),
        host: "cdn.example.com".into(),
        path: "/api/v2/stream".into(),
        security: "tls".into(),
        sni: "cdn.example.com".into(),
        alpn: vec!["h2".into(), "http/1.1".into()],
        fingerprint: "chrome".into(),
        ..endpoint(
            "🇳🇱 Amsterdam · VMess WS TLS",
            "nl1.vpn.example.com",
            443,
            Credentials::Vmess {
                id: "0b5f5a4e-2f0c-4a89-9d3c-1f1e0d7c6b5a".into(),
            },
        )
    };
    let trojan = Endpoint {
        network: "grpc".into(),
        path: "tr-grpc".into(),
        security: "tls".into(),
        sni: "fi1.vpn.example.com".into(),
        ..endpoint(
            "🇫🇮 Helsinki · Trojan gRPC",
            "fi1.vpn.example.com",
            8443,
            Credentials::Trojan {
                password: "t7Qm2vXp9LrK".into(),
            },
        )
    };
    let shadowsocks = endpoint(
        "🇮🇷 تهران · Shadowsocks",
        "203.0.113.24",
        1080,
        Credentials::Shadowsocks {
            method: "chacha20-ietf-poly1305".into(),
            password: "Zx81mQp0aLs3".into(),
        },
    );
    [vless, vmess, trojan, shadowsocks]
        .iter()
        .map(|e| (e.remark.clone(), share_link(e)))
        .collect()
}

/// Where screenshots go: `<target dir>/test-artifacts`.
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
    target.join("test-artifacts")
}

/// The browser, node and playwright-core, or a panic saying how to get them.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("NEXPOINT_CHROMIUM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "Chromium not found at {}: {INSTALL_HINT}",
        chromium.display()
    );
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        node_ok,
        "`node` does not run: install Node.js 20, then {INSTALL_HINT}"
    );
    let browser = repo_root().join("tests/browser");
    let playwright = browser.join("node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "{} is missing: {INSTALL_HINT}",
        playwright.display()
    );
    (chromium, browser)
}

/// A static file server for `root` on 127.0.0.1:0: `GET /<dir>/` answers
/// `<dir>/index.html`. Every response closes the connection.
async fn serve(root: PathBuf) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let root = root.clone();
            tokio::spawn(async move {
                if let Err(e) = respond(stream, &root).await {
                    eprintln!("[page-server] {e}");
                }
            });
        }
    });
    addr
}

async fn respond(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split(' ').nth(1).unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let file = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/').or(p.strip_suffix("/index.html")))
        .filter(|dir| !dir.is_empty() && dir.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|dir| root.join(dir).join("index.html"));
    let (status, body) = match file.map(std::fs::read) {
        Some(Ok(body)) => ("200 OK", body),
        _ => ("404 Not Found", b"not found".to_vec()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_page_in_chromium_at_phone_width() {
    let (chromium, browser_dir) = browser_tools();
    let user = user();
    let links = links();

    let site = tempfile::tempdir().expect("tempdir");
    let mut pages = Vec::new();
    for (lang, accept_language) in ACCEPT_LANGUAGE {
        assert_eq!(page::language(accept_language), lang);
        let html = page::render(&PageContext {
            user: &user,
            links: &links,
            subscription_url: SUBSCRIPTION_URL,
            accept_language,
            now: NOW,
            templates_dir: None,
        })
        .expect("render the page");
        let dir = site.path().join(lang.code());
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("index.html"), &html).expect("write page");
        // Beside the screenshots, to open by hand.
        std::fs::create_dir_all(artifact_dir()).expect("artifact dir");
        std::fs::write(
            artifact_dir().join(format!("subscription-page-{}.html", lang.code())),
            &html,
        )
        .expect("write artifact page");
        pages.push(serde_json::json!({
            "lang": lang.code(),
            "path": format!("/{}/", lang.code()),
            "dir": lang.dir(),
            "username": user.username,
            "usage": page::usage_text(&user, lang),
            "subscription_url": SUBSCRIPTION_URL,
            "links": links.iter().map(|(_, url)| url).collect::<Vec<_>>(),
        }));
    }
    let expectations = site.path().join("expectations.json");
    std::fs::write(
        &expectations,
        serde_json::to_vec_pretty(&serde_json::json!({ "pages": pages })).expect("json"),
    )
    .expect("write expectations");

    let addr = serve(site.path().to_path_buf()).await;
    let artifacts = artifact_dir();
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    for lang in Lang::ALL {
        for suffix in ["", "-dark"] {
            let _ = std::fs::remove_file(
                artifacts.join(format!("subscription-page-{}{suffix}.png", lang.code())),
            );
        }
    }

    let mut child = tokio::process::Command::new("node")
        .arg(browser_dir.join("subscription_page.mjs"))
        .arg(format!("http://{addr}/"))
        .arg(&artifacts)
        .arg(&expectations)
        .current_dir(&browser_dir)
        .env("NEXPOINT_CHROMIUM_BIN", &chromium)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let status = match tokio::time::timeout(Duration::from_secs(240), child.wait()).await {
        Ok(status) => status.expect("wait for node"),
        Err(_) => {
            let _ = child.kill().await;
            panic!("the browser test did not finish in 240 s");
        }
    };
    assert!(
        status.success(),
        "tests/browser/subscription_page.mjs failed ({status}); its output above lists the checks"
    );

    for lang in Lang::ALL {
        for suffix in ["", "-dark"] {
            let png = artifacts.join(format!("subscription-page-{}{suffix}.png", lang.code()));
            let bytes =
                std::fs::read(&png).unwrap_or_else(|e| panic!("screenshot {}: {e}", png.display()));
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
                "{} is not a real screenshot",
                png.display()
            );
        }
        println!(
            "screenshot: {}",
            artifacts
                .join(format!("subscription-page-{}.png", lang.code()))
                .display()
        );
    }
}
