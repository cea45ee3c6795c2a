//! The `nexpoint` commands that write, run against a running `nexpoint
//! serve` on the same database: users made by the CLI are the API's users
//! (checks, notification, rendering), subscription documents are the
//! endpoint's, and nodes added, rotated and removed from the CLI are picked
//! up by the daemon with a real agent on the other end.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure};
use nexpoint_tests::control_plane::CreatedNode;
use nexpoint_tests::node::enroll;
use nexpoint_tests::paths::{nexpoint_bin, v2ray_bin};
use nexpoint_tests::postgres::TestDatabase;
use nexpoint_tests::process::Stream;
use nexpoint_tests::receivers::WebhookReceiver;
use nexpoint_tests::{ControlPlane, ControlPlaneOptions, Node, free_port, wait_until};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const CONVERGE: Duration = Duration::from_secs(60);

/// What a `nexpoint` run answered.
struct Answer {
    code: Option<i32>,
    out: String,
    err: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.out, self.err))
    }

    /// Asserts the exit status, showing the output when it differs.
    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "stdout: {}\nstderr: {}",
            self.out,
            self.err
        );
        self
    }
}

/// `nexpoint ARGS` on the control plane's data directory (and database).
async fn nexpoint(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> Answer {
    let mut command = tokio::process::Command::new(nexpoint_bin());
    command
        .args(args)
        .arg("--data-dir")
        .arg(cp.data_dir())
        .env("NO_COLOR", "1")
        .env_remove("NEXPOINT_PUBLIC_URL")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = &cp.options.database_url {
        command.arg("--database-url").arg(url);
    }
    let mut child = command.spawn().unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = child.wait_with_output().await.unwrap();
    Answer {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_created_from_the_cli_are_the_apis_users() {
    let hook = WebhookReceiver::start().await.unwrap();
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        extra_args: vec!["--webhook-address".into(), hook.url.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    // A node's address becomes a host of every inbound: links to render.
    cp.create_node("edge", free_port()).await.unwrap();
    let created = nexpoint(
        &cp,
        &[
            "user",
            "create",
            "alice",
            "--proxy",
            "vless",
            "--proxy",
            "trojan",
            "--data-limit",
            "10GB",
            "--expire",
            "30",
            "--data-limit-reset-strategy",
            "month",
            "--note",
            "from the cli",
            "--json",
        ],
        None,
    )
    .await
    .expect(0)
    .json();
    assert_eq!(created["data_limit"], 10_i64 << 30);
    assert_eq!(created["data_limit_reset_strategy"], "month");
    assert_eq!(created["status"], "active");
    let in_30_days = created["expire"].as_i64().unwrap() - now();
    assert!(
        (30 * 86_400 - 60..=30 * 86_400).contains(&in_30_days),
        "{created}"
    );
    let vless_id = created["proxies"]["vless"]["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(vless_id).is_ok(), "{created}");
    assert!(created["proxies"]["trojan"]["password"].is_string());
    assert!(
        !created["links"].as_array().unwrap().is_empty(),
        "{created}"
    );

    // The API serves the same user, and the notification went out with it.
    let via_api = cp.get_user("alice").await.unwrap();
    for field in ["proxies", "data_limit", "expire", "note"] {
        assert_eq!(via_api[field], created[field], "{field}");
    }
    // Subscription tokens carry the second they were issued, so the two
    // URLs may differ: both must open alice's subscription.
    for user in [&created, &via_api] {
        let url = user["subscription_url"].as_str().unwrap();
        assert_eq!(cp.subscription_owner(url).await.unwrap(), "alice", "{url}");
    }
    wait_until(CONVERGE, "the user_created webhook", || async {
        let items = hook.unique_items();
        ensure!(
            items
                .iter()
                .any(|i| i["action"] == "user_created" && i["username"] == "alice"),
            "{items:?}"
        );
        Ok(())
    })
    .await
    .unwrap();

    // The table shows the user and its subscription.
    let table = nexpoint(&cp, &["user", "create", "bob", "--proxy", "vmess"], None)
        .await
        .expect(0);
    assert!(table.out.starts_with("USERNAME"), "{}", table.out);
    assert!(table.out.contains("bob"), "{}", table.out);
    assert!(table.out.contains("subscription: /sub/"), "{}", table.out);

    // The API's body, from stdin, with the name from the command line.
    let body = json!({"proxies": {"shadowsocks": {}}, "status": "on_hold",
        "on_hold_expire_duration": 86_400, "data_limit": 0});
    let carol = nexpoint(
        &cp,
        &["user", "create", "carol", "--json-body", "-", "--json"],
        Some(&body.to_string()),
    )
    .await
    .expect(0)
    .json();
    assert_eq!(carol["status"], "on_hold");
    assert_eq!(carol["on_hold_expire_duration"], 86_400);

    let taken = nexpoint(&cp, &["user", "create", "ALICE", "--proxy", "vmess"], None)
        .await
        .expect(4);
    assert!(taken.err.contains("already exists"), "{}", taken.err);
    for (args, names) in [
        (&["user", "create", "dave"][..], "--proxy"),
        (
            &[
                "user",
                "create",
                "dave",
                "--proxy",
                "vmess",
                "--data-limit",
                "10XB",
            ],
            "--data-limit",
        ),
        (
            &[
                "user", "create", "dave", "--proxy", "vmess", "--expire", "someday",
            ],
            "--expire",
        ),
        (
            &[
                "user", "create", "dave", "--proxy", "vmess", "--status", "on_hold",
            ],
            "on_hold_expire_duration",
        ),
        (&["user", "create", "d", "--proxy", "vmess"], "USERNAME"),
        (&["user", "create", "dave", "--proxy", "http"], "--proxy"),
        (
            &[
                "user",
                "create",
                "dave",
                "--proxy",
                "vmess",
                "--json-body",
                "-",
            ],
            "--json-body",
        ),
    ] {
        let refused = nexpoint(&cp, args, None).await.expect(2);
        assert!(refused.err.contains(names), "{args:?}: {}", refused.err);
    }
    let wrong_type = nexpoint(
        &cp,
        &["user", "create", "--json-body", "-"],
        Some(r#"{"username": "dave", "proxies": {"vmess": {}}, "data_limit": "lots"}"#),
    )
    .await
    .expect(2);
    assert!(wrong_type.err.contains("data_limit"), "{}", wrong_type.err);
    let mismatch = nexpoint(
        &cp,
        &["user", "create", "erin", "--json-body", "-"],
        Some(r#"{"username": "dave", "proxies": {"vmess": {}}}"#),
    )
    .await
    .expect(2);
    assert!(mismatch.err.contains("differs"), "{}", mismatch.err);
    nexpoint(
        &cp,
        &[
            "user", "create", "dave", "--proxy", "vmess", "--owner", "ghost",
        ],
        None,
    )
    .await
    .expect(3);
    let users = nexpoint(&cp, &["user", "list", "--json"], None)
        .await
        .expect(0)
        .json();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        3,
        "refused creations stored nothing: {names:?}"
    );

    // set-owner.
    let admin = std::process::Command::new(nexpoint_bin())
        .args(["admin", "create", "--username", "reseller", "--data-dir"])
        .arg(cp.data_dir())
        .env("NEXPOINT_ADMIN_PASSWORD", "pw-123456")
        .output()
        .unwrap();
    assert!(admin.status.success(), "{admin:?}");
    let owned = nexpoint(
        &cp,
        &["user", "set-owner", "alice", "reseller", "--json"],
        None,
    )
    .await
    .expect(0)
    .json();
    assert_eq!(owned["admin"]["username"], "reseller");
    assert_eq!(
        cp.get_user("alice").await.unwrap()["admin"]["username"],
        "reseller"
    );
    let said = nexpoint(&cp, &["user", "set-owner", "bob", "reseller"], None)
        .await
        .expect(0);
    assert_eq!(said.out.trim(), "user bob now belongs to admin reseller");
    let no_user = nexpoint(&cp, &["user", "set-owner", "ghost", "reseller"], None)
        .await
        .expect(3);
    assert!(no_user.err.contains("User not found"), "{}", no_user.err);
    let no_admin = nexpoint(&cp, &["user", "set-owner", "alice", "ghost"], None)
        .await
        .expect(3);
    assert!(no_admin.err.contains("Admin not found"), "{}", no_admin.err);

    // --owner at creation.
    let owned = nexpoint(
        &cp,
        &[
            "user", "create", "frank", "--proxy", "vmess", "--owner", "reseller", "--json",
        ],
        None,
    )
    .await
    .expect(0)
    .json();
    assert_eq!(owned["admin"]["username"], "reseller");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_config_prints_what_the_subscription_endpoint_serves() {
    let cp = ControlPlane::start().await.unwrap();
    // A node's address becomes a host of every inbound: endpoints to render.
    cp.create_node("edge", free_port()).await.unwrap();
    let user = cp
        .create_simple_user("alice", &["vmess", "vless", "trojan", "shadowsocks"])
        .await
        .unwrap();
    cp.create_simple_user("bob", &["vmess"]).await.unwrap();
    let url = user["subscription_url"].as_str().unwrap();
    for format in [
        "v2ray",
        "v2ray-json",
        "clash",
        "clash-meta",
        "sing-box",
        "outline",
    ] {
        let printed = nexpoint(
            &cp,
            &["subscription", "get-config", "alice", "--format", format],
            None,
        )
        .await
        .expect(0);
        let served = cp
            .fetch_subscription(&format!("{url}/{format}"))
            .await
            .unwrap();
        assert_eq!(printed.out.trim_end(), served.trim_end(), "{format}");
        assert!(!served.trim().is_empty(), "{format}");
    }

    let unknown = nexpoint(
        &cp,
        &["subscription", "get-config", "alice", "--format", "yaml"],
        None,
    )
    .await
    .expect(2);
    assert!(
        unknown
            .err
            .contains("one of: v2ray, v2ray-json, clash, clash-meta, sing-box, outline"),
        "{}",
        unknown.err
    );
    nexpoint(
        &cp,
        &["subscription", "get-config", "ghost", "--format", "v2ray"],
        None,
    )
    .await
    .expect(3);
    let no_key = nexpoint(
        &cp,
        &["subscription", "get-config", "bob", "--format", "outline"],
        None,
    )
    .await
    .expect(3);
    assert!(no_key.err.contains("Shadowsocks"), "{}", no_key.err);
}

/// Waits for the control plane's log line saying it acted on node `id`.
async fn wait_for_log(cp: &mut ControlPlane, id: i64, what: &str) {
    let node = format!("node={id}");
    cp.process
        .wait_for_line(Some(Stream::Stderr), CONVERGE, |l| {
            l.contains(what) && l.contains(&node)
        })
        .await
        .unwrap();
}

fn fingerprint_of(path: &Path) -> String {
    nexpoint_certs::fingerprint_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// On PostgreSQL: the other backend than the SQLite of the tests above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_added_rotated_and_removed_from_the_cli_reach_the_running_daemon() {
    let db = TestDatabase::create().await.unwrap();
    let mut cp = ControlPlane::start_with(ControlPlaneOptions {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let agent_port = free_port();
    let port = agent_port.to_string();
    let added = nexpoint(
        &cp,
        &[
            "node",
            "add",
            "edge",
            "--address",
            "127.0.0.1",
            "--port",
            &port,
            "--public-url",
            &cp.base_url,
            "--json",
        ],
        None,
    )
    .await
    .expect(0)
    .json();
    let id = added["id"].as_i64().unwrap();
    let token = added["enrollment_token"].as_str().unwrap().to_owned();
    let command = added["enrollment_command"].as_str().unwrap().to_owned();
    assert!(
        command.contains(&format!("--control-plane {} --token {token}", cp.base_url)),
        "{command}"
    );
    let fingerprint =
        nexpoint_tests::control_plane::flag_value(&command, "--ca-fingerprint").unwrap();

    // The daemon found the node in the database and waits for it.
    wait_for_log(&mut cp, id, "node without a task").await;
    wait_until(CONVERGE, "the node task to wait for enrollment", || async {
        let node = cp.node(id).await?;
        ensure!(node["message"] == "waiting for enrollment", "{node}");
        Ok(())
    })
    .await
    .unwrap();

    let duplicate = nexpoint(
        &cp,
        &["node", "add", "EDGE", "--address", "127.0.0.1"],
        None,
    )
    .await
    .expect(4);
    assert!(
        duplicate.err.contains("already exists"),
        "{}",
        duplicate.err
    );
    let bad_port = nexpoint(
        &cp,
        &[
            "node",
            "add",
            "other",
            "--address",
            "127.0.0.1",
            "--port",
            "0",
        ],
        None,
    )
    .await
    .expect(2);
    assert!(bad_port.err.contains("--port"), "{}", bad_port.err);
    let human = nexpoint(
        &cp,
        &["node", "add", "spare", "--address", "127.0.0.1"],
        None,
    )
    .await
    .expect(0);
    let last = human.out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("nexpoint-node enroll --control-plane http://"),
        "{}",
        human.out
    );

    // A real agent enrolls with the printed token and connects.
    let state_dir = tempfile::tempdir().unwrap();
    let (status, output) = enroll(&cp.base_url, &token, &fingerprint, state_dir.path())
        .await
        .unwrap();
    assert!(status.success(), "{output}");
    let created = CreatedNode {
        id,
        name: "edge".into(),
        enrollment_token: token,
        ca_fingerprint: fingerprint,
        enrollment_command: command,
        json: added,
    };
    let mut node = Node::start_enrolled(created, state_dir, agent_port, &v2ray_bin())
        .await
        .unwrap();
    node.wait_connected(&cp, CONVERGE).await.unwrap();

    // A rotation asked for from the CLI, carried out by the daemon.
    let cert = node.state_dir.path().join("node.pem");
    let old = fingerprint_of(&cert);
    nexpoint(&cp, &["certs", "rotate", "ghost"], None)
        .await
        .expect(3);
    nexpoint(&cp, &["certs", "rotate"], None).await.expect(2);
    let not_enrolled = nexpoint(&cp, &["certs", "rotate", "spare"], None)
        .await
        .expect(1);
    assert!(
        not_enrolled.err.contains("not enrolled"),
        "{}",
        not_enrolled.err
    );
    let rotated = nexpoint(&cp, &["certs", "rotate", "edge", "--wait", "--json"], None)
        .await
        .expect(0)
        .json();
    assert_eq!(rotated[0]["node"], "edge");
    assert_eq!(rotated[0]["rotated"], true);
    let new = rotated[0]["fingerprint"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(fingerprint_of(&cert), new, "the agent serves the new one");
    let after = cp.node(id).await.unwrap();
    assert_eq!(after["certificate_fingerprint"], new.as_str());
    assert_eq!(after["status"], "connected", "{after}");
    // The request is spent: the next one rotates again (here, every node).
    let all = nexpoint(&cp, &["certs", "rotate", "--all"], None)
        .await
        .expect(0);
    assert!(
        all.out.contains("edge") && all.out.contains("requested"),
        "{}",
        all.out
    );
    assert!(!all.out.contains("spare"), "{}", all.out);
    wait_until(CONVERGE, "the second rotation", || async {
        let n = cp.node(id).await?;
        if n["certificate_fingerprint"] != new.as_str() && n["status"] == "connected" {
            Ok(())
        } else {
            bail!("{n}")
        }
    })
    .await
    .unwrap();
    node.wait_connected(&cp, CONVERGE).await.unwrap();

    // Removed from the CLI: the daemon drops its task.
    nexpoint(&cp, &["node", "remove", "edge"], None)
        .await
        .expect(0);
    wait_for_log(&mut cp, id, "stopping its task").await;
    assert!(
        cp.nodes()
            .await
            .unwrap()
            .iter()
            .all(|n| n["id"].as_i64() != Some(id))
    );
    nexpoint(&cp, &["node", "remove", "edge"], None)
        .await
        .expect(3);

    node.stop_agent().await.unwrap();
    cp.stop().await.unwrap();
    db.drop_database().await.unwrap();
}
