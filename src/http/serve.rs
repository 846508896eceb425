//! Serving an axum router over plaintext or TLS with the same request facts and the same
//! limits either way: every request carries its connection's peer address (axum's
//! `ConnectInfo`) and, on TLS, the client certificate of the connection
//! ([`PeerCertificate`]); every connection counts against `max_connections`, must send its
//! headers within the header timeout (idle keep-alive connections close after it too), and
//! every request must be answered within the request timeout, its body read included.
//! Shared by Arbiter's HTTP listener and `arbiter gateway`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ApiError;
use crate::config::HttpLimits;
use crate::tls::{self, canonical_peer, ConnectionLimit, PeerCertificate, ReloadingTls};

/// Serves `router` on `listener` until `shutdown` (then lets open requests finish), over
/// TLS when `tls` is given (its handshakes off the accept loop, its certificate reloaded as
/// files change), within `limits`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<ReloadingTls>>,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The server span outside the timeout, so a `408` is recorded as the request's answer.
    let router = with_request_timeout(router, limits.request_timeout())
        .layer(crate::telemetry::TraceRequests);
    let limit = ConnectionLimit::new(limits.max_connections);
    match tls {
        Some(tls) => {
            let accepted = tls::accept(listener, tls.clone(), limit, shutdown.clone());
            let certificate = move |io: &tls::Limited<TlsStream<TcpStream>>| {
                io.get_ref()
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| tls.peer_certificate(chain))
            };
            connections(accepted, router, certificate, limits, shutdown).await
        }
        None => {
            let accepted = tls::accept_plain(listener, limit, shutdown.clone());
            connections(accepted, router, |_| None, limits, shutdown).await
        }
    }
}

/// Serves each accepted connection on its own task; at shutdown, stops taking new ones and
/// waits for those open to finish their requests.
async fn connections<S>(
    mut accepted: mpsc::Receiver<(S, SocketAddr)>,
    router: axum::Router,
    certificate: impl Fn(&S) -> Option<PeerCertificate>,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tasks = TaskTracker::new();
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = accepted.recv() => match next {
                Some(next) => next,
                None => break,
            },
        };
        let service = TowerToHyperService::new(connection(router.clone(), peer, certificate(&io)));
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout());
            let served = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(served);
            let result = tokio::select! {
                result = served.as_mut() => result,
                _ = shutdown.cancelled() => {
                    served.as_mut().graceful_shutdown();
                    served.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "HTTP connection ended");
            }
        });
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Every request answered within `timeout` (its body read included), or `408`.
fn with_request_timeout(router: axum::Router, timeout: Duration) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request was not complete within {} s",
                        timeout.as_secs_f64()
                    ),
                )
                .into_response(),
            }
        },
    ))
}

/// The router for one connection: each request gets the connection's facts.
fn connection(
    router: axum::Router,
    peer: SocketAddr,
    certificate: Option<PeerCertificate>,
) -> impl tower::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    // The one place peer addresses are canonicalised: a dual-stack listener (`[::]`) sees
    // IPv4 clients as `::ffff:a.b.c.d`, which nothing downstream should have to know.
    let peer = canonical_peer(peer);
    tower::ServiceExt::map_request(
        router,
        move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            let extensions = request.extensions_mut();
            extensions.insert(ConnectInfo(peer));
            if let Some(c) = &certificate {
                extensions.insert(c.clone());
            }
            request
        },
    )
}
