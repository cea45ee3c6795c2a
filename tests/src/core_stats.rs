//! The core's own per-user counters, read through the V2Ray stats API
//! independently of the node agent, to compare with what the control plane recorded.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use nexpoint_proto::xray::stats::QueryStatsRequest;
use nexpoint_proto::xray::stats::stats_service_client::StatsServiceClient;

/// Every `user>>>…` counter of the core whose API listens on 127.0.0.1:`api_port`
/// (read without resetting anything).
pub async fn user_counters(api_port: u16) -> Result<BTreeMap<String, i64>> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{api_port}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to the core API on 127.0.0.1:{api_port}"))?;
    let mut client = StatsServiceClient::new(channel);
    let response = client
        .query_stats(QueryStatsRequest {
            pattern: "user>>>".into(),
            reset: false,
        })
        .await
        .context("QueryStats")?
        .into_inner();
    Ok(response
        .stat
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect())
}

/// (uplink, downlink) summed over the counters whose name contains `needle`
/// (e.g. `.alice>>>` for the email `{id}.alice`).
pub fn traffic_of(counters: &BTreeMap<String, i64>, needle: &str) -> (i64, i64) {
    let mut up = 0;
    let mut down = 0;
    for (name, value) in counters {
        if !name.contains(needle) {
            continue;
        }
        if name.ends_with(">>>traffic>>>uplink") {
            up += value;
        } else if name.ends_with(">>>traffic>>>downlink") {
            down += value;
        }
    }
    (up, down)
}
