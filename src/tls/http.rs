//! Serving an axum router over plaintext or TLS with the same request facts either way:
//! every request carries its connection's peer address (axum's `ConnectInfo`) and, on TLS,
//! the client certificate of the connection ([`PeerCertificate`]), if one was presented.
//! Shared by Arbiter's HTTP listener and `arbiter gateway`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{accept, PeerCertificate, ReloadingTls, TlsIncoming};

/// A peer address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into IPv4.
pub fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// Serves `router` on `listener` until `shutdown`, over TLS when `tls` is given (its
/// handshakes off the accept loop, its certificate reloaded as files change).
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<ReloadingTls>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let stop = shutdown.clone().cancelled_owned();
    match tls {
        Some(tls) => {
            let local = listener.local_addr()?;
            let accepted = accept(listener, tls.clone(), shutdown);
            let service = tower::service_fn(move |incoming: IncomingStream<'_, TlsIncoming>| {
                let certificate = incoming
                    .io()
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| tls.peer_certificate(chain));
                let service = connection(router.clone(), *incoming.remote_addr(), certificate);
                async move { Ok::<_, Infallible>(service) }
            });
            axum::serve(TlsIncoming::new(accepted, local), service)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            let service = tower::service_fn(move |incoming: IncomingStream<'_, TcpListener>| {
                let service = connection(router.clone(), *incoming.remote_addr(), None);
                async move { Ok::<_, Infallible>(service) }
            });
            axum::serve(listener, service)
                .with_graceful_shutdown(stop)
                .await
        }
    }
}

/// The router for one connection: each request gets the connection's facts.
fn connection(
    router: axum::Router,
    peer: SocketAddr,
    certificate: Option<PeerCertificate>,
) -> impl tower::Service<
    Request,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    // The one place peer addresses are canonicalised: a dual-stack listener (`[::]`) sees
    // IPv4 clients as `::ffff:a.b.c.d`, which nothing downstream should have to know.
    let peer = canonical_peer(peer);
    tower::ServiceExt::map_request(router, move |mut request: Request| {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        if let Some(c) = &certificate {
            extensions.insert(c.clone());
        }
        request
    })
}
