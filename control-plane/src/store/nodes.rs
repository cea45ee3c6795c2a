use sqlx::Row;
use sqlx::any::AnyRow;

use super::outbox::Notice;
use super::{Store, StoreError, now};
use crate::domain::Action;

#[derive(Debug, Clone)]
pub struct Node {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub port: i64,
    pub api_port: i64,
    pub usage_coefficient: f64,
    pub status: String,
    pub message: Option<String>,
    pub core_kind: Option<String>,
    pub xray_version: Option<String>,
    pub agent_version: Option<String>,
    pub last_seen_at: Option<i64>,
    pub certificate_fingerprint: Option<String>,
    pub certificate_not_after: Option<i64>,
    /// The certificate signed for the node's next key while a rotation is
    /// under way; accepted beside the current one until the node serves it.
    pub next_certificate_fingerprint: Option<String>,
    /// When a certificate rotation was requested that the node's task has
    /// not carried out yet (`nexpoint certs rotate`).
    pub rotation_requested_at: Option<i64>,
    /// Core restarts the agent counted since it started.
    pub core_restarts: i64,
    pub core_started_at: Option<i64>,
    /// Set when the node runs its own core config (the revision that set it).
    pub core_config_revision: Option<i64>,
    pub usage_sequence: i64,
    pub uplink: i64,
    pub downlink: i64,
    pub created_at: i64,
}

#[cfg(test)]
impl Node {
    /// An enrolled-looking node with every optional field empty.
    pub fn for_tests(id: i64) -> Self {
        Self {
            id,
            name: format!("node{id}"),
            address: "127.0.0.1".into(),
            port: 1,
            api_port: 2,
            usage_coefficient: 1.0,
            status: "connected".into(),
            message: None,
            core_kind: None,
            xray_version: None,
            agent_version: None,
            last_seen_at: None,
            certificate_fingerprint: None,
            certificate_not_after: None,
            next_certificate_fingerprint: None,
            rotation_requested_at: None,
            core_restarts: 0,
            core_started_at: None,
            core_config_revision: None,
            usage_sequence: 0,
            uplink: 0,
            downlink: 0,
            created_at: 0,
        }
    }
}

