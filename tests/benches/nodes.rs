//! Node benchmarks with the real binaries and real V2Ray cores.
//!
//! ```text
//! cargo build --release --bins          # the binaries this measures
//! . .tools/env                          # NEXPOINT_V2RAY_BIN, NEXPOINT_SING_BOX_BIN
//! cargo bench -p nexpoint-tests --bench nodes
//! ```
//!
//! `cargo bench` builds this file with the release profile, and the harness
//! takes `nexpoint` and `nexpoint-node` from the directory of the running
//! executable's profile (`tests/src/paths.rs`), i.e. `target/release`. Cargo
//! does not build another package's binaries for a bench, hence the
//! `cargo build --release --bins` first; `NEXPOINT_BIN_DIR` points the bench
//! at other binaries. A source file newer than a binary is reported.
//!
//! What it prints (results on stdout, the processes' logs on stderr):
//! 1. Full sync of NEXPOINT_BENCH_USERS users (default 100,000, VLESS) to one
//!    agent with a real V2Ray: the users are created in bulk through the
//!    store before the node exists, then the node is created, enrolled and
//!    its agent started. Timed from the agent's start until sample users
//!    (first, middle, last) carry traffic through the core (a raw VLESS
//!    request, polled every 5 ms), with the phases in between; afterwards a
//!    real sing-box client built from a subscription moves bytes. The core's
//!    own share is measured by running V2Ray directly on the exact config the
//!    agent wrote: its config test (the agent runs it before every restart)
//!    plus its start-up until the API answers. Ours = total - core's.
//! 2. NEXPOINT_BENCH_NODES agents (default 10), each with its own V2Ray and
//!    NEXPOINT_BENCH_FLEET_USERS users (default 100): NEXPOINT_BENCH_CREATIONS
//!    (default 200) times `POST /api/user`, then the time from its response
//!    until the new user's VLESS request succeeds on every core (each core
//!    probed every 2 ms): p50 / p99 / max. All nodes get the same core config
//!    from the control plane, so on one host their inbounds would collide: the
//!    agents run V2Ray through a small wrapper that moves this node's VLESS
//!    inbound to its own port before exec'ing the real binary.
//! 3. The agent's resident memory (VmRSS of `nexpoint-node`, core excluded)
//!    with the users of part 1 applied.
//!
//! NEXPOINT_BENCH_PARTS=sync,fleet selects parts; NEXPOINT_BENCH_CORE_RUNS
//! (default 3) is how often the core's own work is measured (median).
//!
//! To see where the agent's memory goes, point NEXPOINT_BIN_DIR at a
//! directory holding `nexpoint` (a link) and a `nexpoint-node` script that,
//! for `run`, execs the real agent with
//! `LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so
//! DUMP_HEAPTRACK_OUTPUT=FILE`; the bench stops the agent with SIGTERM, so
//! the trace is complete (`heaptrack_interpret < FILE`, then `heaptrack_print`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use nexpoint::domain::{Proxies, ResetStrategy, UserStatus};
use nexpoint::store::{NewUser, Store};
use nexpoint_proto::xray::stats::SysStatsRequest;
use nexpoint_proto::xray::stats::stats_service_client::StatsServiceClient;
use nexpoint_tests::control_plane::{ADMIN_USERNAME, ControlPlane, ControlPlaneOptions};
use nexpoint_tests::links::{Protocol, link_of};
use nexpoint_tests::node::{Node, USAGE_INTERVAL_MS, enroll};
use nexpoint_tests::paths::{bin_dir, nexpoint_bin, node_bin, repo_root, v2ray_bin};
use nexpoint_tests::process::{ChildProcess, Stream, kill_processes_mentioning};
use nexpoint_tests::socks::download;
use nexpoint_tests::{SingBoxClient, TestHttpServer, free_port, wait_until};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound for a full sync (agent start to users usable).
const SYNC_TIMEOUT: Duration = Duration::from_secs(900);
/// Bound for one user to reach every core in part 2.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between probes while waiting for the full sync.
const SYNC_POLL: Duration = Duration::from_millis(5);
/// Pause between one core's probes while waiting for a new user.
const FLEET_POLL: Duration = Duration::from_millis(2);
/// Bound for one probe (connect, VLESS request, answer).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("bench failed: {e:#}");
        println!("bench failed: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let parts = std::env::var("NEXPOINT_BENCH_PARTS").unwrap_or_else(|_| "sync,fleet".into());
    let users = env_usize("NEXPOINT_BENCH_USERS", 100_000);
    let nodes = env_usize("NEXPOINT_BENCH_NODES", 10);
    let creations = env_usize("NEXPOINT_BENCH_CREATIONS", 200);
    let fleet_users = env_usize("NEXPOINT_BENCH_FLEET_USERS", 100);
    let core_runs = env_usize("NEXPOINT_BENCH_CORE_RUNS", 3).max(1);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores (std::thread::available_parallelism)");
    describe_binaries();

    let mut summary = vec![format!("cores: {cores}")];
    let mut failed = false;
    if parts.contains("sync") {
        match full_sync(users, core_runs).await {
            Ok(lines) => summary.extend(lines),
            Err(e) => {
                failed = true;
                println!("full sync FAILED: {e:#}");
                summary.push(format!("1./3. full sync of {users} users FAILED: {e:#}"));
            }
        }
    }
    if parts.contains("fleet") {
        match fleet(nodes, creations, fleet_users).await {
            Ok(lines) => summary.extend(lines),
            Err(e) => {
                failed = true;
                println!("fleet FAILED: {e:#}");
                summary.push(format!("2. {nodes} agents FAILED: {e:#}"));
            }
        }
    }
    println!("\n== summary ==");
    for line in summary {
        println!("{line}");
    }
    ensure!(!failed, "a part failed");
    Ok(())
}

