//! Usage ingestion at scale, on SQLite and PostgreSQL, and what it does to
//! API reads.
//!
//! `cargo bench -p nexpoint --bench ingest` (users: NEXPOINT_BENCH_USERS,
//! default 100,000; PostgreSQL: NEXPOINT_TEST_POSTGRES_URL;
//! NEXPOINT_BENCH_BACKENDS=sqlite or postgres runs just one;
//! NEXPOINT_BENCH_LOG=sqlx::query=debug logs every statement with its time;
//! NEXPOINT_BENCH_READER=0 ingests with no reader, to tell the reads' share
//! of the batch times apart).
//!
//! Requirement: one collection of every user's deltas from each of 10 nodes
//! applies in under 1 s per node's batch, without blocking API reads. Each
//! node's batch goes through the real ingestion path (`Store::apply_usage`),
//! node after node, while one keep-alive client reads
//! `GET /api/users?offset=0&limit=50&sort=-used_traffic` from the real router
//! over loopback HTTP in a loop. The same request is timed with nothing else
//! running for comparison, and the stored usage is checked against the deltas.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nexpoint::api::hash_password;
use nexpoint::domain::{Proxies, ResetStrategy, UserStatus};
use nexpoint::store::{
    NewAdmin, NewNode, NewUser, Store, UsageBatch, UserFilter, UserUsageDelta, now,
};

mod common;
use common::{Target, percentile, postgres, sqlite};

const NODES: usize = 10;
/// High enough that no user reaches it: 10 nodes send at most ~11 GB each.
const DATA_LIMIT: i64 = 1 << 50;
const READS_IDLE: usize = 300;
const LIST_PATH: &str = "/api/users?offset=0&limit=50&sort=-used_traffic";

/// The middle of an even count is the mean of the two middle values.
fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n.is_multiple_of(2) && n > 0 {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    } else {
        percentile(sorted, 0.5)
    }
}

/// A latency cell: "-" when no request was made.
fn lat(l: &Latency, d: Duration) -> String {
    if l.count == 0 { "-".into() } else { ms(d) }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Deterministic pseudo-random numbers (splitmix64): the same traffic on
/// every run and both backends.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform between `lo` and `hi` bytes: most users move little, a
    /// few move a lot, as in a real collection.
    fn bytes(&mut self, lo: f64, hi: f64) -> i64 {
        (lo * (hi / lo).powf(self.unit())) as i64
    }
}

/// Request latencies of one sequential keep-alive client.
#[derive(Default, Clone)]
struct Latency {
    times: Vec<Duration>,
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Latency {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        Self {
            count: times.len(),
            p50: percentile(&times, 0.5),
            p99: percentile(&times, 0.99),
            max: times.last().copied().unwrap_or_default(),
            times,
        }
    }
}

async fn get_once(client: &reqwest::Client, url: &str, token: &str) -> Duration {
    let start = Instant::now();
    let res = client.get(url).bearer_auth(token).send().await.unwrap();
    assert!(res.status().is_success(), "{url}: {}", res.status());
    res.bytes().await.unwrap();
    start.elapsed()
}

async fn idle_reads(client: &reqwest::Client, url: &str, token: &str) -> Latency {
    let mut times = Vec::with_capacity(READS_IDLE);
    for _ in 0..READS_IDLE {
        times.push(get_once(client, url, token).await);
    }
    Latency::of(times)
}

struct Report {
    backend: &'static str,
    users: usize,
    batches: Vec<Duration>,
    ingest_wall: Duration,
    idle_before: Latency,
    during: Latency,
    idle_after: Latency,
    status_changed: usize,
    limited: i64,
    checks: Vec<(String, bool)>,
}