impl<'r> sqlx::FromRow<'r, AnyRow> for Node {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            address: row.try_get("address")?,
            port: row.try_get("port")?,
            api_port: row.try_get("api_port")?,
            usage_coefficient: row.try_get("usage_coefficient")?,
            status: row.try_get("status")?,
            message: row.try_get("message")?,
            core_kind: row.try_get("core_kind")?,
            xray_version: row.try_get("xray_version")?,
            agent_version: row.try_get("agent_version")?,
            last_seen_at: row.try_get("last_seen_at")?,
            certificate_fingerprint: row.try_get("certificate_fingerprint")?,
            certificate_not_after: row.try_get("certificate_not_after")?,
            next_certificate_fingerprint: row.try_get("next_certificate_fingerprint")?,
            rotation_requested_at: row.try_get("rotation_requested_at")?,
            core_restarts: row.try_get("core_restarts")?,
            core_started_at: row.try_get("core_started_at")?,
            core_config_revision: row.try_get("core_config_revision")?,
            usage_sequence: row.try_get("usage_sequence")?,
            uplink: row.try_get("uplink")?,
            downlink: row.try_get("downlink")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const COLUMNS: &str = "id, name, address, port, api_port, usage_coefficient, status, message, \
    core_kind, xray_version, agent_version, last_seen_at, certificate_fingerprint, \
    certificate_not_after, next_certificate_fingerprint, rotation_requested_at, core_restarts, core_started_at, \
    core_config_revision, usage_sequence, uplink, downlink, created_at";

#[derive(Debug)]
pub struct NewNode {
    pub name: String,
    pub address: String,
    pub port: i64,
    pub api_port: i64,
    pub usage_coefficient: f64,
}

/// What a node task learned about its node.
#[derive(Debug, Default)]
pub struct NodeHealth {
    pub status: &'static str,
    pub message: Option<String>,
    pub core_kind: Option<String>,
    pub xray_version: Option<String>,
    pub agent_version: Option<String>,
    /// Restarts and start time of the core as the agent reports them.
    pub core_restarts: Option<i64>,
    pub core_started_at: Option<i64>,
}

impl Store {
    /// Creates a node waiting for enrollment with the given one-time token
    /// hash; with `host_tags`, also a host per inbound tag at the node's address.
    pub async fn create_node(
        &self,
        node: NewNode,
        token_hash: &str,
        token_expires_at: i64,
        host_tags: &[String],
    ) -> Result<Node, StoreError> {
        let mut tx = self.begin_write().await?;
        let created: Node = sqlx::query_as(&format!(
            "INSERT INTO nodes (name, name_lower, address, port, api_port, usage_coefficient, \
             enrollment_token_hash, enrollment_expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(&node.name)
        .bind(node.name.to_lowercase())
        .bind(&node.address)
        .bind(node.port)
        .bind(node.api_port)
        .bind(node.usage_coefficient)
        .bind(token_hash)
        .bind(token_expires_at)
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::unique(format!(
            "Node \"{}\" already exists",
            node.name
        )))?;
        for tag in host_tags {
            super::hosts::insert_node_host(&mut tx, tag, &created).await?;
        }
        tx.commit().await?;
        self.hosts_cache.clear();
        Ok(created)
    }

    /// The node a still-valid enrollment token belongs to.
    pub async fn node_by_enrollment_token(&self, token_hash: &str) -> Result<Node, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM nodes WHERE enrollment_token_hash = $1 \
             AND enrollment_expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Stores the issued certificate and consumes the token, only if the token
    /// is still unused: two concurrent enrollments cannot both succeed.
    pub async fn complete_enrollment(
        &self,
        node_id: i64,
        token_hash: &str,
        certificate_pem: &str,
        fingerprint: &str,
        not_after: i64,
    ) -> Result<Node, StoreError> {
        sqlx::query_as(&format!(
            "UPDATE nodes SET certificate_pem = $1, certificate_fingerprint = $2, \
             certificate_not_after = $3, enrollment_token_hash = NULL, \
             enrollment_expires_at = NULL, message = NULL, \
             status = CASE WHEN status = 'disabled' THEN status ELSE 'connecting' END \
             WHERE id = $4 AND enrollment_token_hash = $5 RETURNING {COLUMNS}"
        ))
        .bind(certificate_pem)
        .bind(fingerprint)
        .bind(not_after)
        .bind(node_id)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        Ok(
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM nodes ORDER BY id"))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The node with this name, in any case.
    pub async fn node_by_name(&self, name: &str) -> Result<Node, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM nodes WHERE name_lower = $1"
        ))
        .bind(name.to_lowercase())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn node(&self, id: i64) -> Result<Node, StoreError> {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM nodes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub async fn delete_node(&self, id: i64) -> Result<Node, StoreError> {
        let deleted = sqlx::query_as(&format!(
            "DELETE FROM nodes WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound);
        // Its hosts went with it (ON DELETE CASCADE), and its own inbounds.
        self.hosts_cache.clear();
        self.config.clear();
        deleted
    }

    /// Records what a node task saw; a disabled node keeps its status (a task
    /// stopping as it is disabled must not mark it connected again). A change
    /// of status is notified in the same transaction (see [`health_action`]).
    pub async fn set_node_health(&self, id: i64, health: NodeHealth) -> Result<(), StoreError> {
        // Node tasks are aborted when a node is edited or deleted. Cancelled
        // between its statements, this transaction would leave SQLite's
        // write lock held by an idle pooled connection; on its own task it
        // always finishes.
        let store = self.clone();
        tokio::spawn(async move { store.record_node_health(id, health).await })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    async fn record_node_health(&self, id: i64, health: NodeHealth) -> Result<(), StoreError> {
        let now = now();
        let seen = (health.status == "connected").then_some(now);
        let mut tx = self.begin_write().await?;
        let before: Option<(String, String)> = sqlx::query_as(&format!(
            "SELECT name, status FROM nodes WHERE id = $1{}",
            match self.backend {
                super::Backend::Postgres => " FOR UPDATE",
                super::Backend::Sqlite => "",
            }
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((name, before)) = before.filter(|(_, status)| status != "disabled") else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE nodes SET status = $1, message = $2, \
             core_kind = COALESCE($3, core_kind), xray_version = COALESCE($4, xray_version), \
             agent_version = COALESCE($5, agent_version), \
             last_seen_at = COALESCE($6, last_seen_at), \
             core_restarts = COALESCE($7, core_restarts), \
             core_started_at = COALESCE($8, core_started_at) \
             WHERE id = $9",
        )
        .bind(health.status)
        .bind(health.message.clone())
        .bind(health.core_kind)
        .bind(health.xray_version)
        .bind(health.agent_version)
        .bind(seen)
        .bind(health.core_restarts)
        .bind(health.core_started_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let action = health_action(&before, health.status);
        if let Some(action) = action {
            let notice = Notice::node(action, &name, health.message.as_deref(), now);
            super::outbox::enqueue(&mut tx, &[notice], now).await?;
        }
        tx.commit().await?;
        if action.is_some() {
            self.outbox.committed();
        }
        Ok(())
    }
}

/// What a node's change of status from `before` to `after` is reported as:
/// reaching `connected` is a connection, leaving it for an error a lost
/// node, and an error before it ever connected (again) an error. Repeated
/// reports of the same status are not news.
pub fn health_action(before: &str, after: &str) -> Option<Action> {
    match (before, after) {
        (b, a) if b == a => None,
        (_, "connected") => Some(Action::NodeConnected),
        ("connected", "error") => Some(Action::NodeLost),
        (_, "error") => Some(Action::NodeError),
        _ => None,
    }
}

/// A partial change to a node: `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct NodeUpdate {
    pub name: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub api_port: Option<i64>,
    pub usage_coefficient: Option<f64>,
    /// Some(true) disables the node; Some(false) re-enables a disabled one.
    pub disabled: Option<bool>,
}

/// Traffic through one node over a period, as users were billed for it
/// (scaled by the node's usage coefficient).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeUsage {
    pub node_id: i64,
    pub node_name: String,
    pub used_traffic: i64,
}

impl<'r> sqlx::FromRow<'r, AnyRow> for NodeUsage {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            node_id: row.try_get("id")?,
            node_name: row.try_get("name")?,
            used_traffic: row.try_get("used_traffic")?,
        })
    }
}

impl Store {
    /// Applies `update` and returns the node before and after it. Hosts the
    /// node added for itself follow a new address.
    pub async fn update_node(
        &self,
        id: i64,
        update: NodeUpdate,
    ) -> Result<(Node, Node), StoreError> {
        let mut tx = self.begin_write().await?;
        let before: Node = sqlx::query_as(&format!("SELECT {COLUMNS} FROM nodes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let conflict = format!(
            "Node \"{}\" already exists",
            update.name.as_deref().unwrap_or_default()
        );
        let after: Node = sqlx::query_as(&format!(
            "UPDATE nodes SET name = COALESCE($1, name), name_lower = COALESCE($2, name_lower), \
             address = COALESCE($3, address), port = COALESCE($4, port), \
             api_port = COALESCE($5, api_port), \
             usage_coefficient = COALESCE($6, usage_coefficient), \
             message = CASE WHEN $7 = 1 OR ($7 = 0 AND status = 'disabled') THEN NULL \
                       ELSE message END, \
             status = CASE WHEN $7 = 1 THEN 'disabled' \
                      WHEN $7 = 0 AND status = 'disabled' THEN 'connecting' ELSE status END \
             WHERE id = $8 RETURNING {COLUMNS}"
        ))
        .bind(&update.name)
        .bind(update.name.as_deref().map(str::to_lowercase))
        .bind(&update.address)
        .bind(update.port)
        .bind(update.api_port)
        .bind(update.usage_coefficient)
        .bind(update.disabled.map(i64::from))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::unique(conflict))?;
        if before.address != after.address {
            super::hosts::follow_node_address(&mut tx, id, &before.address, &after.address).await?;
        }
        tx.commit().await?;
        self.hosts_cache.clear();
        Ok((before, after))
    }

    /// Traffic per existing node between two unix times (hour rows whose
    /// hour starts within `[start, end]`), every node listed.
    pub async fn nodes_usage(&self, start: i64, end: i64) -> Result<Vec<NodeUsage>, StoreError> {
        self.fold_usage_history().await?;
        Ok(sqlx::query_as(
            "SELECT n.id, n.name, CAST(COALESCE(SUM(u.used_traffic), 0) AS BIGINT) AS used_traffic \
             FROM nodes n LEFT JOIN node_user_usages u \
             ON u.node_id = n.id AND u.hour >= $1 AND u.hour <= $2 \
             GROUP BY n.id, n.name ORDER BY n.id",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One user's traffic per existing node between two unix times, every
    /// node listed.
    pub async fn user_usage_by_node(
        &self,
        user_id: i64,
        start: i64,
        end: i64,
    ) -> Result<Vec<NodeUsage>, StoreError> {
        self.fold_usage_history().await?;
        Ok(sqlx::query_as(
            "SELECT n.id, n.name, CAST(COALESCE(SUM(u.used_traffic), 0) AS BIGINT) AS used_traffic \
             FROM nodes n LEFT JOIN node_user_usages u \
             ON u.node_id = n.id AND u.user_id = $1 AND u.hour >= $2 AND u.hour <= $3 \
             GROUP BY n.id, n.name ORDER BY n.id",
        )
        .bind(user_id)
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?)
    }
}
