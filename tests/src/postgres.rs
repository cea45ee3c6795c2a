//! A fresh PostgreSQL database per test, on the server named by
//! `NEXPOINT_TEST_POSTGRES_URL` (default: the local server with trust auth).

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDatabase {
    /// The URL of the new database, for `--database-url`.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Result<Self> {
        let admin_url = std::env::var("NEXPOINT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let name = format!("nexpoint_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.with_context(|| {
            format!("PostgreSQL at {admin_url} is required (set NEXPOINT_TEST_POSTGRES_URL)")
        })?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let (base, _) = admin_url
            .split('?')
            .next()
            .unwrap_or_default()
            .rsplit_once('/')
            .context("NEXPOINT_TEST_POSTGRES_URL has no /database")?;
        Ok(Self {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }

    /// Drops the database (after the control plane using it has stopped).
    pub async fn drop_database(self) -> Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(())
    }
}
