//! Users' traffic per node over a period, from the hourly rows usage
//! ingestion keeps (`GET /api/user/{username}/usage`, `GET /api/users/usage`).

use std::collections::BTreeMap;

use super::{Store, StoreError};

/// Bytes on one node over a period. `node_id` `None` is Marzban's "Master"
/// entry: traffic recorded under no node that exists now (history imported
/// from Marzban's master core, nodes deleted since), so the entries add up
/// to everything recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTraffic {
    pub node_id: Option<i64>,
    pub node_name: String,
    pub used_traffic: i64,
}

/// Whose traffic to add up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficOf {
    User(i64),
    /// Every user.
    Everyone,
    /// The users of one admin.
    AdminId(i64),
    /// The users of any of these admins (usernames, any case); unknown
    /// names match nobody.
    AdminNames(Vec<String>),
}

pub const MASTER: &str = "Master";

impl Store {
    /// Traffic in hours starting within `[start, end]`: the "Master" entry
    /// first, then every existing node by id, each listed even at 0.
    pub async fn traffic_by_node(
        &self,
        of: &TrafficOf,
        start: i64,
        end: i64,
    ) -> Result<Vec<NodeTraffic>, StoreError> {
        self.fold_usage_history().await?;
        let mut sql = String::from(
            "SELECT x.node_id, CAST(SUM(x.used_traffic) AS BIGINT) AS used_traffic \
             FROM node_user_usages x WHERE x.hour >= $1 AND x.hour <= $2",
        );
        match of {
            TrafficOf::User(_) => sql.push_str(" AND x.user_id = $3"),
            TrafficOf::Everyone => {}
            TrafficOf::AdminId(_) => {
                sql.push_str(" AND x.user_id IN (SELECT id FROM users WHERE admin_id = $3)")
            }
            TrafficOf::AdminNames(names) => {
                let list = (0..names.len().max(1))
                    .map(|i| format!("${}", i + 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                sql.push_str(&format!(
                    " AND x.user_id IN (SELECT u.id FROM users u JOIN admins a \
                     ON a.id = u.admin_id WHERE a.username_lower IN ({list}))"
                ));
            }
        }
        sql.push_str(" GROUP BY x.node_id");
        let mut query = sqlx::query_as::<_, (i64, i64)>(&sql).bind(start).bind(end);
        match of {
            TrafficOf::User(id) | TrafficOf::AdminId(id) => query = query.bind(*id),
            TrafficOf::Everyone => {}
            TrafficOf::AdminNames(names) if names.is_empty() => query = query.bind(String::new()),
            TrafficOf::AdminNames(names) => {
                for name in names {
                    query = query.bind(name.to_lowercase());
                }
            }
        }
        // One snapshot: the node list matches the sums.
        let mut tx = self.pool.begin().await?;
        let mut per_node: BTreeMap<i64, i64> =
            query.fetch_all(&mut *tx).await?.into_iter().collect();
        let nodes: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM nodes ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(nodes.len() + 1);
        let listed: Vec<NodeTraffic> = nodes
            .into_iter()
            .map(|(id, name)| NodeTraffic {
                node_id: Some(id),
                node_name: name,
                used_traffic: per_node.remove(&id).unwrap_or(0),
            })
            .collect();
        out.push(NodeTraffic {
            node_id: None,
            node_name: MASTER.into(),
            used_traffic: per_node.values().sum(),
        });
        out.extend(listed);
        Ok(out)
    }
}
