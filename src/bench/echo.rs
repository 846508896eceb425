//! A bare `Authorizer` that decides nothing: it answers every call with a fixed allow. Run
//! as its own process beside a real server, it measures the floor of gRPC on this machine
//! with the same messages, so load results can be quoted as a ratio to it.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::wire::proto::{
    self, authorizer_server::AuthorizerServer, AuthorizeBatchRequest, AuthorizeBatchResponse,
    AuthorizeRequest, AuthorizeResponse,
};

/// A bare HTTP upstream answering every request `200 ok`: the API behind `arbiter gateway`
/// when measuring what the gateway adds. `POST /access/v1/evaluation` is a bare axum JSON
/// echo instead (reads the body as JSON, answers `{"decision":true}`): the floor for
/// AuthZEN over HTTP (`benches/wire.sh`).
pub async fn serve_http_echo(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route(
            "/access/v1/evaluation",
            axum::routing::post(|_: axum::Json<serde_json::Value>| async {
                axum::Json(serde_json::json!({"decision": true}))
            }),
        )
        .fallback(|| async { "ok" });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The echo service.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoAuthorizer;

fn fixed() -> AuthorizeResponse {
    AuthorizeResponse {
        decision: proto::Decision::Allow as i32,
        reason: proto::Reason::Allowed as i32,
        policy_ids: vec!["echo".into()],
        policy_version: "echo".into(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl proto::authorizer_server::Authorizer for EchoAuthorizer {
    async fn authorize(
        &self,
        _: Request<AuthorizeRequest>,
    ) -> Result<Response<AuthorizeResponse>, Status> {
        Ok(Response::new(fixed()))
    }

    async fn authorize_batch(
        &self,
        request: Request<AuthorizeBatchRequest>,
    ) -> Result<Response<AuthorizeBatchResponse>, Status> {
        let n = request.get_ref().requests.len();
        Ok(Response::new(AuthorizeBatchResponse {
            responses: vec![fixed(); n],
        }))
    }
}

/// Envoy's ext_authz `Check` answered with a fixed OK, the floor under Arbiter's `Check`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoExtAuthz;

#[tonic::async_trait]
impl envoy_types::ext_authz::v3::pb::Authorization for EchoExtAuthz {
    async fn check(
        &self,
        _: Request<envoy_types::ext_authz::v3::pb::CheckRequest>,
    ) -> Result<Response<envoy_types::ext_authz::v3::pb::CheckResponse>, Status> {
        use envoy_types::ext_authz::v3::{CheckResponseExt, OkHttpResponseBuilder};
        let mut response =
            envoy_types::ext_authz::v3::pb::CheckResponse::with_status(Status::ok("allowed"));
        response.set_http_response(OkHttpResponseBuilder::new());
        Ok(Response::new(response))
    }
}

/// Serves the echo services (`Authorize`, and ext_authz `Check`) on a bound listener until
/// `shutdown`.
pub async fn serve_echo(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(AuthorizerServer::new(EchoAuthorizer))
        .add_service(envoy_types::ext_authz::v3::pb::AuthorizationServer::new(
            EchoExtAuthz,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}
