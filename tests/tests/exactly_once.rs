//! Usage is counted exactly once through crashes: a subscriber's client
//! pushes traffic without pause while the agent is killed (-9) and comes
//! back, the control plane is killed (-9) and comes back, the control plane
//! stays down for many journal intervals, and the core is killed (-9), each
//! several times. At the end the control plane's `used_traffic` equals,
//! byte for byte, what the core counted across all its runs, read by the
//! test from the core's own stats API.
//!
//! The one loss the design admits is what a core counted after the agent's
//! last reading when the core itself dies (its counters die with it). The
//! test accounts for it explicitly: before killing the core it pauses the
//! traffic, reads the core's final counters itself and waits until the
//! agent's journal holds them, so the loss is zero by construction and the
//! run's total is known exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::ensure;
use nexpoint_tests::agent_state::{journal_baseline, live_core};
use nexpoint_tests::control_plane_restart::restart_control_plane;
use nexpoint_tests::core_stats::traffic_of;
use nexpoint_tests::links::Protocol;
use nexpoint_tests::node::Node;
use nexpoint_tests::paths::v2ray_bin;
use nexpoint_tests::socks::download;
use nexpoint_tests::steps::{
    CONVERGE, TRANSFER_TIMEOUT, client, connected_node, core_traffic, link_to, links_of,
    wait_billed_exactly, wait_reachable,
};
use nexpoint_tests::{ControlPlane, TestHttpServer, wait_until};
use tokio::sync::{Mutex, OwnedMutexGuard};

const USER: &str = "ursula";
/// Payload of each download; each is a new connection.
const CHUNK: usize = 50_000;
/// Rounds of the four disruptions.
const ROUNDS: usize = 2;
/// Transfers to see completing between disruptions.
const PROGRESS: u64 = 2;
/// The control plane's node sync interval (the harness default).
const NODE_SYNC_INTERVAL_MS: u64 = 250;

