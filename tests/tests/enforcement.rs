//! Enforcement on the core, timed: a user over quota is cut off within one
//! collection interval of crossing her limit, and a user is cut off at the
//! second she expires, by the lifecycle clock rather than the node task's
//! interval.
//!
//! Real binaries throughout: `nexpoint`, `nexpoint-node` driving V2Ray 4.34,
//! a sing-box client built from the user's subscription link, traffic on
//! loopback only. V2Ray keeps the open connections of a removed user alive,
//! so a cut-off is observed with new connections.
//!
//! The figures each test measures are printed (`quota-to-cutoff: …`,
//! `overshoot: …`, `expiry-to-expired: …`, `expiry-to-cutoff: …`). The
//! assertions are about bytes and about the intervals the system promises,
//! never about raw speed.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use nexpoint_tests::control_plane::{ControlPlane, ControlPlaneOptions};
use nexpoint_tests::links::Protocol;
use nexpoint_tests::paths::v2ray_bin;
use nexpoint_tests::socks::download;
use nexpoint_tests::steps::{
    CONVERGE, REFUSED_PROBE_TIMEOUT, TRANSFER_TIMEOUT, client, connected_node, core_traffic,
    link_to, links_of, response_head, wait_billed_exactly, wait_cut_off, wait_reachable,
};
use nexpoint_tests::{TestHttpServer, wait_until};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// The quota test's `data_limit`: 1 MB.
const LIMIT: i64 = 1_000_000;
/// What the client would push in total if nothing stopped her: 10 MB.
const TOTAL: usize = 10_000_000;
/// One download's payload; every download is a new connection.
const CHUNK: usize = 50_000;
/// The control plane's collection interval in the quota test.
const QUOTA_INTERVAL_MS: u64 = 1_000;
/// Added to the collection interval in the overshoot allowance: after the
/// collection that finds her over quota has read the core's counters, the
/// control plane commits the usage (one transaction that also makes her
/// `limited`), computes the change set and sends the removal to the agent,
/// which removes her from the core: a database commit and a few loopback
/// RPCs, tens of milliseconds. The node task also sleeps the interval after
/// its pass, so passes are the interval plus a pass apart. 500 ms leaves
/// room for both on a loaded CI host while staying well below the interval.
const RECONCILE_ALLOWANCE: Duration = Duration::from_millis(500);
/// How often the client starts a download. A download's bytes cross
/// loopback in milliseconds, but V2Ray holds each finished connection about
/// a second before closing it, so strictly one-after-another downloads would
/// move only ~50 KB/s and could only show the cut-off to within a second.
/// Starting one every 50 ms gives a steady ~1 MB/s, with downloads
/// overlapping only in that idle hold: at most one is moving bytes at a time.
const LAUNCH_EVERY: Duration = Duration::from_millis(50);

/// The control plane's collection interval in the expiry test. The node
/// task's passes before her expiry all come at or after her creation (less
/// than `EXPIRE_IN_SECS` before it), so the next one of its own schedule
/// comes at least 6 s after her expiry second, past [`EXPIRY_BOUND_MS`]:
/// only the lifecycle clock waking the node tasks can cut her off within
/// the bound.
const EXPIRY_INTERVAL_MS: u64 = 10_000;
/// The expiring user's `expire`, from the second she is created.
const EXPIRE_IN_SECS: i64 = 4;
/// The latest the expiry may take effect after its second starts. A
/// correctness bound, not a speed target: the lifecycle clock wakes at the
/// deadline second; the rest is room for a loaded CI host.
const EXPIRY_BOUND_MS: i64 = 5_000;

fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// One download of the quota test.
struct Attempt {
    index: usize,
    launched: Instant,
    finished: Instant,
    result: Result<(), String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_over_quota_is_cut_off_within_one_interval() {
    const USER: &str = "quinn";
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        node_sync_interval_ms: Some(QUOTA_INTERVAL_MS),
        ..Default::default()
    })
    .await
    .expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let node = connected_node(&cp, "n-enforce-quota", &v2ray_bin()).await;
    let api_port = node
        .core_api_port(CONVERGE)
        .await
        .expect("the core's API port");

    let quinn = cp
        .create_user(&json!({
            "username": USER,
            "proxies": {"vmess": {}},
            "data_limit": LIMIT,
            "expire": null,
            "status": "active",
        }))
        .await
        .expect("POST /api/user");
    assert_eq!(quinn["data_limit"], LIMIT, "{quinn}");
    assert_eq!(quinn["status"], "active", "{quinn}");
    let client = client(&link_to(
        &links_of(&cp, &quinn).await,
        Protocol::Vmess,
        cp.core.vmess_port,
    ))
    .await;
    wait_reachable(&client, &origin, USER, CONVERGE)
        .await
        .expect("quinn gets through");

    // What the core counts for one download: its payload plus the HTTP
    // heads both ways (the tunnel's own framing is not counted). Every
    // download of the push is the same request, so this is exact.
    let before = core_traffic(api_port, USER).await.unwrap();
    download(client.socks, origin.addr, CHUNK, TRANSFER_TIMEOUT)
        .await
        .expect("a calibration download");
    let base = core_traffic(api_port, USER).await.unwrap();
    let per_download = base - before;
    let overhead = per_download - CHUNK as i64;
    assert!(
        (0..4_096).contains(&overhead),
        "the core counted {per_download} bytes for a {CHUNK}-byte download"
    );
    assert!(
        base + per_download < LIMIT,
        "quinn used {base} bytes before the push: no room to cross {LIMIT} in it"
    );
    let user = cp.get_user(USER).await.unwrap();
    assert_eq!(user["status"], "active", "before the push: {user}");
    eprintln!(
        "quota: core counted {base} bytes before the push; one download counts {per_download} \
         ({CHUNK} payload + {overhead} of HTTP heads)"
    );

    // The push, and meanwhile a look at her every poll: when the control
    // plane first shows her `limited`, and each collection that came before
    // (a change of `used_traffic`).
    let looks: Mutex<Vec<(Instant, i64)>> = Mutex::default();
    let (push, limited) = tokio::join!(
        push(client.socks, origin.addr),
        wait_until(CONVERGE, "quinn to be `limited`", || async {
            let user = cp.get_user(USER).await?;
            let used = user["used_traffic"].as_i64().unwrap_or(-1);
            looks.lock().unwrap().push((Instant::now(), used));
            ensure!(
                user["status"] == "limited",
                "status {} used_traffic {}",
                user["status"],
                user["used_traffic"]
            );
            Ok((Instant::now(), user))
        }),
    );
    let Push { launches, attempts } = push;
    assert_eq!(attempts.len(), launches.len(), "every download reported");

    let Some(cut) = attempts.iter().position(|a| a.result.is_err()) else {
        panic!(
            "quinn was never refused: all {} downloads ({} bytes) got through; limit {LIMIT}",
            attempts.len(),
            attempts.len() * CHUNK
        );
    };
    let refused = &attempts[cut];
    eprintln!(
        "quota: download #{cut} refused after {} ms: {}",
        ms(refused.finished - refused.launched),
        refused.result.as_ref().unwrap_err()
    );
    for a in &attempts[cut..] {
        assert!(
            a.result.is_err(),
            "download #{} started after the first refused one (#{cut}) got through",
            a.index
        );
    }
    let got_through = cut; // downloads #0..cut, all successful
    let payload = got_through * CHUNK;
    assert!(
        payload < TOTAL && (origin.body_bytes_served() as usize) < TOTAL,
        "quinn got the whole {TOTAL} bytes ({payload} in the push, the origin served {})",
        origin.body_bytes_served()
    );

    // Where her cumulative count crossed the limit: during download #crossing.
    let crossing = (0..got_through)
        .find(|&k| base + (k as i64 + 1) * per_download >= LIMIT)
        .unwrap_or_else(|| {
            panic!(
                "quinn was refused at download #{cut} before crossing her limit: {} counted bytes",
                base + got_through as i64 * per_download
            )
        });
    let (crossed_at, crossed_unix_ms) = launches[crossing];
    let (cut_at, cut_unix_ms) = launches[cut];
    let quota_to_cutoff = cut_at.saturating_duration_since(crossed_at);
    // The client's own rate up to the cut-off, in bytes the core counts.
    let pushed = got_through as i64 * per_download;
    let pushed_for = cut_at - launches[0].0;
    let rate = pushed as f64 / pushed_for.as_secs_f64();

    // She is limited, stays refused, and was billed exactly what the core counted.
    let (limited_seen, limited) = limited.expect("quinn becomes `limited`");
    wait_cut_off(&client, &origin, "limited quinn", CONVERGE)
        .await
        .unwrap();
    let counted = core_traffic(api_port, USER).await.unwrap();
    assert_eq!(
        counted,
        base + pushed,
        "the core counted {counted} bytes for quinn: not the {base} before the push plus \
         {got_through} downloads of {per_download}"
    );
    wait_billed_exactly(&cp, USER, counted, CONVERGE)
        .await
        .expect("used_traffic equals the core's counters");
    assert!(
        limited["used_traffic"].as_i64().unwrap_or_default() >= LIMIT,
        "limited below her limit: {limited}"
    );

    let overshoot = counted - LIMIT;
    let window = Duration::from_millis(QUOTA_INTERVAL_MS) + RECONCILE_ALLOWANCE;
    let allowance = (rate * window.as_secs_f64()) as i64 + per_download;
    eprintln!(
        "quota: {got_through} downloads ({pushed} counted bytes) in {} ms before the first \
         refused one: {rate:.0} B/s; {} downloads asked for in all, {payload} of the {TOTAL} \
         payload bytes delivered",
        ms(pushed_for),
        attempts.len()
    );
    eprintln!(
        "quota: crossed {LIMIT} during download #{crossing} (started at unix {crossed_unix_ms} ms); \
         first refused download #{cut} started at unix {cut_unix_ms} ms (the removal came after \
         download #{} started, {} ms after the crossing)",
        cut - 1,
        ms(launches[cut - 1].0 - crossed_at)
    );
    let mut seen = -1;
    for (at, used) in looks.into_inner().unwrap() {
        if used != seen {
            let ms_after = if at >= crossed_at {
                ms(at - crossed_at) as i64
            } else {
                -(ms(crossed_at - at) as i64)
            };
            eprintln!("quota: used_traffic {used} first seen at {ms_after} ms from the crossing");
            seen = used;
        }
    }
    eprintln!(
        "quota: `limited` first seen {} ms after the crossing (status polled every 100 ms)",
        ms(limited_seen.saturating_duration_since(crossed_at))
    );
    eprintln!(
        "quota-to-cutoff: {} ms (interval {QUOTA_INTERVAL_MS} ms)",
        ms(quota_to_cutoff)
    );
    eprintln!(
        "overshoot: {overshoot} bytes (used_traffic {counted} - limit {LIMIT}); allowance \
         {allowance} bytes = {rate:.0} B/s x ({QUOTA_INTERVAL_MS} + {} ms) + one download of \
         {per_download} ({CHUNK} + {overhead} overhead)",
        ms(RECONCILE_ALLOWANCE)
    );
    assert!(
        overshoot >= 0,
        "limited at {counted} bytes, below her limit {LIMIT}"
    );
    assert!(
        overshoot <= allowance,
        "quinn went {overshoot} bytes over her limit, more than the {allowance} she can move \
         in one collection interval plus the reconcile allowance and one download in flight \
         (quota-to-cutoff {} ms)",
        ms(quota_to_cutoff)
    );
}

