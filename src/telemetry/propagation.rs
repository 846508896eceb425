//! W3C trace context (`traceparent`, `tracestate`) in and out: the one place a caller's
//! trace is continued and a callee is told about ours. A no-op while traces are off.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header that carries the trace id and the caller's span id.
pub const TRACEPARENT: &str = "traceparent";

struct Read<'a>(&'a HeaderMap);

impl Extractor for Read<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct Write<'a>(&'a mut HeaderMap);

impl Injector for Write<'_> {
    fn set(&mut self, key: &str, value: String) {
        // W3C: an empty `tracestate` is not sent.
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct WriteMetadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for WriteMetadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the trace the request's `traceparent` names, if it names one.
/// An invalid `traceparent` is ignored: the span starts a trace of its own.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key(TRACEPARENT) {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Read(headers)));
    let _ = span.set_parent(parent);
}

/// Writes `span`'s trace context into outgoing HTTP headers, replacing any the caller
/// sent (the callee's parent is `span`, not the caller). Nothing when `span` is off.
pub fn inject_headers(span: &tracing::Span, headers: &mut HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    // The caller's `tracestate` belonged to the caller's `traceparent`.
    headers.remove("tracestate");
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Write(headers)));
}

/// Writes `span`'s trace context into outgoing gRPC metadata. Nothing when `span` is off.
pub fn inject_metadata(span: &tracing::Span, metadata: &mut tonic::metadata::MetadataMap) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut WriteMetadata(metadata))
    });
}
