//! Per-node state beyond the node row's basics: the node's own core config
//! template and the certificate rotation in progress.

use super::{Store, StoreError, now, revision};

/// A node's certificate as issued.
#[derive(Debug, Clone)]
pub struct IssuedNodeCertificate {
    pub pem: String,
    pub fingerprint: String,
    pub not_after: i64,
}

impl Store {
    /// The template the node's core is rendered from: its own, else the
    /// default; with the revision that last changed it.
    pub async fn node_core_config(
        &self,
        node_id: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let own: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT core_config, core_config_revision FROM nodes WHERE id = $1")
                .bind(node_id)
                .fetch_optional(&self.pool)
                .await?;
        match own {
            None => Err(StoreError::NotFound),
            Some((Some(text), Some(revision))) => Ok(Some((text, revision))),
            Some(_) => self.core_config().await,
        }
    }

    /// Whether the node runs its own template (`Some`) or the default.
    pub async fn node_own_core_config(&self, node_id: i64) -> Result<Option<String>, StoreError> {
        let own: Option<Option<String>> =
            sqlx::query_scalar("SELECT core_config FROM nodes WHERE id = $1")
                .bind(node_id)
                .fetch_optional(&self.pool)
                .await?;
        own.ok_or(StoreError::NotFound)
    }

    /// Gives the node its own template (`Some`) or returns it to the default
    /// (`None`), under a new revision so its task re-renders the core.
    pub async fn set_node_core_config(
        &self,
        node_id: i64,
        template: Option<&str>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let revision = revision::bump(&mut tx).await?;
        let updated = sqlx::query(
            "UPDATE nodes SET core_config = $1, core_config_revision = $2 WHERE id = $3",
        )
        .bind(template)
        .bind(template.map(|_| revision))
        .bind(node_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.config.clear();
        Ok(revision)
    }

    /// Pins the certificate signed for the node's next key beside the
    /// current one, so the node is trusted whichever it serves.
    pub async fn pin_next_node_certificate(
        &self,
        node_id: i64,
        next: &IssuedNodeCertificate,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE nodes SET next_certificate_pem = $1, next_certificate_fingerprint = $2, \
             next_certificate_not_after = $3 WHERE id = $4",
        )
        .bind(&next.pem)
        .bind(&next.fingerprint)
        .bind(next.not_after)
        .bind(node_id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The node serves its next certificate: it becomes the only one pinned.
    /// Nothing happens unless `fingerprint` is the pinned next one.
    pub async fn promote_next_node_certificate(
        &self,
        node_id: i64,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE nodes SET certificate_pem = next_certificate_pem, \
             certificate_fingerprint = next_certificate_fingerprint, \
             certificate_not_after = next_certificate_not_after, \
             next_certificate_pem = NULL, next_certificate_fingerprint = NULL, \
             next_certificate_not_after = NULL \
             WHERE id = $1 AND next_certificate_fingerprint = $2",
        )
        .bind(node_id)
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Asks the daemon's task for an enrolled node to rotate its certificate
    /// at its next pass. Returns the time of the request.
    pub async fn request_node_rotation(&self, node_id: i64) -> Result<i64, StoreError> {
        let now = now();
        let updated = sqlx::query("UPDATE nodes SET rotation_requested_at = $1 WHERE id = $2")
            .bind(now)
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(now)
    }

    /// Clears the rotation request made at `requested_at` or before, once
    /// carried out; a later request stays for the next pass.
    pub async fn clear_node_rotation_request(
        &self,
        node_id: i64,
        requested_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE nodes SET rotation_requested_at = NULL \
             WHERE id = $1 AND rotation_requested_at <= $2",
        )
        .bind(node_id)
        .bind(requested_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drops a next certificate the node never installed.
    pub async fn forget_next_node_certificate(&self, node_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE nodes SET next_certificate_pem = NULL, next_certificate_fingerprint = NULL, \
             next_certificate_not_after = NULL WHERE id = $1",
        )
        .bind(node_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pins a certificate the control plane issued itself (offline bundle):
    /// any pending token or rotation is void, and the node trusts nothing
    /// but this certificate from now on.
    pub async fn install_node_certificate(
        &self,
        node_id: i64,
        issued: &IssuedNodeCertificate,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE nodes SET certificate_pem = $1, certificate_fingerprint = $2, \
             certificate_not_after = $3, enrollment_token_hash = NULL, \
             enrollment_expires_at = NULL, next_certificate_pem = NULL, \
             next_certificate_fingerprint = NULL, next_certificate_not_after = NULL, \
             message = NULL, \
             status = CASE WHEN status = 'disabled' THEN status ELSE 'connecting' END \
             WHERE id = $4",
        )
        .bind(&issued.pem)
        .bind(&issued.fingerprint)
        .bind(issued.not_after)
        .bind(node_id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
