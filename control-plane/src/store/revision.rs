use sqlx::{Any, Transaction};

use super::{Store, StoreError, User};

/// Bumps the desired-state revision inside the caller's transaction.
pub(crate) async fn bump(tx: &mut Transaction<'_, Any>) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value")
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// What changed for cores after some revision.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub revision: i64,
    /// Users changed after the base revision, in their current state (a user
    /// who is no longer served must be removed from cores).
    pub changed: Vec<User>,
    /// Emails of users deleted after the base revision.
    pub deleted_emails: Vec<String>,
}

impl Store {
    pub async fn current_revision(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Changes after `base`, read in one transaction so the revision matches
    /// the rows.
    pub async fn user_changes_since(&self, base: i64) -> Result<UserChanges, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revision: i64 = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let changed = super::users::changed_since(&mut tx, base).await?;
        let deleted_emails =
            sqlx::query_scalar("SELECT email FROM user_tombstones WHERE revision > $1")
                .bind(base)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(UserChanges {
            revision,
            changed,
            deleted_emails,
        })
    }
}