// ---------------------------------------------------------------- binaries

/// Prints which binaries run and warns when sources are newer than them.
fn describe_binaries() {
    println!("binaries from {}:", bin_dir().display());
    let root = repo_root();
    let shared = ["proto", "certs/src"];
    let builds = [
        (nexpoint_bin(), vec!["control-plane/src", "migrations"]),
        (node_bin(), vec!["node-agent/src"]),
    ];
    for (bin, own) in builds {
        println!("  {}", bin.display());
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let newest = own
            .iter()
            .chain(&shared)
            .filter_map(|d| newest_mtime(&root.join(d)))
            .max();
        if let (Some(built), Some((newest, path))) = (built, newest)
            && newest > built
        {
            println!(
                "    WARNING: {} is newer: run `cargo build --release --bins` to measure the current code",
                path.display()
            );
        }
    }
    println!("  {}", v2ray_bin().display());
}

fn newest_mtime(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                newest = Some((modified, path));
            }
        }
    }
    newest
}

// ------------------------------------------------------------------ users

/// Creates `n` VLESS users `{prefix}{i:06}` through the store, in the
/// control plane's own database; returns their VLESS ids.
async fn bulk_users(cp: &ControlPlane, prefix: &str, n: usize) -> Result<Vec<uuid::Uuid>> {
    let url = format!(
        "sqlite://{}?mode=rwc",
        cp.data_dir().join("nexpoint.db").display()
    );
    let store = Store::connect(&url).await.context("opening the database")?;
    let admin_id = store.admin_by_username(ADMIN_USERNAME).await?.map(|a| a.id);
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::new_v4()).collect();
    let batch: Vec<NewUser> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let proxies: Proxies = serde_json::from_value(json!({"vless": {"id": id.to_string()}}))
                .expect("VLESS proxies");
            NewUser {
                username: format!("{prefix}{i:06}"),
                status: UserStatus::Active,
                proxies,
                excluded_inbounds: Default::default(),
                data_limit: Some(1 << 40),
                data_limit_reset_strategy: ResetStrategy::NoReset,
                expire: None,
                note: None,
                admin_id,
                on_hold_expire_duration: None,
                on_hold_timeout: None,
                auto_delete_in_days: None,
            }
        })
        .collect();
    for chunk in batch.chunks(10_000) {
        store.create_users_bulk(chunk).await?;
    }
    store.close().await;
    Ok(ids)
}

// ------------------------------------------------------------------ nodes

/// A node created on the control plane and enrolled, its agent not started.
struct Enrolled {
    created: nexpoint_tests::control_plane::CreatedNode,
    agent_port: u16,
    state_dir: tempfile::TempDir,
}

