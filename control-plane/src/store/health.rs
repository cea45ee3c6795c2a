//! Whether the database can serve: reachable, and every migration this
//! binary knows applied (another replica may run an older schema).

use super::{Backend, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Store, StoreError};

impl Store {
    /// Ok when a query answers and the schema is this binary's; the error
    /// names what is missing.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let expected = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let (applied,): (Option<i64>,) = sqlx::query_as(
            "SELECT CAST(MAX(version) AS BIGINT) FROM _sqlx_migrations WHERE success = TRUE",
        )
        .fetch_one(&self.pool)
        .await?;
        let applied = applied.unwrap_or(0);
        if applied < expected {
            return Err(StoreError::Config(format!(
                "database schema at migration {applied}, this binary needs {expected}"
            )));
        }
        Ok(())
    }
}
