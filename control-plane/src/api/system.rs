use axum::extract::State;
use serde::Serialize;
use serde::ser::SerializeMap;

use super::auth::CurrentAdmin;
use super::extract::Json;
use super::openapi::Detail;
use super::{ApiError, AppState};
use crate::domain::Inbound;

/// A JSON object whose keys keep the order they were added in (the core
/// config's order, which dashboards display).
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Marzban's SystemStats.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SystemStats {
    version: &'static str,
    /// Bytes, of the control plane's host.
    mem_total: u64,
    mem_used: u64,
    cpu_cores: u64,
    /// Percent.
    cpu_usage: f64,
    total_user: i64,
    /// Users with traffic in the last 24 hours.
    online_users: i64,
    users_active: i64,
    users_on_hold: i64,
    users_disabled: i64,
    users_expired: i64,
    users_limited: i64,
    /// Bytes users sent through all nodes (uplink).
    incoming_bandwidth: i64,
    /// Bytes users received through all nodes (downlink).
    outgoing_bandwidth: i64,
    /// Bytes per second, averaged over about the last ten seconds.
    incoming_bandwidth_speed: i64,
    outgoing_bandwidth_speed: i64,
}

#[utoipa::path(get, path = "/system", tag = "System",
    responses((status = 200, body = SystemStats), (status = 401, body = Detail)))]
/// Host and user statistics. Non-sudo admins see counts of their own users
/// only; traffic is the whole fleet's.
pub async fn stats(
    State(state): State<AppState>,
    admin: CurrentAdmin,
) -> Result<Json<SystemStats>, ApiError> {
    let owner = (!admin.0.is_sudo).then_some(admin.0.id);
    let counts = state.store.user_counts(owner).await?;
    let online_users = state.store.online_users(owner).await?;
    let traffic = state.store.traffic().await?;
    let host = crate::host_stats::read();
    Ok(Json(SystemStats {
        version: env!("CARGO_PKG_VERSION"),
        mem_total: host.mem_total,
        mem_used: host.mem_used,
        cpu_cores: host.cpu_cores,
        cpu_usage: host.cpu_usage,
        total_user: counts.total,
        online_users,
        users_active: counts.active,
        users_on_hold: counts.on_hold,
        users_disabled: counts.disabled,
        users_expired: counts.expired,
        users_limited: counts.limited,
        incoming_bandwidth: traffic.uplink,
        outgoing_bandwidth: traffic.downlink,
        incoming_bandwidth_speed: traffic.uplink_speed,
        outgoing_bandwidth_speed: traffic.downlink_speed,
    }))
}

/// Marzban's ProxyInbound.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProxyInbound {
    tag: String,
    protocol: &'static str,
    /// Transport: tcp, ws, grpc, ...
    network: String,
    /// tls, reality or none.
    tls: String,
    port: u16,
}

impl From<Inbound> for ProxyInbound {
    fn from(i: Inbound) -> Self {
        Self {
            protocol: i.protocol.as_str(),
            tag: i.tag,
            network: i.network,
            tls: i.tls,
            port: i.port,
        }
    }
}

#[utoipa::path(get, path = "/inbounds", tag = "System",
    responses((status = 200, body = HashMap<String, Vec<ProxyInbound>>,
        description = "Inbounds by protocol, in the core config's order"),
        (status = 401, body = Detail)))]
pub async fn inbounds(
    State(state): State<AppState>,
    _: CurrentAdmin,
) -> Result<Json<Ordered<Vec<ProxyInbound>>>, ApiError> {
    let mut by_protocol: Vec<(String, Vec<ProxyInbound>)> = Vec::new();
    for inbound in state.store.inbounds().await?.iter().cloned() {
        let protocol = inbound.protocol.as_str();
        match by_protocol.iter_mut().find(|(p, _)| p == protocol) {
            Some((_, list)) => list.push(inbound.into()),
            None => by_protocol.push((protocol.to_owned(), vec![inbound.into()])),
        }
    }
    Ok(Json(Ordered(by_protocol)))
}
