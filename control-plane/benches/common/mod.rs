//! What the control-plane benchmarks share: a fresh database on either
//! backend, dropped afterwards, and percentiles.
#![allow(dead_code)] // Each bench uses its own subset.

use std::time::Duration;

use sqlx::Connection;

/// A database to run a benchmark on.
pub struct Target {
    pub name: &'static str,
    pub url: String,
    /// (admin URL, database name) of a PostgreSQL database to drop.
    cleanup: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// SQLite in a temporary directory.
pub async fn sqlite() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    Target {
        name: "SQLite",
        url,
        cleanup: None,
        _dir: dir,
    }
}

/// A new database on the PostgreSQL server at NEXPOINT_TEST_POSTGRES_URL.
pub async fn postgres() -> Target {
    let admin_url = std::env::var("NEXPOINT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    sqlx::any::install_default_drivers();
    let name = format!("nexpoint_bench_{}", hex::encode(rand::random::<[u8; 4]>()));
    let mut conn = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Target {
        name: "PostgreSQL",
        url: format!("{base}/{name}"),
        cleanup: Some((admin_url, name)),
        _dir: tempfile::tempdir().unwrap(),
    }
}

impl Target {
    /// Drops the PostgreSQL database (the SQLite one goes with its directory).
    pub async fn drop_database(&self) {
        if let Some((admin_url, name)) = &self.cleanup {
            let mut conn = sqlx::AnyConnection::connect(admin_url).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// The `p` quantile of sorted durations (zero for none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
