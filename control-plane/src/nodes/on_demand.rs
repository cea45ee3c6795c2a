//! Calls the API makes to a node outside its task, each on a connection of
//! its own: testing a core config, following the core's logs, rotating the
//! certificate.

use std::time::Duration;

use nexpoint_proto::agent::{LogLine, StreamLogsRequest, TestCoreConfigRequest};
use tonic::{Code, Streaming};

use super::NodeManager;
use super::client::{self, Agent, ConnectError};
use super::rotation::{self, RotationError};
use crate::store::Node;

/// How long a core gets to judge a config (V2Ray with many users is slow).
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a node's core said about a config template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigVerdict {
    Accepted,
    /// The core's own error line.
    Rejected(String),
    /// The node could not judge (unreachable, or an agent without the
    /// call); the reason is logged and the template is not refused for it.
    Untested(String),
}

#[derive(Debug, thiserror::Error)]
pub enum NodeCallError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("agent: {}", .0.message())]
    Rpc(#[from] tonic::Status),
    #[error(transparent)]
    Rotation(#[from] RotationError),
}

impl NodeManager {
    async fn connect(&self, node: &Node) -> Result<Agent, ConnectError> {
        let (agent, _) = client::connect(&self.ctx.pki, node).await?;
        Ok(agent)
    }

    /// Has the node's core check `template` rendered with the node's users.
    pub async fn test_core_config(&self, node: &Node, template: &str) -> ConfigVerdict {
        let mut agent = match self.connect(node).await {
            Ok(agent) => agent,
            Err(e) => return ConfigVerdict::Untested(e.to_string()),
        };
        let request = TestCoreConfigRequest {
            core_config_json: template.to_owned(),
        };
        match tokio::time::timeout(TEST_TIMEOUT, agent.test_core_config(request)).await {
            Err(_) => ConfigVerdict::Untested(format!("no answer within {TEST_TIMEOUT:?}")),
            Ok(Err(status)) if status.code() == Code::Unimplemented => {
                ConfigVerdict::Untested("the agent cannot test configs (older version)".into())
            }
            Ok(Err(status)) => ConfigVerdict::Untested(format!("agent: {}", status.message())),
            Ok(Ok(answer)) => {
                let answer = answer.into_inner();
                if answer.ok {
                    ConfigVerdict::Accepted
                } else {
                    ConfigVerdict::Rejected(answer.error)
                }
            }
        }
    }

    /// The node core's log lines: the recent buffer, then live ones.
    pub async fn follow_logs(&self, node: &Node) -> Result<Streaming<LogLine>, NodeCallError> {
        let mut agent = self.connect(node).await?;
        Ok(agent
            .stream_logs(StreamLogsRequest {
                include_recent: true,
            })
            .await?
            .into_inner())
    }

    /// Rotates the node's certificate now; returns the new fingerprint.
    pub async fn rotate_certificate(&self, node: &Node) -> Result<String, NodeCallError> {
        let mut agent = self.connect(node).await?;
        Ok(rotation::rotate(&self.ctx.pki, &self.ctx.store, &mut agent, node.id).await?)
    }
}
