//! The HTTP edge every HTTP route uses (OAuth, registration, software statements, AuthZEN,
//! the gateway): reading a bearer token (RFC 6750), the one JSON error body, the client's
//! address behind trusted proxies, and header hygiene before a request is forwarded.
//!
//! One rule, one place: a route never parses `Authorization` or `X-Forwarded-For` itself.
//! Imports only `wire` (header names) and axum's HTTP types.

mod bearer;
mod error;
mod forwarded;

pub use bearer::{bearer_token, bearer_value, BearerError};
pub use error::ApiError;
pub use forwarded::{
    client_ip, forwarded_chain, fraud_score, fraud_scores, remove_arbiter_headers,
};
