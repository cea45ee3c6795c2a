//! What operators rely on: the probes, `/metrics` on both daemons (who may
//! read it, and that it parses and tells the truth), JSON logs with request
//! spans named by route, readiness sent to systemd only once the port
//! answers, secrets from files, and the shipped systemd units.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use nexpoint_tests::control_plane::{ControlPlane, ControlPlaneOptions};
use nexpoint_tests::node::Node;
use nexpoint_tests::paths::{nexpoint_bin, node_bin, repo_root, v2ray_bin};
use nexpoint_tests::process::{ChildProcess, Stream};
use nexpoint_tests::prometheus::{self, Sample, value};
use nexpoint_tests::wait_until;
use reqwest::StatusCode;
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(60);

async fn scrape(url: &str, token: Option<&str>) -> anyhow::Result<(StatusCode, String)> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut req = client.get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await?;
    Ok((res.status(), res.text().await?))
}

async fn samples(url: &str) -> anyhow::Result<Vec<Sample>> {
    let (status, body) = scrape(url, None).await?;
    ensure!(status == StatusCode::OK, "{url}: {status} {body}");
    prometheus::parse(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probes_and_metrics_of_both_daemons_tell_the_truth() {
    let cp = ControlPlane::start().await.unwrap();
    let anon = &cp.anonymous;
    let health = anon.get(cp.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    let ready = anon.get(cp.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    cp.create_simple_user("alice", &["vmess"]).await.unwrap();
    cp.create_simple_user("bob", &["vless"]).await.unwrap();
    cp.get_user("alice").await.unwrap();
    let node = Node::start(&cp, "n1", &v2ray_bin()).await.unwrap();
    node.wait_connected(&cp, CONVERGE).await.unwrap();

    let metrics_url = cp.url("/metrics");
    // The node has applied the latest revision once its lag reads 0.
    let s = wait_until(CONVERGE, "node n1 at revision lag 0", || async {
        let s = samples(&metrics_url).await?;
        ensure!(value(&s, "nexpoint_node_revision_lag", &[("node", "n1")]) == Some(0.0));
        Ok(s)
    })
    .await
    .unwrap();
    assert_eq!(
        value(&s, "nexpoint_users", &[("status", "active")]),
        Some(2.0)
    );
    assert_eq!(
        value(&s, "nexpoint_users", &[("status", "disabled")]),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "nexpoint_nodes", &[("status", "connected")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "nexpoint_node_core_restarts", &[("node", "n1")]),
        Some(0.0)
    );
    // Latency by the matched route, never by the raw path.
    let routes: Vec<&str> = s
        .iter()
        .filter(|x| x.name == "nexpoint_http_request_duration_seconds_count")
        .map(|x| x.labels["route"].as_str())
        .collect();
    assert!(routes.contains(&"/api/user/{username}"), "{routes:?}");
    assert!(routes.contains(&"/api/admin/token"), "{routes:?}");
    assert!(!routes.iter().any(|r| r.contains("alice")), "{routes:?}");
    for family in [
        "nexpoint_usage_batch_users_count",
        "nexpoint_usage_ingest_lag_seconds_count",
        "nexpoint_usage_commit_seconds_count",
    ] {
        assert!(value(&s, family, &[]).is_some(), "{family} missing");
    }
    // Every periodic job shows up with its runs and failures.
    let jobs: Value = cp
        .http
        .get(cp.url("/api/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jobs = jobs["jobs"].as_array().unwrap();
    assert!(!jobs.is_empty());
    for job in jobs {
        let name = job["name"].as_str().unwrap();
        assert!(
            value(&s, "nexpoint_job_failures_total", &[("job", name)]).is_some(),
            "job {name} missing from /metrics"
        );
    }

    let agent = samples(&node.metrics_url().unwrap()).await.unwrap();
    assert_eq!(value(&agent, "nexpoint_node_core_up", &[]), Some(1.0));
    assert_eq!(
        value(&agent, "nexpoint_node_core_restarts_total", &[]),
        Some(0.0)
    );
    assert!(value(&agent, "nexpoint_node_core_uptime_seconds", &[]).unwrap() >= 0.0);
    assert!(value(&agent, "nexpoint_node_journal_entries", &[]).is_some());
    assert!(value(&agent, "nexpoint_node_applied_revision", &[]).unwrap() >= 1.0);
    let calls: Vec<&str> = agent
        .iter()
        .filter(|x| x.name == "nexpoint_node_grpc_request_duration_seconds_count")
        .map(|x| x.labels["method"].as_str())
        .collect();
    assert!(calls.iter().any(|m| m.ends_with("/Health")), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_from_a_secret_file_guards_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        extra_env: vec![(
            "NEXPOINT_METRICS_TOKEN_FILE".into(),
            token_file.display().to_string(),
        )],
        ..Default::default()
    })
    .await
    .unwrap();
    let url = cp.url("/metrics");
    assert_eq!(scrape(&url, None).await.unwrap().0, StatusCode::FORBIDDEN);
    assert_eq!(
        scrape(&url, Some("wrong")).await.unwrap().0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = scrape(&url, Some("s3cret-token")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    prometheus::parse(&body).unwrap();
}

/// `nexpoint serve` as systemd runs it: READY=1 on $NOTIFY_SOCKET only once
/// the port answers, JSON logs whose request events carry their route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reaches_systemd_after_the_port_answers_and_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let stopping = socket.try_clone().unwrap();
    stopping
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let data_dir = dir.path().join("data");
    let mut cp = ChildProcess::spawn(
        "nexpoint",
        nexpoint_bin(),
        [
            "serve",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("NEXPOINT_LOG", "info,nexpoint::metrics=debug"),
        ],
    )
    .unwrap();
    let received = tokio::task::spawn_blocking(move || {
        socket.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf)?;
        anyhow::Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await
    .unwrap()
    .context("no datagram on NOTIFY_SOCKET")
    .unwrap();
    assert_eq!(received, "READY=1");
    let line = cp
        .wait_for_line(Some(Stream::Stdout), Duration::from_secs(5), |l| {
            l.starts_with("listening on ")
        })
        .await
        .unwrap();
    let base = line["listening on ".len()..].trim().to_owned();
    // Ready was promised: the first request must succeed, no retrying.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    let event = cp
        .wait_for_line(Some(Stream::Stderr), Duration::from_secs(10), |l| {
            l.contains("\"served\"")
        })
        .await
        .unwrap();
    let event: Value = serde_json::from_str(&event).expect("log lines are JSON objects");
    assert_eq!(event["span"]["route"], "/ready", "{event}");
    assert_eq!(event["span"]["name"], "http_request", "{event}");
    assert_eq!(event["fields"]["status"], 200, "{event}");

    // SIGTERM: STOPPING=1 to systemd, an orderly stop, status 0.
    let status = cp.terminate(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status}\n{}", cp.tail(20));
    assert!(cp.output_text().contains("\"stopped\""), "{}", cp.tail(20));
    let mut buf = [0u8; 64];
    let n = stopping
        .recv(&mut buf)
        .expect("STOPPING=1 on NOTIFY_SOCKET");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

/// The shipped units pass `systemd-analyze verify` with their binaries'
/// paths pointing at the real ones.
#[test]
fn systemd_units_verify() {
    let analyze = tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for (unit, bin) in [
        ("nexpoint.service", nexpoint_bin()),
        ("nexpoint-node.service", node_bin()),
    ] {
        let text = std::fs::read_to_string(repo_root().join("systemd").join(unit)).unwrap();
        let installed = format!("/usr/local/bin/{} ", unit.trim_end_matches(".service"));
        assert!(text.contains(&installed), "{unit} runs {installed}");
        let text = text.replace(&installed, &format!("{} ", bin.display()));
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // It reports ignored settings on stderr yet exits 0: any remark about
    // our files is a failure.
    let remarks: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(dir.path().to_str().unwrap()))
        .collect();
    assert!(remarks.is_empty(), "{remarks:#?}");
    for unit in &units {
        let text = std::fs::read_to_string(unit).unwrap();
        for setting in [
            "Type=notify",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "StateDirectory=",
            "Restart=on-failure",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        ] {
            assert!(text.contains(setting), "{}: {setting}", unit.display());
        }
    }
}

/// `name` on PATH; its absence fails the test (the installer provides it).
fn tool(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| Path::new(p).is_file())
        })
        .unwrap_or_else(|| panic!("{name} is missing: run scripts/install-test-tools.sh"))
}

/// The CLI beside a running control plane: the same subscription link as
/// the API, the CA it pins nodes with, and a node removed for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_beside_a_running_control_plane() {
    let cp = ControlPlane::start().await.unwrap();
    let user = cp.create_simple_user("carol", &["vless"]).await.unwrap();
    let created = cp
        .create_node("spare", nexpoint_tests::free_port())
        .await
        .unwrap();
    let data_dir = cp.data_dir();
    let nexpoint = |args: &[&str]| {
        let out = std::process::Command::new(nexpoint_bin())
            .args(args)
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, link) = nexpoint(&[
        "subscription",
        "get-link",
        "carol",
        "--public-url",
        "https://panel.example",
    ]);
    assert_eq!(code, Some(0), "{link}");
    // Tokens carry the second they were issued (as Marzban's do), so the
    // API's and the CLI's may differ: both must open the same user's
    // subscription on the running control plane.
    let link = link.trim();
    assert!(link.starts_with("https://panel.example/sub/"), "{link}");
    for url in [link, user["subscription_url"].as_str().unwrap()] {
        assert_eq!(cp.subscription_owner(url).await.unwrap(), "carol", "{url}");
    }
    let (code, _) = nexpoint(&["subscription", "get-link", "nobody"]);
    assert_eq!(code, Some(3));

    let (code, out) = nexpoint(&["certs", "show", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let certs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(certs[0]["subject"], "ca");
    assert_eq!(certs[0]["fingerprint"], created.ca_fingerprint.as_str());

    let (code, out) = nexpoint(&["node", "remove", "spare"]);
    assert_eq!(code, Some(0), "{out}");
    let nodes = cp.nodes().await.unwrap();
    assert!(nodes.iter().all(|n| n["name"] != "spare"), "{nodes:?}");
    let (code, _) = nexpoint(&["node", "remove", "spare"]);
    assert_eq!(code, Some(3));
}

/// The example settings files in docs/ are what the binaries generate from
/// their definitions, so the docs cannot drift.
#[test]
fn documented_example_settings_are_the_generated_ones() {
    for (bin, doc) in [
        (nexpoint_bin(), "docs/nexpoint.example.toml"),
        (node_bin(), "docs/nexpoint-node.example.toml"),
    ] {
        let out = std::process::Command::new(&bin)
            .args(["config", "example"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let generated = String::from_utf8(out.stdout).unwrap();
        let documented = std::fs::read_to_string(repo_root().join(doc)).unwrap();
        assert_eq!(
            documented,
            generated,
            "{doc} is stale: regenerate it with `{} config example > {doc}`",
            bin.file_name().unwrap().to_string_lossy()
        );
    }
}

/// defaults < file < environment: the file sets the listener, the
/// environment beats it on the token, and an unknown key is warned about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_file_sits_between_defaults_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nexpoint.toml");
    let data_dir = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmetrics_token = \"from-file\"\nlisten_typo = 1\n",
            data_dir.display().to_string()
        ),
    )
    .unwrap();
    let mut cp = ChildProcess::spawn(
        "nexpoint",
        nexpoint_bin(),
        ["serve", "--config", config.to_str().unwrap()],
        &[("NEXPOINT_METRICS_TOKEN", "from-env"), ("NO_COLOR", "1")],
    )
    .unwrap();
    let line = cp
        .wait_for_line(Some(Stream::Stdout), Duration::from_secs(60), |l| {
            l.starts_with("listening on ")
        })
        .await
        .unwrap();
    let base = line["listening on ".len()..].trim().to_owned();
    let url = format!("{base}/metrics");
    assert_eq!(
        scrape(&url, Some("from-env")).await.unwrap().0,
        StatusCode::OK
    );
    assert_eq!(
        scrape(&url, Some("from-file")).await.unwrap().0,
        StatusCode::FORBIDDEN
    );
    assert!(data_dir.join("nexpoint.db").exists());
    cp.wait_for_line(Some(Stream::Stderr), Duration::from_secs(5), |l| {
        l.contains("WARN") && l.contains("unknown setting \"listen_typo\"")
    })
    .await
    .unwrap();
    cp.terminate(Duration::from_secs(30)).await.unwrap();
}

/// `nexpoint-node check` passes on a working node and names what is wrong
/// on a broken one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_check_says_exactly_what_is_wrong() {
    let cp = ControlPlane::start().await.unwrap();
    let node = Node::start(&cp, "checked", &v2ray_bin()).await.unwrap();
    let check = |state: &Path, core: &Path| {
        let out = std::process::Command::new(node_bin())
            .arg("check")
            .arg("--state-dir")
            .arg(state)
            .arg("--core-bin")
            .arg(core)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let state = node.state_dir.path();
    let (code, out) = check(state, &v2ray_bin());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("enrolled as node"), "{out}");
    assert!(out.contains("days left"), "{out}");
    assert!(out.contains("is v2ray"), "{out}");

    let (code, out) = check(state, Path::new("/nonexistent/xray"));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error:") && out.contains("/nonexistent/xray"),
        "{out}"
    );

    // Another node's key beside this node's certificate.
    let broken = tempfile::tempdir().unwrap();
    for file in ["enrollment.json", "ca.pem", "node.pem", "control-plane.pem"] {
        std::fs::copy(state.join(file), broken.path().join(file)).unwrap();
    }
    let (other_key, _) = nexpoint_certs::node_key_and_csr("x").unwrap();
    std::fs::write(broken.path().join("node.key"), other_key).unwrap();
    let (code, out) = check(broken.path(), &v2ray_bin());
    assert_eq!(code, Some(1), "{out}");
    let key_path = broken.path().join("node.key");
    assert!(
        out.contains(&format!("{} does not belong to", key_path.display())),
        "{out}"
    );
}

/// The admin CLI: tables by default, JSON with --json, and the documented
/// exit statuses (3 not found, 4 already exists, 2 usage).
#[test]
fn the_cli_answers_scripts_with_json_and_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let nexpoint = |args: &[&str]| {
        let out = std::process::Command::new(nexpoint_bin())
            .args(args)
            .args(["--data-dir", data_dir])
            .env("NEXPOINT_ADMIN_PASSWORD", "pw-123456")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = nexpoint(&["admin", "create", "--username", "ops", "--sudo"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = nexpoint(&["admin", "create", "--username", "ops"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("already exists"), "{err}");

    let (code, out, _) = nexpoint(&["admin", "list", "--json"]);
    assert_eq!(code, Some(0));
    let admins: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(admins[0]["username"], "ops");
    assert_eq!(admins[0]["is_sudo"], true);
    let (_, table, _) = nexpoint(&["admin", "list"]);
    assert!(table.starts_with("USERNAME"), "{table}");

    let (code, _, err) = nexpoint(&["user", "get", "nobody"]);
    assert_eq!(code, Some(3), "{err}");
    let (code, out, _) = nexpoint(&["user", "list", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        Value::Array(vec![])
    );
    let (code, out, err) = nexpoint(&["admin", "update", "ops", "--sudo", "false"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "updated admin ops");
    let (code, _, _) = nexpoint(&["admin", "update", "ghost", "--sudo", "true"]);
    assert_eq!(code, Some(3));
    let (code, _, _) = nexpoint(&["admin", "delete", "ghost"]);
    assert_eq!(code, Some(3));
    let (code, out, _) = nexpoint(&["admin", "delete", "ops"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, _, _) = nexpoint(&["user", "frobnicate"]);
    assert_eq!(code, Some(2));

    let out = std::process::Command::new(nexpoint_bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_nexpoint()"));
}
