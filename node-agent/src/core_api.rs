//! A client for the core's own gRPC API (loopback only, no TLS).
//!
//! Both cores serve the `v2ray.core.*` service names, so one client fits both;
//! only the TypedMessage type names differ (see [`crate::wire`]).

use std::time::Duration;

use nexpoint_proto::xray::proxyman::AlterInboundRequest;
use nexpoint_proto::xray::proxyman::handler_service_client::HandlerServiceClient;
use nexpoint_proto::xray::serial::TypedMessage;
use nexpoint_proto::xray::stats::stats_service_client::StatsServiceClient;
use nexpoint_proto::xray::stats::{QueryStatsRequest, SysStatsRequest};
use tonic::transport::{Channel, Endpoint};

use crate::core_kind::CoreKind;
use crate::inbound_users::Credential;
use crate::wire::{self, WireError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The counters every user has: `user>>>EMAIL>>>traffic>>>uplink|downlink`.
pub const USER_COUNTER_PATTERN: &str = "user>>>";

#[derive(Debug, thiserror::Error)]
pub enum CoreApiError {
    #[error("cannot reach the core API: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("core API: {}", .0.message())]
    Status(#[from] tonic::Status),
    #[error(transparent)]
    Wire(#[from] WireError),
}

#[derive(Clone)]
pub struct CoreApi {
    kind: CoreKind,
    handler: HandlerServiceClient<Channel>,
    stats: StatsServiceClient<Channel>,
}

impl CoreApi {
    /// Connects to the API inbound on 127.0.0.1:`port`.
    pub async fn connect(kind: CoreKind, port: u16) -> Result<Self, CoreApiError> {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .connect()
            .await?;
        Ok(Self {
            kind,
            handler: HandlerServiceClient::new(channel.clone())
                .max_decoding_message_size(nexpoint_proto::MAX_MESSAGE_BYTES),
            stats: StatsServiceClient::new(channel)
                .max_decoding_message_size(nexpoint_proto::MAX_MESSAGE_BYTES),
        })
    }

    pub fn kind(&self) -> CoreKind {
        self.kind
    }

    /// Seconds since the core started. 0 when the core lacks GetSysStats
    /// (answers UNIMPLEMENTED): the API still answered, so the core counts as
    /// ready, and a restart is then told by the run's identity alone.
    pub async fn uptime(&self) -> Result<u32, CoreApiError> {
        match self.stats.clone().get_sys_stats(SysStatsRequest {}).await {
            Ok(response) => Ok(response.into_inner().uptime),
            Err(status) if is_unimplemented(&status) => Ok(0),
            Err(status) => Err(status.into()),
        }
    }

    /// Cumulative per-user counters since the core started (never reset, so
    /// a lost response loses nothing).
    pub async fn user_counters(&self) -> Result<Vec<(String, i64)>, CoreApiError> {
        let response = self
            .stats
            .clone()
            .query_stats(QueryStatsRequest {
                pattern: USER_COUNTER_PATTERN.into(),
                reset: false,
            })
            .await?;
        Ok(response
            .into_inner()
            .stat
            .into_iter()
            .map(|s| (s.name, s.value))
            .collect())
    }

    /// Adds a user; one that is already there counts as added.
    pub async fn add_user(
        &self,
        tag: &str,
        email: &str,
        credential: &Credential,
    ) -> Result<(), CoreApiError> {
        let operation = wire::add_user_operation(self.kind, email, credential)?;
        match self.alter_inbound(tag, operation).await {
            Err(status) if is_already_exists(&status) => Ok(()),
            other => other.map_err(Into::into),
        }
    }

    /// Removes a user; one that is not there counts as removed.
    pub async fn remove_user(&self, tag: &str, email: &str) -> Result<(), CoreApiError> {
        let operation = wire::remove_user_operation(self.kind, email);
        match self.alter_inbound(tag, operation).await {
            Err(status) if is_not_found(&status) => Ok(()),
            other => other.map_err(Into::into),
        }
    }

    /// The raw AlterInbound call, errors untouched.
    pub async fn alter_inbound(
        &self,
        tag: &str,
        operation: TypedMessage,
    ) -> Result<(), tonic::Status> {
        self.handler
            .clone()
            .alter_inbound(AlterInboundRequest {
                tag: tag.to_string(),
                operation: Some(operation),
            })
            .await
            .map(drop)
    }
}

/// The core has no such RPC (an Xray-only call on V2Ray 4.x, or an older
/// build): degrade, never fail an apply over it.
pub fn is_unimplemented(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unimplemented
}

/// `User <email> already exists.`
pub fn is_already_exists(status: &tonic::Status) -> bool {
    status.message().contains("already exists")
}

/// `User <email> not found.` (and not `handler not found: <tag>`, which means
/// the inbound itself is missing).
pub fn is_not_found(status: &tonic::Status) -> bool {
    let message = status.message();
    message.contains("not found") && !message.contains("handler not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_core_errors() {
        let exists = tonic::Status::unknown(
            "app/proxyman/command: failed to add user > User 1.a already exists.",
        );
        let missing = tonic::Status::unknown("User 1.a not found.");
        let no_handler = tonic::Status::unknown("app/proxyman/command: handler not found: vm");
        assert!(is_already_exists(&exists));
        assert!(!is_already_exists(&missing));
        assert!(is_not_found(&missing));
        assert!(!is_not_found(&no_handler));
        assert!(is_unimplemented(&tonic::Status::unimplemented(
            "unknown method GetStatsOnline"
        )));
        assert!(!is_unimplemented(&exists));
    }
}
