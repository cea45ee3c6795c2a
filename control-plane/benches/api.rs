//! API speed with a large user base, on SQLite and PostgreSQL.
//!
//! `cargo bench -p nexpoint --bench api` (users: NEXPOINT_BENCH_USERS,
//! default 100,000; PostgreSQL: NEXPOINT_TEST_POSTGRES_URL). Creates the users
//! through the store in bulk, gives them usage through the real ingestion path,
//! then drives the real router over loopback HTTP with one keep-alive client.

use std::time::{Duration, Instant};

use nexpoint::api::hash_password;
use nexpoint::domain::{Proxies, ResetStrategy, UserStatus};
use nexpoint::store::{NewAdmin, NewNode, NewUser, Store, UsageBatch, UserUsageDelta};

mod common;
use common::{Target, percentile, postgres, sqlite};

async fn latency(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    n: usize,
) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let res = client.get(url).bearer_auth(token).send().await.unwrap();
        assert!(res.status().is_success(), "{url}: {}", res.status());
        res.bytes().await.unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run(target: Target, users: usize) {
    let store = Store::connect(&target.url).await.unwrap();
    store
        .set_core_config(nexpoint::domain::inbounds::DEFAULT_CORE_CONFIG)
        .await
        .unwrap();
    let admin = store
        .create_admin(NewAdmin {
            username: "bench",
            hashed_password: &hash_password("pw").unwrap(),
            is_sudo: true,
        })
        .await
        .unwrap();

    let start = Instant::now();
    let batch: Vec<NewUser> = (0..users)
        .map(|i| {
            let mut proxies: Proxies = serde_json::from_str(r#"{"vless": {}}"#).unwrap();
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
                admin_id: Some(admin.id),
                on_hold_expire_duration: None,
                on_hold_timeout: None,
                auto_delete_in_days: None,
            }
        })
        .collect();
    for chunk in batch.chunks(10_000) {
        store.create_users_bulk(chunk).await.unwrap();
    }
    let created = start.elapsed();

    let node = store
        .create_node(
            NewNode {
                name: "bench".into(),
                address: "127.0.0.1".into(),
                port: 1,
                api_port: 1,
                usage_coefficient: 1.0,
            },
            "bench-token",
            0,
            &[],
        )
        .await
        .unwrap();
    let start = Instant::now();
    let deltas = (1..=users as i64)
        .map(|id| UserUsageDelta {
            user_id: id,
            uplink: (id * 7919) % 100_000,
            downlink: (id * 104_729) % 10_000_000,
            recorded_at: 1_800_000_000,
        })
        .collect();
    store
        .apply_usage(&UsageBatch {
            node_id: node.id,
            after_sequence: 0,
            last_sequence: 1,
            coefficient: 1.0,
            deltas,
        })
        .await
        .unwrap();
    // As the usage-history job does after ingestion: the list sorts on it.
    store.refresh_usage_order().await.unwrap();
    let usage = start.elapsed();

    let api = common::serve_api(&store).await;
    let (base, client, token) = (api.base.clone(), api.client.clone(), api.token.clone());

    let sorted = latency(
        &client,
        &format!("{base}/api/users?offset=0&limit=50&sort=-used_traffic"),
        &token,
        300,
    )
    .await;
    let search = latency(
        &client,
        &format!("{base}/api/users?offset=0&limit=50&sort=-used_traffic&search=customer%20%2399"),
        &token,
        300,
    )
    .await;
    // A username fragment, the usual search: few rows share its trigrams.
    let by_name = latency(
        &client,
        &format!("{base}/api/users?offset=0&limit=50&sort=-used_traffic&search=user0999"),
        &token,
        300,
    )
    .await;
    println!("{} with {users} users:", target.name);
    println!(
        "  bulk create through the store: {:.1} s; one usage batch for all: {:.1} s",
        created.as_secs_f64(),
        usage.as_secs_f64()
    );
    println!(
        "  GET /api/users?limit=50&sort=-used_traffic   p50 {}  p99 {}",
        ms(sorted.0),
        ms(sorted.1)
    );
    println!(
        "  GET /api/users ... &search=customer #99      p50 {}  p99 {}",
        ms(search.0),
        ms(search.1)
    );
    println!(
        "  GET /api/users ... &search=user0999         p50 {}  p99 {}",
        ms(by_name.0),
        ms(by_name.1)
    );
    let system = latency(&client, &format!("{base}/api/system"), &token, 300).await;

    // Baseline: an authenticated request that touches one row, to tell the
    // HTTP and authentication cost apart from the write path's.
    let start = Instant::now();
    for _ in 0..2_000 {
        let res = client
            .get(format!("{base}/api/admin"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        res.bytes().await.unwrap();
    }
    let baseline_rate = 2_000.0 / start.elapsed().as_secs_f64();
    println!("  GET /api/admin sequential (baseline):        {baseline_rate:.0} requests/s");

    // The store alone, to tell the database's share of a create apart.
    let start = Instant::now();
    for i in 0..1_000 {
        let mut proxies: Proxies = serde_json::from_str(r#"{"vmess": {}}"#).unwrap();
        proxies.fill_missing_credentials();
        store
            .create_user(NewUser {
                username: format!("direct{i:05}"),
                status: UserStatus::Active,
                proxies,
                excluded_inbounds: Default::default(),
                data_limit: None,
                data_limit_reset_strategy: ResetStrategy::NoReset,
                expire: None,
                note: None,
                admin_id: Some(admin.id),
                on_hold_expire_duration: None,
                on_hold_timeout: None,
                auto_delete_in_days: None,
            })
            .await
            .unwrap();
    }
    let direct_rate = 1_000.0 / start.elapsed().as_secs_f64();
    println!("  store.create_user sequential (no HTTP):      {direct_rate:.0} users/s");

    let creates = 2_000;
    let start = Instant::now();
    for i in 0..creates {
        let res = client
            .post(format!("{base}/api/user"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"username": format!("new{i:05}"), "proxies": {"vmess": {}}}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "create: {}", res.status());
        res.bytes().await.unwrap();
    }
    let create_rate = creates as f64 / start.elapsed().as_secs_f64();

    println!(
        "  GET /api/system                              p50 {}  p99 {}",
        ms(system.0),
        ms(system.1)
    );
    println!("  POST /api/user sequential, one connection:   {create_rate:.0} users/s");

    drop(api);
    store.close().await;
    target.drop_database().await;
}

fn main() {
    let users: usize = std::env::var("NEXPOINT_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    // NEXPOINT_BENCH_BACKENDS=sqlite (or postgres) runs just one.
    let only = std::env::var("NEXPOINT_BENCH_BACKENDS").unwrap_or_default();
    runtime.block_on(async {
        if only.is_empty() || only.contains("sqlite") {
            run(sqlite().await, users).await;
        }
        if only.is_empty() || only.contains("postgres") {
            run(postgres().await, users).await;
        }
    });
}
