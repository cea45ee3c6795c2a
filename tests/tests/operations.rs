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
    cp.terminate(Duration::from_secs(30)).await.unwrap();
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