async fn create_and_enroll(cp: &ControlPlane, name: &str) -> Result<Enrolled> {
    let agent_port = free_port();
    let created = cp.create_node(name, agent_port).await?;
    let state_dir = tempfile::Builder::new().prefix("nexpoint-node").tempdir()?;
    let (status, output) = enroll(
        &cp.base_url,
        &created.enrollment_token,
        &created.ca_fingerprint,
        state_dir.path(),
    )
    .await?;
    ensure!(status.success(), "enroll failed ({status}):\n{output}");
    Ok(Enrolled {
        created,
        agent_port,
        state_dir,
    })
}

/// `nexpoint-node run` as the harness runs it, with extra environment (which
/// the agent's core inherits); returns once it prints `listening on`.
async fn start_agent(enrolled: Enrolled, core_bin: &Path, env: &[(&str, &str)]) -> Result<Node> {
    let name = enrolled.created.name.clone();
    let listen = format!("127.0.0.1:{}", enrolled.agent_port);
    let mut all_env = vec![("NO_COLOR", "1")];
    all_env.extend_from_slice(env);
    let mut process = ChildProcess::spawn(
        format!("nexpoint-node {name}"),
        node_bin(),
        [
            "run",
            "--state-dir",
            &enrolled.state_dir.path().display().to_string(),
            "--listen",
            &listen,
            "--core-bin",
            &core_bin.display().to_string(),
            "--usage-interval-ms",
            &USAGE_INTERVAL_MS.to_string(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &all_env,
    )?;
    process
        .wait_for_line(Some(Stream::Stdout), Duration::from_secs(60), |l| {
            l.starts_with("listening on ")
        })
        .await
        .context("`nexpoint-node run` readiness line")?;
    Ok(Node {
        created: enrolled.created,
        agent_port: enrolled.agent_port,
        core_bin: core_bin.to_path_buf(),
        state_dir: enrolled.state_dir,
        process,
    })
}

/// VmRSS, VmHWM and RssAnon of a process, in KiB.
fn memory_kib(pid: i32) -> Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?, field("RssAnon:")?))
}

// ----------------------------------------------------------------- probes

