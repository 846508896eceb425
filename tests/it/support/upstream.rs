//! An upstream that describes what it received (`/big` answers 16 MiB), for the gateway.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::Request;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// An upstream that describes what it received; `/big` answers 16 MiB.
pub async fn upstream() -> (SocketAddr, CancellationToken) {
    async fn echo(request: Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        let (parts, body) = request.into_parts();
        if parts.uri.path() == "/big" {
            let chunk = vec![b'x'; 1024 * 1024];
            let stream = futures_stream(chunk, 16);
            return Body::from_stream(stream).into_response();
        }
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        // Every copy of a header, joined: a forged copy beside the real one shows.
        let mut headers = serde_json::Map::new();
        for name in parts.headers.keys() {
            let all: Vec<&str> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or_default())
                .collect();
            headers.insert(name.to_string(), json!(all.join(", ")));
        }
        axum::Json(json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "length": bytes.len(),
            "sha256": hex::encode(Sha256::digest(&bytes)),
        }))
        .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(echo))
            .with_graceful_shutdown(s.cancelled_owned())
            .await
    });
    (addr, stop)
}

fn futures_stream(
    chunk: Vec<u8>,
    times: usize,
) -> impl tokio_stream::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    tokio_stream::iter((0..times).map(move |_| Ok(chunk.clone())))
}

/// `arbiter gateway` in process on an ephemeral port: its base URL, and what stops it.
pub async fn gateway(config: arbiter::gateway::GatewayConfig) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(arbiter::gateway::serve(listener, config, stop.clone()));
    (format!("http://{addr}"), stop)
}
