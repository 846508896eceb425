//! The authorization server paired with the PDP: clients and their credentials, signing
//! keys, the token endpoint with policy-trimmed scopes and RFC 8707 resources, and its HTTP
//! routes (token, introspection, revocation, JWKS, metadata), RFC 7591/7592 registration,
//! and the software statement workflow ([`ssa`]) whose statements registration accepts.

pub mod clients;
mod error;
pub mod http;
pub mod keys;
pub mod mtls;
pub mod register;
pub mod registration_rate;
pub mod remote_jwks;
pub mod resource;
pub mod ssa;
pub mod token;

/// Whether `scope` is one of Arbiter's own (the statement workflow's `arbiter.ssa.request`
/// and `arbiter.ssa.review`, and any later `arbiter.*`): never granted to a client that
/// vouched for itself, never approved in a statement without a policy that says so.
pub fn is_arbiter_scope(scope: &str) -> bool {
    scope.starts_with("arbiter.")
}
