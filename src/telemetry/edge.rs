//! The server span of every request at both listeners (gRPC and HTTP, the gateway's too):
//! named by RPC or route, a child of the caller's `traceparent`, with the answer's status.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::{Request, Response};
use tracing::field::Empty;

use super::propagation::continue_trace;

/// The layer that gives each request its server span.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceRequests;

impl<S> tower::Layer<S> for TraceRequests {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Traced(inner)
    }
}

/// A service whose requests run in their server span.
#[derive(Debug, Clone)]
pub struct Traced<S>(S);

impl<S, B, R> tower::Service<Request<B>> for Traced<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InSpan<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let span = server_span(&request);
        let inner = span.in_scope(|| self.0.call(request));
        InSpan { inner, span }
    }
}

/// A gRPC call is named `package.Service/Method`; an HTTP request `METHOD /route` when a
/// route matched (never the raw path, whose ids would make every name unique), else
/// `METHOD`. Fields are filled only when the span is on.
fn server_span<B>(request: &Request<B>) -> tracing::Span {
    // Traces off: no header lookups on the way to a disabled span.
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return tracing::Span::none();
    }
    let grpc = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let span = if grpc {
        tracing::debug_span!(
            "rpc",
            otel.name = request.uri().path().trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        )
    } else {
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str);
        tracing::debug_span!(
            "http",
            otel.name = %match route {
                Some(r) => format!("{} {r}", request.method()),
                None => request.method().to_string(),
            },
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = request.uri().path(),
            http.route = route,
            http.response.status_code = Empty,
            otel.status_code = Empty,
        )
    };
    continue_trace(&span, request.headers());
    span
}

pin_project_lite::pin_project! {
    /// A response future polled inside its span, which records the answer's status.
    #[derive(Debug)]
    pub struct InSpan<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
    }
}

impl<F, R, E> Future for InSpan<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx));
        if let (false, Ok(response)) = (this.span.is_disabled(), &result) {
            record_status(this.span, response);
        }
        Poll::Ready(result)
    }
}

/// The HTTP status, or a gRPC status sent in the headers (an error answered at once);
/// a server error or the gRPC codes OpenTelemetry counts as server faults mark the span.
fn record_status<R>(span: &tracing::Span, response: &Response<R>) {
    let grpc = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u8>().ok());
    match grpc {
        Some(code) => {
            span.record("rpc.grpc.status_code", code);
            if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
                span.record("otel.status_code", "error");
            }
        }
        None => {
            let status = response.status();
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "error");
            }
        }
    }
}
