//! Eight concurrent writers against the embedded SQLite database for a
//! minute (NEXPOINT_WRITERS_SECS to change): no client ever sees
//! "database is locked" or any other server error.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{App, TestDb, app};
use nexpoint::store::{NewNode, UsageBatch, UserUsageDelta};
use serde_json::json;

const WRITERS: usize = 8;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, what: &str, status: StatusCode, body: &serde_json::Value) {
        if status.is_success() {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failures
                .lock()
                .unwrap()
                .push(format!("{what}: {status} {body}"));
        }
    }
}

/// Creates users, reads them back and deletes every other one.
async fn user_churn(
    app: Arc<App>,
    token: String,
    writer: usize,
    until: Instant,
    tally: Arc<Tally>,
) {
    let mut n = 0;
    while Instant::now() < until {
        let name = format!("w{writer}u{n}");
        let (s, b) = app
            .json(
                "POST",
                "/api/user",
                Some(&token),
                Some(json!({"username": name, "proxies": {"vless": {}}, "note": "load"})),
            )
            .await;
        tally.record("create", s, &b);
        let (s, b) = app
            .json("GET", &format!("/api/user/{name}"), Some(&token), None)
            .await;
        tally.record("get", s, &b);
        if n % 2 == 1 {
            let (s, b) = app
                .json("DELETE", &format!("/api/user/{name}"), Some(&token), None)
                .await;
            tally.record("delete", s, &b);
        }
        let (s, b) = app
            .json(
                "GET",
                "/api/users?limit=20&sort=-created_at&search=load",
                Some(&token),
                None,
            )
            .await;
        tally.record("list", s, &b);
        n += 1;
    }
}

/// Node ingestion: usage batches for the users that exist, as node tasks do.
async fn usage_writer(app: Arc<App>, node_id: i64, until: Instant, tally: Arc<Tally>) {
    let mut sequence = 0;
    while Instant::now() < until {
        let ids: Vec<i64> = (1..=200).collect();
        let batch = UsageBatch {
            node_id,
            after_sequence: sequence,
            last_sequence: sequence + 1,
            coefficient: 1.0,
            deltas: ids
                .iter()
                .map(|id| UserUsageDelta {
                    user_id: *id,
                    uplink: 10,
                    downlink: 20,
                    recorded_at: nexpoint::store::now(),
                })
                .collect(),
        };
        match app.store.apply_usage(&batch).await {
            Ok(_) => {
                sequence += 1;
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.failures.lock().unwrap().push(format!("usage: {e}")),
        }
    }
}

/// Replaces the core config template back and forth (a transaction that
/// reads before it writes).
async fn config_writer(app: Arc<App>, token: String, until: Instant, tally: Arc<Tally>) {
    let mut config: serde_json::Value =
        serde_json::from_str(nexpoint::domain::inbounds::DEFAULT_CORE_CONFIG).unwrap();
    let mut n = 0u32;
    while Instant::now() < until {
        config["log"]["loglevel"] = json!(if n.is_multiple_of(2) {
            "info"
        } else {
            "warning"
        });
        let (s, b) = app
            .json(
                "PUT",
                "/api/core/config",
                Some(&token),
                Some(config.clone()),
            )
            .await;
        tally.record("core config", s, &b);
        n += 1;
    }
}

/// Bulk status changes of one admin's users, as the admin endpoints do.
async fn bulk_writer(app: Arc<App>, token: String, until: Instant, tally: Arc<Tally>) {
    let mut disable = true;
    while Instant::now() < until {
        let action = if disable { "disable" } else { "activate" };
        let (s, b) = app
            .json(
                "POST",
                &format!("/api/admin/root/users/{action}"),
                Some(&token),
                None,
            )
            .await;
        tally.record(action, s, &b);
        disable = !disable;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_never_see_a_locked_database() {
    let secs: u64 = std::env::var("NEXPOINT_WRITERS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let db = TestDb::sqlite().await;
    let app = Arc::new(app(&db).await);
    let token = app.token("root").await;
    let node = app
        .store
        .create_node(
            NewNode {
                name: "load".into(),
                address: "127.0.0.1".into(),
                port: 1,
                api_port: 1,
                usage_coefficient: 1.0,
            },
            "load-token",
            0,
            &[],
        )
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(secs);
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for writer in 0..WRITERS - 3 {
        tasks.push(tokio::spawn(user_churn(
            app.clone(),
            token.clone(),
            writer,
            until,
            tally.clone(),
        )));
    }
    tasks.push(tokio::spawn(usage_writer(
        app.clone(),
        node.id,
        until,
        tally.clone(),
    )));
    tasks.push(tokio::spawn(bulk_writer(
        app.clone(),
        token.clone(),
        until,
        tally.clone(),
    )));
    tasks.push(tokio::spawn(config_writer(
        app.clone(),
        token.clone(),
        until,
        tally.clone(),
    )));
    for t in tasks {
        t.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    let ok = tally.ok.load(Ordering::Relaxed);
    eprintln!("{ok} operations succeeded in {secs} s with {WRITERS} writers");
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 100, "the writers made almost no progress: {ok}");
    db.finish().await;
}
