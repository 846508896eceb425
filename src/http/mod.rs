//! The HTTP edge every HTTP route uses (OAuth, registration, software statements, AuthZEN,
//! the gateway): reading a bearer token (RFC 6750), the one JSON error body, the client's
//! address behind trusted proxies, header hygiene before a request is forwarded, and
//! serving a router within the listener's time and connection limits.
//!
//! One rule, one place: a route never parses `Authorization` or `X-Forwarded-For` itself.
//! Imports `wire` (header names), `config` (the limits) and `tls` (accepting connections).

mod bearer;
mod error;
mod forwarded;
mod serve;

pub use bearer::{bearer_token, bearer_value, BearerError};
pub use error::ApiError;
pub use forwarded::{
    client_ip, forwarded_chain, fraud_score, fraud_scores, remove_arbiter_headers,
};
pub use serve::serve;
