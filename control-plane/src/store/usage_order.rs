//! The key the users list sorts by usage on: `user_traffic_order`, a copy
//! of each user's `used_traffic`.
//!
//! Usage ingestion adds to `user_traffic` only; with the sort index there,
//! every collection moved each of its users in that index, the largest part
//! of applying a batch. The copy follows ingestion once per usage-history
//! fold ([`Store::refresh_usage_order`]), however many collections arrived
//! meanwhile, so a list sorted by usage may order users by what they had
//! used a fold ago. Direct changes (a reset, a next plan) write it in their
//! own transaction.

use super::{Backend, Store, StoreError};

/// Users brought up to date per transaction: SQLite's write lock is held
/// for a fraction of a second at most.
const REFRESH_CHUNK: i64 = 20_000;

impl Store {
    /// Copies every changed `used_traffic` into the sort key, in chunks of
    /// user ids. Returns how many users' keys changed.
    pub async fn refresh_usage_order(&self) -> Result<u64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(user_id) FROM user_traffic_order")
            .fetch_one(&self.pool)
            .await?;
        let Some(last) = last else { return Ok(0) };
        // PostgreSQL: rows a user change holds are skipped (that change
        // writes the key itself), so this never waits on a lock and cannot
        // take part in a deadlock; the next refresh catches up.
        let rows = match self.backend {
            Backend::Postgres => {
                "user_traffic_order.user_id IN (SELECT o.user_id FROM user_traffic_order o \
                 JOIN user_traffic t ON t.user_id = o.user_id \
                 WHERE o.user_id > $1 AND o.user_id <= $2 AND o.used_traffic <> t.used_traffic \
                 FOR UPDATE OF o SKIP LOCKED)"
            }
            // One writer at a time: nothing to skip.
            Backend::Sqlite => {
                "user_traffic_order.user_id > $1 AND user_traffic_order.user_id <= $2 \
                 AND user_traffic_order.used_traffic <> t.used_traffic"
            }
        };
        let sql = format!(
            "UPDATE user_traffic_order SET used_traffic = t.used_traffic FROM user_traffic t \
             WHERE t.user_id = user_traffic_order.user_id AND {rows}"
        );
        let mut changed = 0;
        let mut after = 0;
        while after < last {
            let mut tx = self.begin_write().await?;
            changed += sqlx::query(&sql)
                .bind(after)
                .bind(after + REFRESH_CHUNK)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            after += REFRESH_CHUNK;
        }
        Ok(changed)
    }
}
