//! User templates: presets (limits, name affixes, inbounds) that panels and
//! bots apply when they create users. Nothing here reaches the cores.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now};
use crate::domain::ProxyProtocol;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTemplate {
    pub id: i64,
    pub name: String,
    pub data_limit: Option<i64>,
    pub expire_duration: Option<i64>,
    pub username_prefix: Option<String>,
    pub username_suffix: Option<String>,
    /// Inbound tags by protocol; empty means every inbound.
    pub inbounds: BTreeMap<ProxyProtocol, Vec<String>>,
}

/// Every stored field of a template but its id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateFields {
    pub name: String,
    pub data_limit: Option<i64>,
    pub expire_duration: Option<i64>,
    pub username_prefix: Option<String>,
    pub username_suffix: Option<String>,
    pub inbounds: BTreeMap<ProxyProtocol, Vec<String>>,
}

impl UserTemplate {
    pub fn fields(&self) -> TemplateFields {
        TemplateFields {
            name: self.name.clone(),
            data_limit: self.data_limit,
            expire_duration: self.expire_duration,
            username_prefix: self.username_prefix.clone(),
            username_suffix: self.username_suffix.clone(),
            inbounds: self.inbounds.clone(),
        }
    }
}

impl<'r> sqlx::FromRow<'r, AnyRow> for UserTemplate {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let inbounds: String = row.try_get("inbounds")?;
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            data_limit: row.try_get("data_limit")?,
            expire_duration: row.try_get("expire_duration")?,
            username_prefix: row.try_get("username_prefix")?,
            username_suffix: row.try_get("username_suffix")?,
            inbounds: serde_json::from_str(&inbounds).map_err(|e| sqlx::Error::ColumnDecode {
                index: "inbounds".into(),
                source: e.to_string().into(),
            })?,
        })
    }
}

const COLUMNS: &str =
    "id, name, data_limit, expire_duration, username_prefix, username_suffix, inbounds";

const DUPLICATE: &str = "Template by this name already exists";

fn inbounds_json(inbounds: &BTreeMap<ProxyProtocol, Vec<String>>) -> String {
    serde_json::to_string(inbounds).expect("maps serialize")
}

impl Store {
    pub async fn create_template(&self, t: &TemplateFields) -> Result<UserTemplate, StoreError> {
        sqlx::query_as(&format!(
            "INSERT INTO user_templates (name, name_lower, data_limit, expire_duration, \
             username_prefix, username_suffix, inbounds, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(&t.name)
        .bind(t.name.to_lowercase())
        .bind(t.data_limit)
        .bind(t.expire_duration)
        .bind(&t.username_prefix)
        .bind(&t.username_suffix)
        .bind(inbounds_json(&t.inbounds))
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::unique(DUPLICATE))
    }

    pub async fn template(&self, id: i64) -> Result<Option<UserTemplate>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM user_templates WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Templates in creation order; `limit` None means no limit.
    pub async fn templates(
        &self,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<Vec<UserTemplate>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM user_templates ORDER BY id LIMIT $1 OFFSET $2"
        ))
        // Both backends need a LIMIT before OFFSET; the largest value is "none".
        .bind(limit.unwrap_or(i64::MAX))
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn update_template(
        &self,
        id: i64,
        t: &TemplateFields,
    ) -> Result<UserTemplate, StoreError> {
        sqlx::query_as(&format!(
            "UPDATE user_templates SET name = $1, name_lower = $2, data_limit = $3, \
             expire_duration = $4, username_prefix = $5, username_suffix = $6, inbounds = $7 \
             WHERE id = $8 RETURNING {COLUMNS}"
        ))
        .bind(&t.name)
        .bind(t.name.to_lowercase())
        .bind(t.data_limit)
        .bind(t.expire_duration)
        .bind(&t.username_prefix)
        .bind(&t.username_suffix)
        .bind(inbounds_json(&t.inbounds))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unique(DUPLICATE))?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete_template(&self, id: i64) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM user_templates WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