/// A client pushing downloads one after another until dropped. The test
/// pauses it by holding its gate, which it takes for every download.
struct Pump {
    gate: Arc<Mutex<()>>,
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Pump {
    fn start(socks: std::net::SocketAddr, origin: std::net::SocketAddr) -> Self {
        let gate = Arc::new(Mutex::new(()));
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (gate, done, failed) = (gate.clone(), done.clone(), failed.clone());
            async move {
                loop {
                    let _turn = gate.lock().await;
                    // A download cut short by a dying core fails; the bytes
                    // it moved were still counted by the core.
                    match download(socks, origin, CHUNK, TRANSFER_TIMEOUT).await {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
        });
        Self {
            gate,
            done,
            failed,
            task,
        }
    }

    /// Waits until `PROGRESS` more downloads completed: traffic flows.
    async fn flows(&self, during: &str) {
        let from = self.done.load(Ordering::Relaxed);
        wait_until(CONVERGE, &format!("traffic to flow {during}"), || async {
            let now = self.done.load(Ordering::Relaxed);
            ensure!(
                now >= from + PROGRESS,
                "{} of {PROGRESS} downloads",
                now - from
            );
            Ok(())
        })
        .await
        .unwrap();
    }

    /// Holds the gate: returns once no download is in flight.
    async fn pause(&self) -> OwnedMutexGuard<()> {
        self.gate.clone().lock_owned().await
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bytes of `USER` in the core whose API listens on `api_port`.
async fn core_total(api_port: u16) -> i64 {
    core_traffic(api_port, USER).await.unwrap()
}

/// Waits until the agent's journal baseline holds exactly `total` bytes of
/// `USER` for the core run `instance`: the agent has read every byte.
async fn journaled(node: &Node, instance: &str, total: i64) {
    wait_until(
        CONVERGE,
        "the agent to journal the core's counters",
        || async {
            let baseline = journal_baseline(node)?;
            let (up, down) = traffic_of(&baseline.counters, &format!(".{USER}>>>"));
            ensure!(
                baseline.core_run == instance && up + down == total,
                "baseline of run {} holds {} of {total}",
                baseline.core_run,
                up + down
            );
            Ok(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_is_counted_exactly_once_through_kills_and_outages() {
    let mut cp = ControlPlane::start().await.expect("control plane starts");
    let origin = TestHttpServer::start().await.unwrap();
    let mut node = connected_node(&cp, "n-chaos", &v2ray_bin()).await;
    let user = cp
        .create_simple_user(USER, &["vmess"])
        .await
        .expect("POST /api/user");
    let links = links_of(&cp, &user).await;
    let link = link_to(&links, Protocol::Vmess, cp.core.vmess_port);
    let client = client(&link).await;
    wait_reachable(&client, &origin, USER, CONVERGE)
        .await
        .unwrap();
    let pump = Pump::start(client.socks, origin.addr);
    pump.flows("at the start").await;

    // Bytes of the core runs that ended (killed by the test).
    let mut ended_runs = 0_i64;
    let mut core_kills = 0;
    for round in 1..=ROUNDS {
        // The agent dies; its core goes on serving and counting, and the
        // next agent adopts it.
        let status = node.kill_agent().await.expect("agent killed");
        eprintln!("round {round}: agent killed ({status})");
        pump.flows("while the agent is dead").await;
        node.restart_agent().await.expect("agent starts again");
        node.wait_connected(&cp, CONVERGE)
            .await
            .expect("node connected again");
        pump.flows("after the agent's return").await;

        // The control plane dies mid-collection, as a crash would take it.
        let status = cp.process.kill().await.expect("control plane killed");
        eprintln!("round {round}: control plane killed ({status})");
        pump.flows("while the control plane is dead").await;
        restart_control_plane(&mut cp, NODE_SYNC_INTERVAL_MS)
            .await
            .expect("control plane starts again");
        pump.flows("after the control plane's return").await;

        // The control plane stays away while the agent journals several
        // times (its interval is 500 ms; each reading moves the baseline).
        cp.stop().await.expect("control plane stops");
        let readings = std::sync::Mutex::new(Vec::new());
        wait_until(
            CONVERGE,
            "three journal readings while the control plane is down",
            || async {
                let baseline = journal_baseline(&node)?;
                let (up, down) = traffic_of(&baseline.counters, &format!(".{USER}>>>"));
                let mut readings = readings.lock().unwrap();
                if readings.last() != Some(&(up + down)) {
                    readings.push(up + down);
                }
                ensure!(readings.len() > 3, "readings so far: {readings:?}");
                Ok(())
            },
        )
        .await
        .unwrap();
        eprintln!(
            "round {round}: journal readings during the outage: {:?}",
            readings.lock().unwrap()
        );
        restart_control_plane(&mut cp, NODE_SYNC_INTERVAL_MS)
            .await
            .expect("control plane starts again after the outage");
        pump.flows("after the outage").await;

        // The core dies. Its counters die with it: close the window first.
        let paused = pump.pause().await;
        let run = live_core(&node).unwrap();
        let final_total = core_total(run.api_port).await;
        journaled(&node, &run.instance, final_total).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(run.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        core_kills += 1;
        ended_runs += final_total;
        eprintln!(
            "round {round}: core pid {} killed after counting {final_total} bytes (none unread)",
            run.pid
        );
        wait_until(CONVERGE, "the agent to restart its core", || async {
            let next = live_core(&node)?;
            ensure!(next.instance != run.instance, "still run {}", run.instance);
            Ok(())
        })
        .await
        .unwrap();
        drop(paused);
        pump.flows("after the core's restart").await;
    }

    // Stop the traffic and compare.
    let _stopped = pump.pause().await;
    let run = live_core(&node).unwrap();
    let current = core_total(run.api_port).await;
    let expected = ended_runs + current;
    eprintln!(
        "{} downloads done, {} cut short; {core_kills} core runs ended with {ended_runs} bytes, \
         the current one counted {current}: expecting {expected}",
        pump.done.load(Ordering::Relaxed),
        pump.failed.load(Ordering::Relaxed)
    );
    wait_billed_exactly(&cp, USER, expected, CONVERGE)
        .await
        .unwrap();
    // And nothing arrives late: one more collection changes nothing.
    journaled(&node, &run.instance, current).await;
    let node_id = node.id();
    wait_until(CONVERGE, "the node to be connected", || async {
        let n = cp.node(node_id).await?;
        ensure!(n["status"] == "connected", "{n}");
        Ok(())
    })
    .await
    .unwrap();
    wait_billed_exactly(&cp, USER, expected, CONVERGE)
        .await
        .unwrap();
}