/// One VLESS request (version 0, no addons, TCP to `origin`) carrying
/// `GET /bytes/1`: Ok when the core accepts the user and relays the answer.
/// A core that does not know the id closes the connection.
async fn vless_probe(inbound: SocketAddr, id: [u8; 16], origin: SocketAddr) -> Result<()> {
    let attempt = async {
        let mut stream = TcpStream::connect(inbound).await?;
        stream.set_nodelay(true)?;
        let std::net::IpAddr::V4(ip) = origin.ip() else {
            bail!("origin must be IPv4");
        };
        let mut request = Vec::with_capacity(128);
        request.push(0); // version
        request.extend_from_slice(&id);
        request.push(0); // addons length
        request.push(1); // command: TCP
        request.extend_from_slice(&origin.port().to_be_bytes());
        request.push(1); // address type: IPv4
        request.extend_from_slice(&ip.octets());
        request.extend_from_slice(
            b"GET /bytes/1 HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n",
        );
        stream.write_all(&request).await?;
        // The response header and the status line; not up to the end: the
        // core holds a finished connection open for a while.
        let mut answer = [0u8; 14];
        let mut got = 0;
        while got < answer.len() {
            let n = stream.read(&mut answer[got..]).await?;
            ensure!(n > 0, "connection closed after {got} bytes: user unknown");
            got += n;
        }
        ensure!(
            answer[..2] == [0, 0] && answer[2..] == *b"HTTP/1.1 200",
            "not a VLESS answer with HTTP 200: {answer:?}"
        );
        Ok(())
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .context("probe timed out")?
}

/// Probes until the user `id` is served on `inbound`; returns when it was.
async fn until_usable(
    inbound: SocketAddr,
    id: [u8; 16],
    origin: SocketAddr,
    pause: Duration,
    deadline: Instant,
) -> Result<Instant> {
    loop {
        let last = match vless_probe(inbound, id, origin).await {
            Ok(()) => return Ok(Instant::now()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            bail!("user never usable on {inbound}: {last:#}");
        }
        tokio::time::sleep(pause).await;
    }
}

/// Whether a core's API on 127.0.0.1:`port` answers GetSysStats.
async fn core_api_answers(port: u16) -> bool {
    let attempt = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .connect()
            .await?;
        StatsServiceClient::new(channel)
            .get_sys_stats(SysStatsRequest {})
            .await?;
        anyhow::Ok(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Ok(()))
    )
}

/// What the bench sees in the agent's state dir during a sync.
#[derive(Default)]
struct StateDirTimes {
    /// When the candidate config (validated with `core -test`) was written.
    candidate_written: Option<SystemTime>,
    /// The core's API port (from `core-run.json`).
    api_port: Option<u16>,
    /// When the core's API first answered.
    api_answered: Option<Instant>,
}

/// Polls the state dir and the core's API until the API answers.
async fn watch_state_dir(dir: PathBuf, deadline: Instant) -> StateDirTimes {
    let mut times = StateDirTimes::default();
    let candidate = dir.join("core.candidate.json");
    let run_record = dir.join("core-run.json");
    while Instant::now() < deadline {
        if times.candidate_written.is_none()
            && let Ok(modified) = std::fs::metadata(&candidate).and_then(|m| m.modified())
        {
            times.candidate_written = Some(modified);
        }
        if times.api_port.is_none()
            && let Ok(text) = std::fs::read_to_string(&run_record)
            && let Ok(record) = serde_json::from_str::<Value>(&text)
        {
            times.api_port = record["api_port"].as_u64().map(|p| p as u16);
        }
        if let Some(port) = times.api_port
            && core_api_answers(port).await
        {
            times.api_answered = Some(Instant::now());
            return times;
        }
        tokio::time::sleep(SYNC_POLL).await;
    }
    times
}

// ------------------------------------------------------------------- logs

/// The timestamp that starts a `tracing` fmt line (`2026-01-02T03:04:05.678901Z`).
fn log_time(line: &str) -> Option<SystemTime> {
    let line = strip_ansi(line);
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = t.next()?.parse().ok()?;
    let days = days_from_civil(y, m, day);
    let whole = days * 86_400 + h * 3600 + min * 60;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(whole).ok()?) + Duration::from_secs_f64(s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The time of the first line of `process` after `after` that contains `needle`.
fn first_logged(process: &ChildProcess, needle: &str, after: SystemTime) -> Option<SystemTime> {
    process
        .output_text()
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(log_time)
        .find(|t| *t >= after)
}

/// The error of the control plane's last `times` node sessions after
/// `after`, when they all ended with the same one: the sync will not finish.
fn repeated_session_error(cp: &ChildProcess, after: SystemTime, times: usize) -> Option<String> {
    let errors: Vec<String> = cp
        .output_text()
        .lines()
        .filter(|l| l.contains("node session ended"))
        .filter(|l| log_time(l).is_some_and(|t| t >= after))
        .filter_map(|l| Some(strip_ansi(l).split_once("error=")?.1.to_string()))
        .collect();
    let last = errors.last()?;
    (errors.len() >= times && errors[errors.len() - times..].iter().all(|e| e == last))
        .then(|| last.clone())
}

/// One reading of CPU time in clock ticks: (since t0, control plane, agent
/// itself, agent's waited-for children).
type CpuSample = (Duration, u64, u64, u64);

/// utime + stime and cutime + cstime of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, from field 3 (state) on.
    let fields: Vec<u64> = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14..=17.
    Some((
        fields.get(10)? + fields.get(11)?,
        fields.get(12)? + fields.get(13)?,
    ))
}

/// Samples the CPU time of the control plane and the agent every 20 ms
/// while `running`.
async fn sample_cpu(
    t0: Instant,
    cp: i32,
    agent: i32,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<CpuSample> {
    let mut samples = Vec::new();
    loop {
        if let (Some((cp_self, _)), Some((agent_self, agent_children))) =
            (cpu_ticks(cp), cpu_ticks(agent))
        {
            samples.push((t0.elapsed(), cp_self, agent_self, agent_children));
        }
        if !running.load(std::sync::atomic::Ordering::Relaxed) {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU seconds (control plane, agent, agent's children) between two times,
/// from the last samples at or before each (ticks of 1/100 s).
fn cpu_between(samples: &[CpuSample], from: Duration, to: Duration) -> (f64, f64, f64) {
    let at = |t: Duration| {
        samples
            .iter()
            .take_while(|s| s.0 <= t)
            .last()
            .or(samples.first())
            .copied()
            .unwrap_or_default()
    };
    let (a, b) = (at(from), at(to));
    let secs = |x: u64, y: u64| y.saturating_sub(x) as f64 / 100.0;
    (secs(a.1, b.1), secs(a.2, b.2), secs(a.3, b.3))
}

/// `t - origin` in seconds, negative when `t` is earlier.
fn since(origin: SystemTime, t: SystemTime) -> f64 {
    match t.duration_since(origin) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

// ------------------------------------------------------------ 1. full sync

async fn full_sync(n: usize, core_runs: usize) -> Result<Vec<String>> {
    ensure!(n > 0, "NEXPOINT_BENCH_USERS must be positive");
    println!("\n== 1. full sync of {n} users to one agent with V2Ray ==");
    let cp = ControlPlane::start().await?;
    let origin = TestHttpServer::start().await?;

    let start = Instant::now();
    let ids = bulk_users(&cp, "bench", n).await?;
    println!(
        "{n} users created in bulk through the store: {}",
        secs(start.elapsed())
    );
    let mut samples = vec![0, n / 2, n - 1];
    samples.dedup();
    let vless: SocketAddr = ([127, 0, 0, 1], cp.core.vless_port).into();

    let start = Instant::now();
    let enrolled = create_and_enroll(&cp, "sync").await?;
    println!(
        "node created and enrolled (not timed below): {}",
        secs(start.elapsed())
    );
    let state_path = enrolled.state_dir.path().to_path_buf();

    // t = 0: the agent starts.
    let wall0 = SystemTime::now();
    let t0 = Instant::now();
    let deadline = t0 + SYNC_TIMEOUT;
    let watcher = tokio::spawn(watch_state_dir(state_path.clone(), deadline));
    let usable = {
        let probes: Vec<[u8; 16]> = samples.iter().map(|&i| *ids[i].as_bytes()).collect();
        let origin = origin.addr;
        tokio::spawn(async move {
            let mut last = t0;
            for id in probes {
                last = until_usable(vless, id, origin, SYNC_POLL, deadline).await?;
            }
            anyhow::Ok(last)
        })
    };
    let node = start_agent(enrolled, &v2ray_bin(), &[]).await?;
    let listening = t0.elapsed();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn(sample_cpu(
        t0,
        cp.process.pid(),
        node.process.pid(),
        sampling.clone(),
    ));
    let mut usable = usable;
    let usable = loop {
        tokio::select! {
            result = &mut usable => match result? {
                Ok(t) => break t - t0,
                Err(e) => {
                    let status = cp.node(node.id()).await.unwrap_or_default();
                    bail!(
                        "full sync: {e:#}\nnode: {status}\nagent:\n{}",
                        node.process.tail(30)
                    );
                }
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some(error) = repeated_session_error(&cp.process, wall0, 3) {
                    usable.abort();
                    bail!("the control plane's session with the node keeps failing: {error}");
                }
            }
        }
    };
    let watched = watcher.await?;
    // The agent reports the apply done once it persisted the applied state.
    let applied = loop {
        let status = cp.node(node.id()).await?;
        if status["status"] == "connected" {
            break t0.elapsed();
        }
        ensure!(Instant::now() < deadline, "node never connected: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (rss_synced, _, _) = memory_kib(node.process.pid())?;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let cpu = sampler.await?;

    // A real client, built from a sample user's subscription, moves bytes.
    let sample = format!("bench{:06}", n / 2);
    let user = cp.get_user(&sample).await?;
    let link = link_of(&cp.subscription_links(&user).await?, Protocol::Vless)?;
    let client = SingBoxClient::start(&link).await?;
    wait_until(Duration::from_secs(60), "sing-box download", || {
        download(client.socks, origin.addr, 100_000, Duration::from_secs(20))
    })
    .await?;
    drop(client);
    println!("verified: {sample} downloaded 100,000 bytes through sing-box (VLESS)");

    let (rss, hwm, anon) = memory_kib(node.process.pid())?;

    // One more user on a node that already serves n: from POST /api/user
    // returning to the user served by the core.
    let changes = env_usize("NEXPOINT_BENCH_SCALE_CHANGES", 20);
    let mut change_latencies = Vec::with_capacity(changes);
    for i in 0..changes {
        let id = uuid::Uuid::new_v4();
        cp.create_user(&json!({
            "username": format!("scale{i:04}"),
            "proxies": {"vless": {"id": id.to_string()}},
        }))
        .await?;
        let posted = Instant::now();
        let served = until_usable(
            vless,
            *id.as_bytes(),
            origin.addr,
            FLEET_POLL,
            posted + Duration::from_secs(30),
        )
        .await?;
        change_latencies.push(served - posted);
    }
    change_latencies.sort();
    let (rss_after_changes, _, _) = memory_kib(node.process.pid())?;
    if !change_latencies.is_empty() {
        println!(
            "one user created on a node serving {n}: to served by its core p50 {} max {} ({changes} creations); agent VmRSS after them {}",
            ms(percentile(&change_latencies, 0.5)),
            ms(*change_latencies.last().expect("not empty")),
            mib(rss_after_changes)
        );
    }

    // The timeline, from the agent's start.
    let connected = first_logged(&cp.process, "connected to node", wall0);
    let core_spawned = first_logged(&node.process, "core started", wall0);
    let at = |t: Option<SystemTime>| {
        t.map_or("       ?".to_string(), |t| {
            format!("{:8.3}", since(wall0, t))
        })
    };
    let at_d = |d: Duration| format!("{:8.3}", d.as_secs_f64());
    println!("timeline (s after the agent started):");
    println!("  {} agent listening", at_d(listening));
    println!(
        "  {} control plane connected (its reconnect back-off after enrollment)",
        at(connected)
    );
    println!(
        "  {} candidate config written (desired state read, digest, transfer, agent's diff + render)",
        at(watched.candidate_written)
    );
    println!(
        "  {} core spawned (core's config test, usage flush, config written)",
        at(core_spawned)
    );
    println!(
        "  {} core API answers (core start-up)",
        watched
            .api_answered
            .map_or("       ?".into(), |t| at_d(t - t0))
    );
    println!("  {} sample users carry traffic", at_d(usable));
    println!(
        "  {} node reported synced (agent polls the API every 100 ms, persists the state)",
        at_d(applied)
    );
    let rel = |t: Option<SystemTime>| t.map(|t| Duration::from_secs_f64(since(wall0, t).max(0.0)));
    let phases = [
        (
            "agent start -> control plane connected",
            Some(Duration::ZERO),
            rel(connected),
        ),
        (
            "connected -> candidate config written",
            rel(connected),
            rel(watched.candidate_written),
        ),
        (
            "candidate written -> core spawned",
            rel(watched.candidate_written),
            rel(core_spawned),
        ),
        (
            "core spawned -> users usable",
            rel(core_spawned),
            Some(usable),
        ),
        (
            "users usable -> node reported synced",
            Some(usable),
            Some(applied),
        ),
    ];
    println!(
        "CPU seconds per phase (from /proc/PID/stat, 10 ms ticks; agent's children = its finished `core -test` runs):"
    );
    println!(
        "  {:<40} {:>8} {:>14} {:>8} {:>16}",
        "phase", "wall", "control plane", "agent", "agent's children"
    );
    for (name, from, to) in phases {
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        let (cp_cpu, agent_cpu, children_cpu) = cpu_between(&cpu, from, to);
        println!(
            "  {name:<40} {:>8.3} {cp_cpu:>14.2} {agent_cpu:>8.2} {children_cpu:>16.2}",
            to.saturating_sub(from).as_secs_f64()
        );
    }

    // The core alone on the exact config the agent rendered.
    let config_dir = tempfile::Builder::new()
        .prefix("nexpoint-bench-core")
        .tempdir()?;
    let config = config_dir.path().join("core.json");
    std::fs::copy(state_path.join("core.json"), &config)?;
    let config_mib = std::fs::metadata(&config)?.len() as f64 / (1 << 20) as f64;
    let api_port = watched
        .api_port
        .context("no core-run.json with the API port")?;
    let mut node = node;
    node.stop_agent().await?;
    kill_processes_mentioning(&state_path);
    let (test, startup) = core_alone(&config, api_port, core_runs).await?;
    let core = test + startup;
    let ours = usable.saturating_sub(core);

    println!(
        "core alone on the rendered config ({config_mib:.1} MiB), median of {core_runs}: \
         config test {}, start-up until the API answers {}",
        secs(test),
        secs(startup)
    );
    println!(
        "full sync of {n} users: total {} (agent start -> users usable)",
        secs(usable)
    );
    println!(
        "  core's own work {} (test {} + start-up {}); ours {}",
        secs(core),
        secs(test),
        secs(startup),
        secs(ours)
    );
    if let Some(c) = connected {
        let waiting = Duration::from_secs_f64(since(wall0, c).max(0.0));
        println!(
            "  of ours, {} waiting for the control plane to reconnect after enrollment; from its connect: {}",
            secs(waiting),
            secs(ours.saturating_sub(waiting))
        );
    }

    println!("\n== 3. agent memory with {n} users applied ==");
    println!(
        "nexpoint-node VmRSS {} right after the sync, {} after traffic (peak VmHWM {}, RssAnon {}); target < 30 MiB",
        mib(rss_synced),
        mib(rss),
        mib(hwm),
        mib(anon)
    );
    Ok(vec![
        format!(
            "1. full sync of {n} users: total {}, core {} (test {} + start-up {}), ours {}",
            secs(usable),
            secs(core),
            secs(test),
            secs(startup),
            secs(ours)
        ),
        format!(
            "3. agent VmRSS with {n} users: {} (peak {})",
            mib(rss),
            mib(hwm)
        ),
    ])
}

/// V2Ray run directly on `config`: (config test, start-up until the API on
/// `api_port` answers), medians of `runs`.
async fn core_alone(config: &Path, api_port: u16, runs: usize) -> Result<(Duration, Duration)> {
    let config_arg = config.display().to_string();
    let mut tests = Vec::new();
    let mut startups = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut test = ChildProcess::spawn(
            "v2ray -test",
            v2ray_bin(),
            ["-test", "-config", &config_arg],
            &[],
        )?;
        let status = test.wait_exit(Duration::from_secs(300)).await?;
        ensure!(status.success(), "v2ray -test failed:\n{}", test.tail(20));
        tests.push(start.elapsed());

        let start = Instant::now();
        let mut core = ChildProcess::spawn("v2ray", v2ray_bin(), ["-config", &config_arg], &[])?;
        let deadline = start + Duration::from_secs(300);
        loop {
            if core_api_answers(api_port).await {
                break;
            }
            if let Some(status) = core.try_status() {
                bail!("v2ray exited ({status}):\n{}", core.tail(20));
            }
            ensure!(Instant::now() < deadline, "the core API never answered");
            tokio::time::sleep(SYNC_POLL).await;
        }
        startups.push(start.elapsed());
        core.kill().await?;
    }
    Ok((median(tests), median(startups)))
}

// ------------------------------------------------------------ 2. the fleet

/// Gives each node's core its own VLESS port: rewrites the template's port
/// in the config the agent passes, then runs the real V2Ray.
const CORE_WRAPPER: &str = r#"#!/bin/sh
prev=
config=
for arg in "$@"; do
  if [ "$prev" = "-config" ]; then config=$arg; fi
  prev=$arg
done
if [ -n "$config" ]; then
  sed -i "s/\"port\": $NEXPOINT_BENCH_TEMPLATE_PORT\([^0-9]\|\$\)/\"port\": $NEXPOINT_BENCH_NODE_PORT\1/" "$config" || exit 1
fi
exec "$NEXPOINT_BENCH_V2RAY" "$@"
"#;

fn only_vless(config: &mut Value) {
    if let Some(inbounds) = config["inbounds"].as_array_mut() {
        inbounds.retain(|i| i["tag"] == "VLESS_TCP");
    }
}

async fn fleet(nodes: usize, creations: usize, users: usize) -> Result<Vec<String>> {
    ensure!(
        nodes > 0 && creations > 0,
        "nodes and creations must be positive"
    );
    println!(
        "\n== 2. {nodes} agents, each with its own V2Ray, {users} users: user creation -> usable on every core =="
    );
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        edit_core_config: Some(only_vless),
        ..Default::default()
    })
    .await?;
    let origin = TestHttpServer::start().await?;
    let ids = bulk_users(&cp, "fleet", users.max(1)).await?;

    let wrapper_dir = tempfile::Builder::new()
        .prefix("nexpoint-bench-wrapper")
        .tempdir()?;
    let wrapper = wrapper_dir.path().join("v2ray");
    std::fs::write(&wrapper, CORE_WRAPPER)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    }
    let v2ray = v2ray_bin().display().to_string();
    let template_port = cp.core.vless_port.to_string();

    let start = Instant::now();
    let mut fleet: Vec<(Node, SocketAddr)> = Vec::new();
    for k in 0..nodes {
        let port = free_port();
        let enrolled = create_and_enroll(&cp, &format!("fleet{k:02}")).await?;
        let node_port = port.to_string();
        let node = start_agent(
            enrolled,
            &wrapper,
            &[
                ("NEXPOINT_BENCH_V2RAY", &v2ray),
                ("NEXPOINT_BENCH_TEMPLATE_PORT", &template_port),
                ("NEXPOINT_BENCH_NODE_PORT", &node_port),
            ],
        )
        .await?;
        fleet.push((node, ([127, 0, 0, 1], port).into()));
    }
    let ready = Instant::now() + Duration::from_secs(300);
    for (node, inbound) in &fleet {
        node.wait_connected(&cp, Duration::from_secs(300)).await?;
        until_usable(*inbound, *ids[0].as_bytes(), origin.addr, SYNC_POLL, ready)
            .await
            .with_context(|| format!("node {} serving its users", node.created.name))?;
    }
    println!(
        "{nodes} nodes enrolled, started and serving: {}",
        secs(start.elapsed())
    );

    let mut posts = Vec::with_capacity(creations);
    let mut propagation = Vec::with_capacity(creations);
    for i in 0..creations {
        let id = uuid::Uuid::new_v4();
        let body = json!({
            "username": format!("new{i:04}"),
            "proxies": {"vless": {"id": id.to_string()}},
            "data_limit": 0,
            "expire": null,
            "status": "active",
        });
        let start = Instant::now();
        cp.create_user(&body).await?;
        let returned = Instant::now();
        posts.push(returned - start);
        let deadline = returned + PROPAGATION_TIMEOUT;
        let probes: Vec<_> = fleet
            .iter()
            .map(|(_, inbound)| {
                tokio::spawn(until_usable(
                    *inbound,
                    *id.as_bytes(),
                    origin.addr,
                    FLEET_POLL,
                    deadline,
                ))
            })
            .collect();
        let mut latest = returned;
        for probe in probes {
            latest = latest.max(probe.await??);
        }
        propagation.push(latest - returned);
    }
    posts.sort();
    propagation.sort();
    let p50 = percentile(&propagation, 0.5);
    let p99 = percentile(&propagation, 0.99);
    let max = *propagation.last().expect("creations > 0");
    println!(
        "POST /api/user: p50 {}, p99 {}, max {}",
        ms(percentile(&posts, 0.5)),
        ms(percentile(&posts, 0.99)),
        ms(*posts.last().expect("creations > 0"))
    );
    println!(
        "POST /api/user returned -> user usable on all {nodes} cores, {creations} creations: \
         p50 {}, p99 {}, max {} (target p99 < 100 ms; probe pause {})",
        ms(p50),
        ms(p99),
        ms(max),
        ms(FLEET_POLL)
    );
    let rss: Vec<u64> = fleet
        .iter()
        .filter_map(|(n, _)| memory_kib(n.process.pid()).ok().map(|m| m.0))
        .collect();
    if !rss.is_empty() {
        println!(
            "agents' VmRSS with {} users: mean {}, max {}",
            users + creations,
            mib(rss.iter().sum::<u64>() / rss.len() as u64),
            mib(*rss.iter().max().expect("non-empty"))
        );
    }
    Ok(vec![format!(
        "2. {nodes} agents, user creation -> on all cores ({creations}x): p50 {}, p99 {}, max {}",
        ms(p50),
        ms(p99),
        ms(max)
    )])
}
