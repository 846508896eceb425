//! The wire contract Arbiter shares with its callers: the generated `arbiter.v1` types, JSON ⇄
//! protobuf `Struct`, the headers Arbiter sets for upstreams, and how a deny answers over
//! HTTP (RFC 6750). A leaf: the client library needs only this and tonic, never the server.

pub mod convert;
mod denial;

pub use convert::{json_to_struct, struct_to_json};
pub use denial::{http_denial, shaped_denial, www_authenticate, HttpDenial};

/// Generated protobuf types and service stubs of `arbiter.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("arbiter.v1");

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("arbiter_descriptor");
}

/// Deepest nesting accepted in a caller's context (the top-level object is depth 1): the
/// client refuses to send, and the server to read, anything deeper.
pub const MAX_CONTEXT_DEPTH: usize = 8;

/// Every header Arbiter sets on a request it lets through starts with this; a client's own
/// copies are removed before a request is forwarded (gateway and Envoy ext_authz alike).
pub const ARBITER_HEADER_PREFIX: &str = "x-arbiter-";
/// Header carrying the decision id to the upstream (and on denials, to the caller).
pub const DECISION_HEADER: &str = "x-arbiter-decision-id";
/// Header carrying the Cedar principal of an allowed request to the upstream.
pub const PRINCIPAL_HEADER: &str = "x-arbiter-principal";

/// Whether a header name is one of Arbiter's (`x-arbiter-*`, any case).
pub fn is_arbiter_header(name: &str) -> bool {
    name.len() >= ARBITER_HEADER_PREFIX.len()
        && name.as_bytes()[..ARBITER_HEADER_PREFIX.len()]
            .eq_ignore_ascii_case(ARBITER_HEADER_PREFIX.as_bytes())
}
