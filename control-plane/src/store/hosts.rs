use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Node, Store, StoreError};

/// How an inbound is advertised to subscribers (Marzban's ProxyHost).
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub id: i64,
    pub inbound_tag: String,
    pub remark: String,
    pub address: String,
    pub port: Option<i64>,
    pub sni: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    /// inbound_default, none or tls.
    pub security: String,
    /// "" means the client's default.
    pub alpn: String,
    /// uTLS fingerprint; "" means the client's default.
    pub fingerprint: String,
    pub allowinsecure: Option<bool>,
    pub is_disabled: bool,
    pub mux_enable: bool,
    pub fragment_setting: Option<String>,
    pub noise_setting: Option<String>,
    pub random_user_agent: bool,
    pub use_sni_as_host: bool,
}

/// A host as an admin defines it for one inbound tag.
#[derive(Debug, Clone, Default)]
pub struct NewHost {
    pub remark: String,
    pub address: String,
    pub port: Option<i64>,
    pub sni: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub security: String,
    pub alpn: String,
    pub fingerprint: String,
    pub allowinsecure: Option<bool>,
    pub is_disabled: bool,
    pub mux_enable: bool,
    pub fragment_setting: Option<String>,
    pub noise_setting: Option<String>,
    pub random_user_agent: bool,
    pub use_sni_as_host: bool,
}

fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

impl<'r> sqlx::FromRow<'r, AnyRow> for Host {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            inbound_tag: row.try_get("inbound_tag")?,
            remark: row.try_get("remark")?,
            address: row.try_get("address")?,
            port: row.try_get("port")?,
            sni: row.try_get("sni")?,
            host: row.try_get("host")?,
            path: row.try_get("path")?,
            security: row.try_get("security")?,
            alpn: row.try_get("alpn")?,
            fingerprint: row.try_get("fingerprint")?,
            allowinsecure: row
                .try_get::<Option<i64>, _>("allowinsecure")?
                .map(|v| v != 0),
            is_disabled: flag(row, "is_disabled")?,
            mux_enable: flag(row, "mux_enable")?,
            fragment_setting: row.try_get("fragment_setting")?,
            noise_setting: row.try_get("noise_setting")?,
            random_user_agent: flag(row, "random_user_agent")?,
            use_sni_as_host: flag(row, "use_sni_as_host")?,
        })
    }
}

const COLUMNS: &str = "id, inbound_tag, remark, address, port, sni, host, path, security, alpn, \
    fingerprint, allowinsecure, is_disabled, mux_enable, fragment_setting, noise_setting, \
    random_user_agent, use_sni_as_host";

pub(crate) async fn insert_node_host(
    tx: &mut Transaction<'_, Any>,
    tag: &str,
    node: &Node,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hosts (inbound_tag, remark, address, node_id) VALUES ($1, $2, $3, $4)",
    )
    .bind(tag)
    .bind(format!(
        "{} ({{USERNAME}}) [{{PROTOCOL}} - {{TRANSPORT}}]",
        node.name
    ))
    .bind(&node.address)
    .bind(node.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Hosts a node added for itself follow it to a new address.
pub(crate) async fn follow_node_address(
    tx: &mut Transaction<'_, Any>,
    node_id: i64,
    old: &str,
    new: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE hosts SET address = $1 WHERE node_id = $2 AND address = $3")
        .bind(new)
        .bind(node_id)
        .bind(old)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Enabled hosts, in display order.
    pub async fn enabled_hosts(&self) -> Result<Vec<Host>, StoreError> {
        if let Some(hosts) = self.hosts_cache.fresh() {
            return Ok(hosts);
        }
        let hosts: Vec<Host> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM hosts WHERE is_disabled = 0 ORDER BY position, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        self.hosts_cache.put(&hosts);
        Ok(hosts)
    }

    /// Every host, enabled or not, in display order.
    pub async fn hosts(&self) -> Result<Vec<Host>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM hosts ORDER BY position, id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces the hosts of each given inbound tag, all in one transaction.
    /// A new host at the address of a host its node added keeps that node
    /// link, so deleting the node still removes it.
    pub async fn replace_hosts(&self, tags: &[(String, Vec<NewHost>)]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (tag, hosts) in tags {
            let mut node_hosts: Vec<(String, i64)> = sqlx::query_as(
                "SELECT address, node_id FROM hosts WHERE inbound_tag = $1 \
                 AND node_id IS NOT NULL ORDER BY position, id",
            )
            .bind(tag)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM hosts WHERE inbound_tag = $1")
                .bind(tag)
                .execute(&mut *tx)
                .await?;
            for (position, h) in hosts.iter().enumerate() {
                let node_id = node_hosts
                    .iter()
                    .position(|(address, _)| *address == h.address)
                    .map(|i| node_hosts.remove(i).1);
                sqlx::query(
                    "INSERT INTO hosts (inbound_tag, remark, address, port, sni, host, path, \
                     security, alpn, fingerprint, allowinsecure, is_disabled, mux_enable, \
                     fragment_setting, noise_setting, random_user_agent, use_sni_as_host, \
                     node_id, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                     $12, $13, $14, $15, $16, $17, $18, $19)",
                )
                .bind(tag)
                .bind(&h.remark)
                .bind(&h.address)
                .bind(h.port)
                .bind(&h.sni)
                .bind(&h.host)
                .bind(&h.path)
                .bind(&h.security)
                .bind(&h.alpn)
                .bind(&h.fingerprint)
                .bind(h.allowinsecure.map(i64::from))
                .bind(i64::from(h.is_disabled))
                .bind(i64::from(h.mux_enable))
                .bind(&h.fragment_setting)
                .bind(&h.noise_setting)
                .bind(i64::from(h.random_user_agent))
                .bind(i64::from(h.use_sni_as_host))
                .bind(node_id)
                .bind(position as i64)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.hosts_cache.clear();
        Ok(())
    }
}

/// How long a read of the enabled hosts is reused: every user response and
/// subscription needs them. Writes through this process clear it at once;
/// another replica's write shows within this.
const HOSTS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct HostsCache(std::sync::Mutex<Option<(std::time::Instant, Vec<Host>)>>);

impl HostsCache {
    fn fresh(&self) -> Option<Vec<Host>> {
        let cached = self.0.lock().expect("hosts cache poisoned");
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < HOSTS_FRESH_FOR)
            .map(|(_, hosts)| hosts.clone())
    }

    fn put(&self, hosts: &[Host]) {
        *self.0.lock().expect("hosts cache poisoned") =
            Some((std::time::Instant::now(), hosts.to_vec()));
    }

    pub(crate) fn clear(&self) {
        *self.0.lock().expect("hosts cache poisoned") = None;
    }
}
