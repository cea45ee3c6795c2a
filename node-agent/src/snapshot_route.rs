//! The Agent gRPC service as served, with ApplySnapshot decoded straight
//! into the agent's compact users.
//!
//! The generated server would decode a snapshot of 100,000 users into a
//! `Snapshot` (~350 bytes of heap per user) before the agent could encode
//! them compactly (~70), a peak the allocator then keeps as resident memory.
//! Here the request decodes as an [`AppliedState`], one user at a time; the
//! wire format is the same `Snapshot`. Every other method goes to the
//! generated server.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use nexpoint_proto::agent::ApplyResponse;
use nexpoint_proto::agent::agent_server::{AgentServer, SERVICE_NAME};
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::agent_service::{self, AgentService};
use crate::applied_state::AppliedState;
use crate::node::Node;

const APPLY_SNAPSHOT_PATH: &str = "/nexpoint.agent.v1.Agent/ApplySnapshot";

#[derive(Clone)]
pub struct AgentRoutes {
    server: AgentServer<AgentService>,
    node: Arc<Node>,
    max_message_bytes: usize,
}

impl AgentRoutes {
    /// `max_message_bytes` bounds requests and responses, as the generated
    /// server's own limits do.
    pub fn new(service: AgentService, node: Arc<Node>, max_message_bytes: usize) -> Self {
        let server = AgentServer::new(service)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        Self {
            server,
            node,
            max_message_bytes,
        }
    }
}

impl NamedService for AgentRoutes {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for AgentRoutes
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != APPLY_SNAPSHOT_PATH {
            return self.server.call(request);
        }
        let node = self.node.clone();
        let limit = Some(self.max_message_bytes);
        Box::pin(async move {
            let codec = ProstCodec::<ApplyResponse, AppliedState>::default();
            let mut grpc = Grpc::new(codec).apply_max_message_size_config(limit, limit);
            Ok(grpc.unary(ApplySnapshot(node), request).await)
        })
    }
}

struct ApplySnapshot(Arc<Node>);

impl UnaryService<AppliedState> for ApplySnapshot {
    type Response = ApplyResponse;
    type Future = BoxFuture<Response<ApplyResponse>, Status>;

    fn call(&mut self, request: Request<AppliedState>) -> Self::Future {
        let node = self.0.clone();
        Box::pin(async move { agent_service::apply_snapshot(&node, request.into_inner()).await })
    }
}