/// The downloads of the quota test, in launch order, with when each was
/// launched (monotonic, and unix milliseconds to compare with the logs).
struct Push {
    launches: Vec<(Instant, i64)>,
    attempts: Vec<Attempt>,
}

/// Starts a new `CHUNK`-byte download through the client's SOCKS port
/// `socks` every [`LAUNCH_EVERY`] until one is refused or `TOTAL` bytes have
/// been asked for; then lets the open ones finish. A refused connection may
/// fail at once or hang until its time-out (V2Ray drains a connection whose
/// user it does not know), so the downloads started meanwhile are refused
/// too: only the order of launches tells when the cut-off came.
async fn push(socks: SocketAddr, target: SocketAddr) -> Push {
    let (tx, mut rx) = mpsc::unbounded_channel::<Attempt>();
    let mut downloads = JoinSet::new();
    let mut launches: Vec<(Instant, i64)> = Vec::new();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut ticker = tokio::time::interval(LAUNCH_EVERY);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            Some(attempt) = rx.recv() => {
                let refused = attempt.result.is_err();
                attempts.push(attempt);
                if refused {
                    break;
                }
            }
            _ = ticker.tick() => {
                if launches.len() * CHUNK >= TOTAL {
                    break;
                }
                let index = launches.len();
                let launched = Instant::now();
                launches.push((launched, unix_now_ms()));
                let tx = tx.clone();
                downloads.spawn(async move {
                    let result = download(socks, target, CHUNK, TRANSFER_TIMEOUT)
                        .await
                        .map_err(|e| format!("{e:#}"));
                    let _ = tx.send(Attempt { index, launched, finished: Instant::now(), result });
                });
            }
        }
    }
    // Connections opened before the cut-off stay open: let them finish.
    while let Some(joined) = downloads.join_next().await {
        joined.expect("a download task");
    }
    drop(tx);
    while let Some(attempt) = rx.recv().await {
        attempts.push(attempt);
    }
    attempts.sort_by_key(|a| a.index);
    Push { launches, attempts }
}

