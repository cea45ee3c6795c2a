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

/// The real API router served on loopback over `store`, with a client
/// logged in as the bench's sudo admin (`bench` / `pw`, created by the
/// bench). Aborted when dropped.
pub struct ServedApi {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    server: tokio::task::JoinHandle<()>,
    _pki_dir: tempfile::TempDir,
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn serve_api(store: &nexpoint::store::Store) -> ServedApi {
    use std::sync::Arc;
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(nexpoint::pki::Pki::load_or_create(pki_dir.path()).unwrap());
    let state = nexpoint::api::AppState {
        store: store.clone(),
        jwt: nexpoint::api::JwtKeys::new("bench", 60),
        nodes: nexpoint::nodes::NodeManager::new(
            store.clone(),
            Arc::clone(&pki),
            Duration::from_secs(3600),
        ),
        pki,
        subscription_secret: "bench".into(),
        public_url: "http://127.0.0.1".into(),
        subscription_url_prefix: "".into(),
        enrollment_expire_minutes: 60,
        subscription: Default::default(),
        jobs: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, nexpoint::api::router(state))
            .await
            .unwrap();
    });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let token: serde_json::Value = client
        .post(format!("{base}/api/admin/token"))
        .form(&[("username", "bench"), ("password", "pw")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    ServedApi {
        base,
        client,
        token,
        server,
        _pki_dir: pki_dir,
    }
}
