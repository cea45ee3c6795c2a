//! What GET /api/system reports, read without scanning the users table:
//! per-owner status counts kept by triggers (migration 0004), an index range
//! count for users online, and the nodes' traffic totals.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Store, StoreError, now};

/// Users seen within this many seconds count as online (Marzban: 24 hours).
pub const ONLINE_WINDOW_SECS: i64 = 24 * 3600;

/// How long an online count is served before it is recounted in the
/// background. Counting 100,000 users takes PostgreSQL longer than a
/// dashboard poll should wait; a 24-hour figure a few seconds old is as good.
const ONLINE_FRESH_FOR: Duration = Duration::from_secs(10);

/// Traffic speeds are averaged over at least this long: usage arrives in
/// node-sync batches, so shorter windows would swing between 0 and bursts.
const SPEED_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserCounts {
    pub total: i64,
    pub active: i64,
    pub on_hold: i64,
    pub disabled: i64,
    pub expired: i64,
    pub limited: i64,
}

impl UserCounts {
    fn add(&mut self, status: &str, n: i64) {
        self.total += n;
        match status {
            "active" => self.active += n,
            "on_hold" => self.on_hold += n,
            "disabled" => self.disabled += n,
            "expired" => self.expired += n,
            "limited" => self.limited += n,
            _ => {}
        }
    }
}

/// Proxy traffic through all nodes: totals, and bytes per second recently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    pub uplink: i64,
    pub downlink: i64,
    pub uplink_speed: i64,
    pub downlink_speed: i64,
}

struct OnlineEntry {
    value: i64,
    at: Instant,
    refreshing: bool,
}

/// Per-database figures kept between calls.
#[derive(Default)]
pub(crate) struct SystemCache {
    /// Online counts by owner (None: every user).
    online: Mutex<HashMap<Option<i64>, OnlineEntry>>,
    /// (when, uplink, downlink) samples of the nodes' totals.
    traffic: Mutex<VecDeque<(Instant, i64, i64)>>,
}

impl Store {
    /// Users by status, all of them or those `admin_id` owns: a read of the
    /// trigger-maintained counts, never of the users.
    pub async fn user_counts(&self, admin_id: Option<i64>) -> Result<UserCounts, StoreError> {
        let rows: Vec<(String, i64)> = match admin_id {
            None => {
                sqlx::query_as(
                    "SELECT status, CAST(SUM(n) AS BIGINT) FROM user_counts GROUP BY status",
                )
                .fetch_all(&self.pool)
                .await?
            }
            Some(id) => {
                sqlx::query_as("SELECT status, n FROM user_counts WHERE admin_id = $1")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut counts = UserCounts::default();
        for (status, n) in rows {
            counts.add(&status, n);
        }
        Ok(counts)
    }

    /// The same figures counted from the users table itself: a full scan,
    /// for checking the maintained counts, never for serving them.
    pub async fn user_counts_by_scan(
        &self,
        admin_id: Option<i64>,
    ) -> Result<UserCounts, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, CAST(COUNT(*) AS BIGINT) FROM users \
             WHERE $1 = 0 OR admin_id = $2 GROUP BY status",
        )
        .bind(i64::from(admin_id.is_some()))
        .bind(admin_id.unwrap_or(0))
        .fetch_all(&self.pool)
        .await?;
        let mut counts = UserCounts::default();
        for (status, n) in rows {
            counts.add(&status, n);
        }
        Ok(counts)
    }

    /// Users online within the last 24 hours (all, or those `admin_id`
    /// owns). A count older than a few seconds is served while a fresh one
    /// is taken in the background, so no index has to follow `online_at`
    /// through every usage collection.
    pub async fn online_users(&self, admin_id: Option<i64>) -> Result<i64, StoreError> {
        {
            let mut cache = self.system.online.lock().expect("online cache poisoned");
            if let Some(entry) = cache.get_mut(&admin_id) {
                if entry.at.elapsed() >= ONLINE_FRESH_FOR && !entry.refreshing {
                    entry.refreshing = true;
                    let store = self.clone();
                    tokio::spawn(async move { store.recount_online(admin_id).await });
                }
                return Ok(entry.value);
            }
        }
        let value = self.count_online(admin_id).await?;
        self.system
            .online
            .lock()
            .expect("online cache poisoned")
            .insert(
                admin_id,
                OnlineEntry {
                    value,
                    at: Instant::now(),
                    refreshing: false,
                },
            );
        Ok(value)
    }

    async fn recount_online(&self, admin_id: Option<i64>) {
        let counted = self.count_online(admin_id).await;
        let mut cache = self.system.online.lock().expect("online cache poisoned");
        let Some(entry) = cache.get_mut(&admin_id) else {
            return;
        };
        entry.refreshing = false;
        match counted {
            Ok(value) => {
                entry.value = value;
                entry.at = Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "counting online users"),
        }
    }

    async fn count_online(&self, admin_id: Option<i64>) -> Result<i64, StoreError> {
        let since = now() - ONLINE_WINDOW_SECS;
        let query = match admin_id {
            None => sqlx::query_scalar::<_, i64>(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM user_traffic WHERE online_at >= $1",
            )
            .bind(since),
            Some(id) => sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM users u \
                 JOIN user_traffic t ON t.user_id = u.id WHERE u.admin_id = $1 AND t.online_at >= $2",
            )
            .bind(id)
            .bind(since),
        };
        Ok(query.fetch_one(&self.pool).await?)
    }

    /// The nodes' traffic totals and how fast they grew lately (bytes per
    /// second over about the last ten seconds; 0 on the first call).
    pub async fn traffic(&self) -> Result<Traffic, StoreError> {
        let (uplink, downlink): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(uplink), 0) AS BIGINT), \
             CAST(COALESCE(SUM(downlink), 0) AS BIGINT) FROM nodes",
        )
        .fetch_one(&self.pool)
        .await?;
        let at = Instant::now();
        let mut samples = self
            .system
            .traffic
            .lock()
            .expect("traffic samples poisoned");
        // One sample a second at most keeps the window's history small.
        if samples
            .back()
            .is_none_or(|(last, _, _)| at.duration_since(*last) >= Duration::from_secs(1))
        {
            samples.push_back((at, uplink, downlink));
        }
        // Keep the newest sample at least a window old as the base.
        while samples
            .get(1)
            .is_some_and(|(t, _, _)| at.duration_since(*t) >= SPEED_WINDOW)
        {
            samples.pop_front();
        }
        let (base_at, base_up, base_down) = samples[0];
        let secs = at.duration_since(base_at).as_secs_f64();
        // Totals shrink when a node is deleted; that is not negative traffic.
        let speed = |now: i64, then: i64| {
            if secs < 1.0 {
                0
            } else {
                ((now - then).max(0) as f64 / secs).round() as i64
            }
        };
        Ok(Traffic {
            uplink,
            downlink,
            uplink_speed: speed(uplink, base_up),
            downlink_speed: speed(downlink, base_down),
        })
    }
}