/// A new connection through the client's SOCKS port `socks` gets the
/// origin's response head, without waiting out V2Ray's hold of the finished
/// connection: a user on the core is answered in milliseconds. A refused
/// connection is closed at once or, when V2Ray drains it, fails at the
/// [`REFUSED_PROBE_TIMEOUT`]; only its start says when the cut-off came.
async fn gets_through(socks: SocketAddr, origin: SocketAddr) -> anyhow::Result<()> {
    tokio::time::timeout(REFUSED_PROBE_TIMEOUT, response_head(socks, origin))
        .await
        .context("no response head in time")?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_expires_at_her_expiry_second_and_is_cut_off() {
    const USER: &str = "erica";
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        node_sync_interval_ms: Some(EXPIRY_INTERVAL_MS),
        ..Default::default()
    })
    .await
    .expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let _node = connected_node(&cp, "n-enforce-expiry", &v2ray_bin()).await;

    let expire = unix_now_ms() / 1000 + EXPIRE_IN_SECS;
    let expire_ms = expire * 1000;
    let created_ms = unix_now_ms();
    let erica = cp
        .create_user(&json!({
            "username": USER,
            "proxies": {"vmess": {}},
            "data_limit": 0,
            "expire": expire,
            "status": "active",
        }))
        .await
        .expect("POST /api/user");
    assert_eq!(erica["expire"], expire, "{erica}");
    assert_eq!(erica["status"], "active", "{erica}");
    let client = client(&link_to(
        &links_of(&cp, &erica).await,
        Protocol::Vmess,
        cp.core.vmess_port,
    ))
    .await;
    // Her traffic gets through before her expiry.
    let until_expiry = Duration::from_millis((expire_ms - unix_now_ms()).max(0) as u64);
    wait_until(until_expiry, "erica's traffic before her expiry", || {
        gets_through(client.socks, origin.addr)
    })
    .await
    .unwrap_or_else(|e| panic!("erica must get through before her expiry second {expire}: {e:#}"));
    let through_ms = unix_now_ms();
    assert!(
        through_ms < expire_ms,
        "erica first got through {} ms after her expiry second",
        through_ms - expire_ms
    );
    eprintln!(
        "expiry: erica created at unix {created_ms} ms with expire {expire} s; she got through \
         {} ms before it",
        expire_ms - through_ms
    );

    // From now until she is `expired` and refused (or well past the bound,
    // to report how late), two looks every poll, side by side: her status,
    // and a new connection.
    let statuses: Mutex<Vec<(i64, i64, String)>> = Mutex::default();
    let probes: Mutex<Vec<(i64, i64, Option<String>)>> = Mutex::default();
    let look_until = expire_ms + EXPIRY_BOUND_MS + 2_000;
    let look_for = Duration::from_millis((look_until - unix_now_ms()).max(0) as u64);
    let (expired, refused) = tokio::join!(
        wait_until(look_for, "erica's status to change", || async {
            let sent = unix_now_ms();
            let user = cp.get_user(USER).await?;
            let answered = unix_now_ms();
            let status = user["status"].as_str().unwrap_or_default().to_string();
            statuses
                .lock()
                .unwrap()
                .push((sent, answered, status.clone()));
            ensure!(
                status != "active",
                "still `active` {} ms after her expiry second",
                answered - expire_ms
            );
            Ok(())
        }),
        wait_until(
            look_for,
            "a new connection of erica's to be refused",
            || async {
                let started = unix_now_ms();
                let probe = gets_through(client.socks, origin.addr).await;
                let ended = unix_now_ms();
                let refused = probe.is_err();
                probes.lock().unwrap().push((
                    started,
                    ended,
                    probe.err().map(|e| format!("{e:#}")),
                ));
                ensure!(
                    refused,
                    "she got through {} ms after her expiry second",
                    ended - expire_ms
                );
                Ok(())
            }
        ),
    );
    for line in cp
        .process
        .output_text()
        .lines()
        .filter(|l| l.contains("changed on time"))
    {
        eprintln!("expiry: control plane: {line}");
    }
    let statuses = statuses.into_inner().unwrap();
    let probes = probes.into_inner().unwrap();

    // Status: `active` before her expiry second, then `expired`.
    if let Err(e) = &expired {
        panic!("erica never left `active`: {e:#}");
    }
    let (expired_sent, expired_seen, status) = statuses.last().cloned().unwrap();
    assert_eq!(
        status,
        "expired",
        "erica's status after `active`, {} ms after her expiry second",
        expired_seen - expire_ms
    );
    let active_before = statuses
        .iter()
        .filter(|(_, answered, s)| s == "active" && *answered < expire_ms)
        .count();
    assert!(
        active_before > 0,
        "no look at erica's status was answered before her expiry second"
    );
    let last_active_sent = statuses[statuses.len().saturating_sub(2)].0;

    // Connections: through before her expiry second, refused from it on.
    if let Err(e) = &refused {
        panic!("erica was never refused: {e:#}");
    }
    let (refused_started, refused_ended, refused_error) = probes.last().cloned().unwrap();
    let last_through = probes.len().checked_sub(2).map(|i| probes[i].0 - expire_ms);

    let expiry_to_expired = expired_seen - expire_ms;
    let expiry_to_cutoff = refused_started - expire_ms;
    eprintln!(
        "expiry: {active_before} looks answered `active` before the expiry second; the last \
         `active` look was sent at {} ms, the first `expired` one sent at {} ms and answered at \
         {} ms (relative to the expiry second)",
        last_active_sent - expire_ms,
        expired_sent - expire_ms,
        expiry_to_expired
    );
    eprintln!(
        "expiry: last connection through started at {} ms; first refused one started at {} ms, \
         ended at {} ms: {}",
        last_through.map_or("-".into(), |t| t.to_string()),
        expiry_to_cutoff,
        refused_ended - expire_ms,
        refused_error.as_deref().unwrap_or_default()
    );
    eprintln!("expiry-to-expired: {expiry_to_expired} ms (interval {EXPIRY_INTERVAL_MS} ms)");
    eprintln!("expiry-to-cutoff: {expiry_to_cutoff} ms (interval {EXPIRY_INTERVAL_MS} ms)");

    assert!(
        expired_seen >= expire_ms,
        "erica showed `expired` {} ms before her expiry second",
        expire_ms - expired_seen
    );
    assert!(
        refused_ended >= expire_ms,
        "erica was refused {} ms before her expiry second: {}",
        expire_ms - refused_ended,
        refused_error.as_deref().unwrap_or_default()
    );
    assert!(
        expiry_to_expired <= EXPIRY_BOUND_MS,
        "erica showed `expired` only {expiry_to_expired} ms after her expiry second (bound \
         {EXPIRY_BOUND_MS} ms; node sync interval {EXPIRY_INTERVAL_MS} ms)"
    );
    assert!(
        expiry_to_cutoff <= EXPIRY_BOUND_MS,
        "erica was refused only {expiry_to_cutoff} ms after her expiry second (bound \
         {EXPIRY_BOUND_MS} ms; node sync interval {EXPIRY_INTERVAL_MS} ms)"
    );
    // And she stays refused.
    wait_cut_off(&client, &origin, "expired erica", CONVERGE)
        .await
        .unwrap();
}
