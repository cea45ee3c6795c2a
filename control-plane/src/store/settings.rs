use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Store, StoreError};
use crate::domain::{Inbound, parse_inbounds};

/// How long a read of the core config is reused. Writes through this
/// process refresh it at once; another replica's write shows within this.
const CONFIG_FRESH_FOR: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct CachedConfig {
    at: Instant,
    value: Option<(String, i64)>,
    inbounds: Arc<Vec<Inbound>>,
}

#[derive(Default)]
pub(crate) struct ConfigCache(Mutex<Option<CachedConfig>>);

impl ConfigCache {
    pub(crate) fn clear(&self) {
        *self.0.lock().expect("config cache poisoned") = None;
    }

    fn fresh(&self) -> Option<CachedConfig> {
        let cached = self.0.lock().expect("config cache poisoned").clone()?;
        (cached.at.elapsed() < CONFIG_FRESH_FOR).then_some(cached)
    }

    /// Caches the default template; the inbounds offered to users are its
    /// own followed by those only nodes' own templates have (first tag wins).
    fn put(&self, value: Option<(String, i64)>, node_templates: &[String]) -> CachedConfig {
        // A stored template always parsed when it was written; an unreadable
        // one (edited by hand) offers no inbounds rather than failing reads.
        let mut inbounds: Vec<Inbound> = value
            .as_ref()
            .map(|(json, _)| parse_inbounds(json).unwrap_or_default())
            .unwrap_or_default();
        for template in node_templates {
            for inbound in parse_inbounds(template).unwrap_or_default() {
                if !inbounds.iter().any(|i| i.tag == inbound.tag) {
                    inbounds.push(inbound);
                }
            }
        }
        let cached = CachedConfig {
            at: Instant::now(),
            value,
            inbounds: Arc::new(inbounds),
        };
        *self.0.lock().expect("config cache poisoned") = Some(cached.clone());
        cached
    }
}

pub const CORE_CONFIG: &str = "core_config";

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Returns the stored value, storing `make()` first if there is none.
    /// Concurrent first calls agree on one value.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        if let Some(v) = self.setting(key).await? {
            return Ok(v);
        }
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(make())
        .execute(&self.pool)
        .await?;
        self.setting(key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("setting {key} vanished")))
    }

    /// The default core config template and the revision that last changed it.
    pub async fn core_config(&self) -> Result<Option<(String, i64)>, StoreError> {
        Ok(self.cached_config().await?.value)
    }

    /// The user-carrying inbounds of the default core config template, then
    /// those of nodes' own templates that the default lacks.
    pub async fn inbounds(&self) -> Result<Arc<Vec<Inbound>>, StoreError> {
        Ok(self.cached_config().await?.inbounds)
    }

    async fn cached_config(&self) -> Result<CachedConfig, StoreError> {
        if let Some(cached) = self.config.fresh() {
            return Ok(cached);
        }
        let value = match self.setting(CORE_CONFIG).await? {
            Some(value) => Some(
                serde_json::from_str::<(String, i64)>(&value)
                    .map_err(|e| StoreError::Corrupt(format!("core config setting: {e}")))?,
            ),
            None => None,
        };
        let node_templates: Vec<String> =
            sqlx::query_scalar("SELECT core_config FROM nodes WHERE core_config IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        Ok(self.config.put(value, &node_templates))
    }

    /// Replaces the core config template; a change bumps the revision so
    /// every node re-renders its core. Storing the same text is a no-op.
    pub async fn set_core_config(&self, json: &str) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(CORE_CONFIG)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(current) = current {
            let (text, revision): (String, i64) = serde_json::from_str(&current)
                .map_err(|e| StoreError::Corrupt(format!("core config setting: {e}")))?;
            if text == json {
                return Ok(revision);
            }
        }
        let revision = super::revision::bump(&mut tx).await?;
        let value = serde_json::to_string(&(json, revision)).expect("strings serialize");
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(CORE_CONFIG)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.config.clear();
        Ok(revision)
    }
}
