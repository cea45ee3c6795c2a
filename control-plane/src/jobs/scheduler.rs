//! Periodic jobs on tokio-cron-scheduler, with a registry of how each last
//! ran. A job still running when its next tick comes is not started again
//! (the tick is counted as skipped); a job that fails is logged with its
//! cause and simply runs again at the next tick.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::store::now;

/// What one run did: a summary for the registry, or why it failed.
pub type JobRun = Pin<Box<dyn Future<Output = anyhow::Result<String>> + Send>>;

/// A job: its name, how often it runs, and the work of one run.
pub struct PeriodicJob {
    pub name: &'static str,
    pub every: Duration,
    pub run: Box<dyn Fn() -> JobRun + Send + Sync>,
}

/// How a job last ran, as `GET /api/jobs` shows it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub name: String,
    pub interval_seconds: u64,
    pub running: bool,
    pub runs: u64,
    pub failures: u64,
    /// Ticks that came while the previous run was still going.
    pub skipped_overlaps: u64,
    /// Unix seconds.
    pub last_started_at: Option<i64>,
    pub last_finished_at: Option<i64>,
    pub last_duration_ms: Option<u64>,
    /// `ok` or `error`.
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub last_summary: Option<String>,
}

/// The status of every registered job, shared with the API.
#[derive(Debug, Clone, Default)]
pub struct JobRegistry(Arc<Mutex<BTreeMap<&'static str, JobStatus>>>);

impl JobRegistry {
    pub fn statuses(&self) -> Vec<JobStatus> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, JobStatus>> {
        // A panic while holding the lock leaves plain counters behind:
        // still worth showing.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut JobStatus)) {
        f(self.lock().entry(name).or_default());
    }

    /// Runs `job` once unless it is already running; records the outcome.
    async fn run_once(&self, job: &PeriodicJob, running: &AtomicBool) {
        if running.swap(true, Ordering::AcqRel) {
            tracing::warn!(job = job.name, "previous run still going; tick skipped");
            self.update(job.name, |s| s.skipped_overlaps += 1);
            return;
        }
        let started = Instant::now();
        self.update(job.name, |s| {
            s.running = true;
            s.last_started_at = Some(now());
        });
        let outcome = (job.run)().await;
        let elapsed = started.elapsed();
        running.store(false, Ordering::Release);
        if let Err(e) = &outcome {
            tracing::warn!(
                job = job.name,
                error = format!("{e:#}"),
                "job failed; next tick retries"
            );
        }
        self.update(job.name, |s| {
            s.running = false;
            s.runs += 1;
            s.last_finished_at = Some(now());
            s.last_duration_ms = Some(elapsed.as_millis() as u64);
            match outcome {
                Ok(summary) => {
                    s.last_outcome = Some("ok".into());
                    s.last_error = None;
                    s.last_summary = Some(summary);
                }
                Err(e) => {
                    s.failures += 1;
                    s.last_outcome = Some("error".into());
                    s.last_error = Some(format!("{e:#}"));
                }
            }
        });
    }
}

/// Registers `jobs` and starts ticking them; shut the returned scheduler
/// down to stop.
pub async fn start(registry: &JobRegistry, jobs: Vec<PeriodicJob>) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    for job in jobs {
        registry.update(job.name, |s| {
            s.name = job.name.to_owned();
            s.interval_seconds = job.every.as_secs();
        });
        let job = Arc::new(job);
        let running = Arc::new(AtomicBool::new(false));
        let registry = registry.clone();
        let every = job.every;
        scheduler
            .add(Job::new_repeated_async(every, move |_, _| {
                let (job, running, registry) = (job.clone(), running.clone(), registry.clone());
                Box::pin(async move { registry.run_once(&job, &running).await })
            })?)
            .await?;
    }
    scheduler.start().await?;
    Ok(scheduler)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(run: impl Fn() -> JobRun + Send + Sync + 'static) -> PeriodicJob {
        PeriodicJob {
            name: "test",
            every: Duration::from_secs(1),
            run: Box::new(run),
        }
    }

    #[tokio::test]
    async fn outcomes_are_recorded_and_failures_keep_their_cause() {
        let registry = JobRegistry::default();
        let running = AtomicBool::new(false);
        let ok = job(|| Box::pin(async { Ok("3 rows".to_owned()) }));
        registry.run_once(&ok, &running).await;
        let failing = job(|| Box::pin(async { Err(anyhow::anyhow!("disk full")) }));
        registry.run_once(&failing, &running).await;
        let s = &registry.statuses()[0];
        assert_eq!((s.runs, s.failures), (2, 1));
        assert_eq!(s.last_outcome.as_deref(), Some("error"));
        assert_eq!(s.last_error.as_deref(), Some("disk full"));
        assert_eq!(s.last_summary.as_deref(), Some("3 rows"));
        assert!(!s.running);
    }

    #[tokio::test]
    async fn a_run_in_progress_is_not_started_again() {
        let registry = JobRegistry::default();
        let running = AtomicBool::new(true);
        let job = job(|| Box::pin(async { panic!("must not run") }));
        registry.run_once(&job, &running).await;
        let s = &registry.statuses()[0];
        assert_eq!((s.runs, s.skipped_overlaps), (0, 1));
    }
}