async fn run(target: Target, users: usize, with_reader: bool) -> Report {
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
                data_limit: Some(DATA_LIMIT),
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
    drop(batch);
    eprintln!(
        "{}: created {users} users in {:.1} s",
        target.name,
        start.elapsed().as_secs_f64()
    );
    // Bulk creation on a fresh database numbers the users 1..=N in order.
    let first = store.user_by_username("user000000").await.unwrap().unwrap();
    let last = store
        .user_by_username(&format!("user{:06}", users - 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.id, last.id),
        (1, users as i64),
        "user ids are not 1..=N"
    );

    let mut nodes = Vec::with_capacity(NODES);
    for n in 0..NODES {
        let node = store
            .create_node(
                NewNode {
                    name: format!("node{n}"),
                    address: format!("127.0.0.{}", n + 1),
                    port: 1,
                    api_port: 1,
                    usage_coefficient: 1.0,
                },
                &format!("bench-token-{n}"),
                0,
                &[],
            )
            .await
            .unwrap();
        nodes.push(node);
    }

    // Every node's collection, built before the clock starts: one delta for
    // every user, varying byte counts, recorded now.
    let recorded_at = now();
    let mut rng = Rng(0x6E65_7870_6F69_6E74);
    let mut expected_user = vec![0i64; users + 1];
    let mut expected_node = Vec::with_capacity(NODES);
    let mut batches = Vec::with_capacity(NODES);
    for node in &nodes {
        // Continue from the node's stored sequence.
        let stored = store.node(node.id).await.unwrap();
        let deltas: Vec<UserUsageDelta> = (1..=users as i64)
            .map(|user_id| {
                let downlink = rng.bytes(1e3, 1e9);
                let uplink = (downlink as f64 * (0.02 + 0.2 * rng.unit())) as i64;
                UserUsageDelta {
                    user_id,
                    uplink,
                    downlink,
                    recorded_at,
                }
            })
            .collect();
        let (mut up, mut down) = (0i64, 0i64);
        for d in &deltas {
            expected_user[d.user_id as usize] += d.uplink + d.downlink;
            up += d.uplink;
            down += d.downlink;
        }
        expected_node.push((up, down));
        batches.push(UsageBatch {
            node_id: node.id,
            after_sequence: stored.usage_sequence,
            last_sequence: stored.usage_sequence + 1,
            coefficient: 1.0,
            deltas,
        });
    }

    let api = common::serve_api(&store).await;
    let (base, client, token) = (api.base.clone(), api.client.clone(), api.token.clone());
    let list_url = format!("{base}{LIST_PATH}");

    // Warm caches and the connection, then the idle baseline.
    for _ in 0..20 {
        get_once(&client, &list_url, &token).await;
    }
    let idle_before = idle_reads(&client, &list_url, &token).await;

    // The reader: one request after another until ingestion ends.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (client, url, token, stop) = (
            client.clone(),
            list_url.clone(),
            token.clone(),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            let mut times = Vec::new();
            while with_reader && !stop.load(Ordering::Relaxed) {
                times.push(get_once(&client, &url, &token).await);
            }
            times
        })
    };
    // Let the reader get going before the first batch.
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The history fold runs beside ingestion, as in `nexpoint serve`.
    let fold_job = tokio_util::sync::CancellationToken::new();
    let folding = tokio::spawn(nexpoint::jobs::usage_history::run(
        store.clone(),
        nexpoint::jobs::usage_history::REST,
        fold_job.clone(),
    ));
    let mut batch_times = Vec::with_capacity(NODES);
    let mut status_changed = 0;
    let ingest_start = Instant::now();
    for (n, batch) in batches.iter().enumerate() {
        let start = Instant::now();
        let applied = store.apply_usage(batch).await.unwrap();
        let took = start.elapsed();
        status_changed += applied.status_changed.len();
        eprintln!(
            "{}: node {} batch ({} deltas) applied in {}",
            target.name,
            n + 1,
            batch.deltas.len(),
            ms(took)
        );
        batch_times.push(took);
    }
    let ingest_wall = ingest_start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = Latency::of(reader.await.unwrap());
    fold_job.cancel();
    folding.await.unwrap();
    // What the job left queued, folded now: its cost per collection.
    let fold_start = Instant::now();
    let folded = store.fold_usage_history().await.unwrap();
    let fold_took = fold_start.elapsed();
    // The job then brings the list's usage sort key up to date: once per
    // fold, however many collections it merged.
    let refresh_start = Instant::now();
    let refreshed = store.refresh_usage_order().await.unwrap();
    let refresh_took = refresh_start.elapsed();
    let vacuum_start = Instant::now();
    store.compact_usage_counters().await.unwrap();
    eprintln!(
        "{}: history of {folded} collections folded in {} ({} per collection), \
         usage sort key of {refreshed} users refreshed in {}, counters vacuumed in {}",
        target.name,
        ms(fold_took),
        ms(fold_took / folded.max(1) as u32),
        ms(refresh_took),
        ms(vacuum_start.elapsed())
    );

    let idle_after = idle_reads(&client, &list_url, &token).await;

    // Correctness: what was stored is what was sent.
    let mut checks = Vec::new();
    let (all, total) = store
        .list_users(&UserFilter {
            limit: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let sent: i64 = expected_user.iter().sum();
    let stored_sum: i64 = all.iter().map(|u| u.used_traffic).sum();
    let lifetime_sum: i64 = all.iter().map(|u| u.lifetime_used_traffic).sum();
    checks.push((
        format!("users listed = {users} (total {total}, rows {})", all.len()),
        total == users as i64 && all.len() == users,
    ));
    checks.push((
        format!("sum of used_traffic {stored_sum} = sum of deltas {sent}"),
        stored_sum == sent,
    ));
    checks.push((
        format!("sum of lifetime_used_traffic {lifetime_sum} = sum of deltas"),
        lifetime_sum == sent,
    ));
    let mismatched = all
        .iter()
        .filter(|u| u.used_traffic != expected_user[u.id as usize])
        .count();
    checks.push((
        format!("every user's used_traffic matches its deltas ({mismatched} differ)"),
        mismatched == 0,
    ));
    let seen = all
        .iter()
        .filter(|u| u.online_at == Some(recorded_at))
        .count();
    checks.push((
        format!("online_at = recorded_at for {seen} of {users} users"),
        seen == users,
    ));
    drop(all);
    let mut nodes_ok = true;
    for (node, (up, down)) in nodes.iter().zip(&expected_node) {
        let stored = store.node(node.id).await.unwrap();
        nodes_ok &= stored.usage_sequence == 1 && stored.uplink == *up && stored.downlink == *down;
    }
    checks.push((
        "each node: usage_sequence 1, uplink/downlink = its deltas".into(),
        nodes_ok,
    ));
    let history = store
        .nodes_usage(recorded_at - 7200, recorded_at + 3600)
        .await
        .unwrap();
    let history_ok = history.len() == NODES
        && history
            .iter()
            .zip(&expected_node)
            .all(|(h, (up, down))| h.used_traffic == up + down);
    let history_sum: i64 = history.iter().map(|h| h.used_traffic).sum();
    checks.push((
        format!("hourly node usage history sums to {history_sum}, per node as sent"),
        history_ok && history_sum == sent,
    ));
    let admin_usage = store
        .admin_by_username("bench")
        .await
        .unwrap()
        .unwrap()
        .users_usage;
    checks.push((
        format!("admin users_usage {admin_usage} = sum of deltas"),
        admin_usage == sent,
    ));
    let page: serde_json::Value = client
        .get(&list_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let top = page["users"][0]["used_traffic"].as_i64().unwrap_or(-1);
    let max = expected_user.iter().copied().max().unwrap_or(0);
    checks.push((
        format!("GET /api/users first row used_traffic {top} = largest sent {max}"),
        top == max,
    ));
    let counts = store.user_counts(None).await.unwrap();
    let scanned = store.user_counts_by_scan(None).await.unwrap();
    checks.push((
        format!(
            "user counts: {} active, {} limited (scan agrees: {})",
            counts.active,
            counts.limited,
            counts == scanned
        ),
        counts.limited == 0 && counts == scanned,
    ));

    drop(api);
    store.close().await;
    target.drop_database().await;

    Report {
        backend: target.name,
        users,
        batches: batch_times,
        ingest_wall,
        idle_before,
        during,
        idle_after,
        status_changed,
        limited: counts.limited,
        checks,
    }
}

fn print_reports(cores: usize, reports: &[Report]) {
    println!();
    println!("machine: {cores} cores");
    for r in reports {
        let mut sorted = r.batches.clone();
        sorted.sort();
        let over = sorted.iter().filter(|t| t.as_secs_f64() >= 1.0).count();
        println!();
        println!(
            "{}: {} users x {NODES} nodes, one batch of {} deltas per node, applied node after node",
            r.backend, r.users, r.users
        );
        println!(
            "  per-node batch:  min {}  median {}  max {}  ({} of {} at or over 1 s; all {NODES} in {})",
            ms(sorted[0]),
            ms(median(&sorted)),
            ms(sorted[sorted.len() - 1]),
            over,
            sorted.len(),
            ms(r.ingest_wall)
        );
        let list: Vec<String> = r.batches.iter().map(|t| ms(*t)).collect();
        println!("  batches in order: {}", list.join(", "));
        println!("  GET {LIST_PATH}");
        println!(
            "    {:<24} {:>10} {:>10} {:>10} {:>8}",
            "", "p50", "p99", "max", "requests"
        );
        for (label, l) in [
            ("idle, before ingestion", &r.idle_before),
            ("during ingestion", &r.during),
            ("idle, after ingestion", &r.idle_after),
        ] {
            println!(
                "    {:<24} {:>10} {:>10} {:>10} {:>8}",
                label,
                lat(l, l.p50),
                lat(l, l.p99),
                lat(l, l.max),
                l.count
            );
        }
        println!(
            "  users whose status changed: {}; limited: {}",
            r.status_changed, r.limited
        );
        for (what, ok) in &r.checks {
            println!("  [{}] {what}", if *ok { "ok" } else { "FAIL" });
        }
    }
    println!();
    println!(
        "{:<11} {:>8} {:>10} {:>10} {:>10} {:>11} {:>11} {:>11} {:>11} {:>6}",
        "backend",
        "users",
        "batch min",
        "median",
        "max",
        "idle p50",
        "idle p99",
        "ingest p50",
        "ingest p99",
        "checks"
    );
    for r in reports {
        let mut sorted = r.batches.clone();
        sorted.sort();
        // The idle figure: both idle runs together.
        let idle = Latency::of([&r.idle_before.times[..], &r.idle_after.times[..]].concat());
        println!(
            "{:<11} {:>8} {:>10} {:>10} {:>10} {:>11} {:>11} {:>11} {:>11} {:>6}",
            r.backend,
            r.users,
            ms(sorted[0]),
            ms(median(&sorted)),
            ms(sorted[sorted.len() - 1]),
            ms(idle.p50),
            ms(idle.p99),
            lat(&r.during, r.during.p50),
            lat(&r.during, r.during.p99),
            if r.checks.iter().all(|c| c.1) {
                "ok"
            } else {
                "FAIL"
            }
        );
    }
}

fn main() {
    let users: usize = std::env::var("NEXPOINT_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("machine: {cores} cores");
    if let Ok(filter) = std::env::var("NEXPOINT_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let with_reader = std::env::var("NEXPOINT_BENCH_READER").as_deref() != Ok("0");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let only = std::env::var("NEXPOINT_BENCH_BACKENDS").unwrap_or_default();
    let reports = runtime.block_on(async {
        let mut reports = Vec::new();
        if only.is_empty() || only.contains("sqlite") {
            reports.push(run(sqlite().await, users, with_reader).await);
        }
        if only.is_empty() || only.contains("postgres") {
            reports.push(run(postgres().await, users, with_reader).await);
        }
        reports
    });
    print_reports(cores, &reports);
    if reports.iter().any(|r| r.checks.iter().any(|c| !c.1)) {
        std::process::exit(1);
    }
}
