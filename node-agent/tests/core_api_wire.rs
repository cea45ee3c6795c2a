//! The agent's core API client against an in-process gRPC server standing in
//! for a core: the exact method paths and TypedMessage names each kind gets,
//! and an RPC the core lacks (UNIMPLEMENTED) degrading instead of failing.

use std::sync::{Arc, Mutex};

use nexpoint_node::core_api::CoreApi;
use nexpoint_node::core_kind::CoreKind;
use nexpoint_node::inbound_users::Credential;
use nexpoint_proto::xray::proxyman::handler_service_server::{
    HandlerService, HandlerServiceServer,
};
use nexpoint_proto::xray::proxyman::{
    AlterInboundRequest, AlterInboundResponse, RemoveInboundRequest, RemoveInboundResponse,
};
use nexpoint_proto::xray::stats::stats_service_server::{StatsService, StatsServiceServer};
use nexpoint_proto::xray::stats::{
    GetStatsRequest, GetStatsResponse, QueryStatsRequest, QueryStatsResponse, Stat,
    SysStatsRequest, SysStatsResponse,
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::http;
use tonic::{Request, Response, Status};

#[derive(Default, Clone)]
struct Seen {
    paths: Arc<Mutex<Vec<String>>>,
    operation_types: Arc<Mutex<Vec<String>>>,
}

/// A core with user management and counters but without GetSysStats.
#[derive(Clone)]
struct FakeCore {
    seen: Seen,
}

#[tonic::async_trait]
impl HandlerService for FakeCore {
    async fn alter_inbound(
        &self,
        request: Request<AlterInboundRequest>,
    ) -> Result<Response<AlterInboundResponse>, Status> {
        let operation = request.into_inner().operation.unwrap_or_default();
        self.seen
            .operation_types
            .lock()
            .unwrap()
            .push(operation.r#type);
        Ok(Response::new(AlterInboundResponse {}))
    }

    async fn remove_inbound(
        &self,
        _request: Request<RemoveInboundRequest>,
    ) -> Result<Response<RemoveInboundResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

#[tonic::async_trait]
impl StatsService for FakeCore {
    async fn get_stats(
        &self,
        _request: Request<GetStatsRequest>,
    ) -> Result<Response<GetStatsResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn query_stats(
        &self,
        request: Request<QueryStatsRequest>,
    ) -> Result<Response<QueryStatsResponse>, Status> {
        assert_eq!(request.into_inner().pattern, "user>>>");
        Ok(Response::new(QueryStatsResponse {
            stat: vec![Stat {
                name: "user>>>1.a>>>traffic>>>uplink".into(),
                value: 42,
            }],
        }))
    }

    async fn get_sys_stats(
        &self,
        _request: Request<SysStatsRequest>,
    ) -> Result<Response<SysStatsResponse>, Status> {
        Err(Status::unimplemented(
            "unknown method GetSysStats for service v2ray.core.app.stats.command.StatsService",
        ))
    }
}

async fn fake_core() -> (u16, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let core = FakeCore { seen: seen.clone() };
    let paths = seen.paths.clone();
    let record_path = tower::util::MapRequestLayer::new(move |request: http::Request<_>| {
        paths.lock().unwrap().push(request.uri().path().to_string());
        request
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(record_path)
            .add_service(HandlerServiceServer::new(core.clone()))
            .add_service(StatsServiceServer::new(core))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (port, seen)
}

#[tokio::test]
async fn both_kinds_use_the_v2ray_core_paths_and_their_own_type_names() {
    for (kind, prefix) in [(CoreKind::Xray, "xray."), (CoreKind::V2Ray, "v2ray.core.")] {
        let (port, seen) = fake_core().await;
        let api = CoreApi::connect(kind, port).await.unwrap();
        // GetSysStats answered UNIMPLEMENTED: uptime unknown, not an error.
        assert_eq!(api.uptime().await.unwrap(), 0, "{kind}");
        assert_eq!(
            api.user_counters().await.unwrap(),
            [("user>>>1.a>>>traffic>>>uplink".to_string(), 42)]
        );
        api.add_user("vm", "1.a", &Credential::Vmess { id: "u".into() })
            .await
            .unwrap();
        api.remove_user("vm", "1.a").await.unwrap();

        assert_eq!(
            *seen.paths.lock().unwrap(),
            [
                "/v2ray.core.app.stats.command.StatsService/GetSysStats",
                "/v2ray.core.app.stats.command.StatsService/QueryStats",
                "/v2ray.core.app.proxyman.command.HandlerService/AlterInbound",
                "/v2ray.core.app.proxyman.command.HandlerService/AlterInbound",
            ],
            "{kind}: Xray serves the v2ray.core names too, V2Ray 4.x only those"
        );
        assert_eq!(
            *seen.operation_types.lock().unwrap(),
            [
                format!("{prefix}app.proxyman.command.AddUserOperation"),
                format!("{prefix}app.proxyman.command.RemoveUserOperation"),
            ]
        );
    }
}
