//! How long a connection may take and how many there may be: the `[http]` and `[grpc]`
//! sections. Every limit has a default that serves a gateway fleet and stops a slow or
//! greedy client from holding the listener (slow headers, a body that never ends, idle
//! connections by the thousand, a stream per decision never closed).

use std::time::Duration;

use serde::Deserialize;

/// Limits of an HTTP listener (Arbiter's own, and `arbiter gateway`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Seconds to receive a request's headers, counted from when the connection is ready
    /// for its next request: a slow-headers client is cut off, and so is a keep-alive
    /// connection idle for this long.
    pub header_timeout_seconds: u64,
    /// Seconds one request may take from its headers to its answer, reading its body
    /// included; past it the answer is `408 request_timeout` and the connection closes.
    pub request_timeout_seconds: u64,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout_seconds: 10,
            request_timeout_seconds: 30,
            max_connections: 1024,
        }
    }
}

impl HttpLimits {
    /// [`Self::header_timeout_seconds`] as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_seconds)
    }

    /// [`Self::request_timeout_seconds`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// Why these limits cannot be served, if they cannot.
    pub fn invalid(&self, section: &str) -> Option<String> {
        (self.header_timeout_seconds == 0
            || self.request_timeout_seconds == 0
            || self.max_connections == 0)
            .then(|| format!("[{section}]: timeouts and `max_connections` must be above 0"))
    }
}

/// Limits of the gRPC listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcLimits {
    /// Concurrent streams (calls) per HTTP/2 connection, announced to clients.
    pub max_concurrent_streams: u32,
    /// Seconds between HTTP/2 pings on a quiet connection, to find dead peers.
    pub keepalive_interval_seconds: u64,
    /// Seconds a ping may go unanswered before the connection is closed.
    pub keepalive_timeout_seconds: u64,
    /// Seconds one call may take on the server when the client set a longer deadline, or
    /// none (`grpc-timeout` shorter than this wins); past it the call ends `CANCELLED`.
    /// Decisions take microseconds; the bound is for the admin calls (a `Reload` of a very
    /// large policy set takes seconds) and for calls that hang.
    pub request_timeout_seconds: u64,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 1024,
            keepalive_interval_seconds: 30,
            keepalive_timeout_seconds: 10,
            request_timeout_seconds: 30,
            max_connections: 1024,
        }
    }
}

impl GrpcLimits {
    /// Why these limits cannot be served, if they cannot.
    pub fn invalid(&self) -> Option<String> {
        (self.max_concurrent_streams == 0
            || self.keepalive_interval_seconds == 0
            || self.keepalive_timeout_seconds == 0
            || self.request_timeout_seconds == 0
            || self.max_connections == 0)
            .then(|| "[grpc]: limits must be above 0".to_owned())
    }
}

/// The `[authzen]` section: who may ask the AuthZEN API. A PEP that can ask can learn any
/// decision about anyone, so on a listener others can reach it proves who it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthzenConfig {
    /// How a PEP authenticates (default `auto`).
    pub pep_authentication: PepAuthentication,
    /// The scope a PEP's bearer token must carry (default `arbiter.authzen`).
    pub pep_scope: String,
}

impl Default for AuthzenConfig {
    fn default() -> Self {
        Self {
            pep_authentication: PepAuthentication::Auto,
            pep_scope: "arbiter.authzen".to_owned(),
        }
    }
}

/// How an AuthZEN caller (PEP) authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PepAuthentication {
    /// `none` on a loopback HTTP listener, `token-or-certificate` on any other.
    Auto,
    /// Anyone who reaches the listener may ask.
    None,
    /// A bearer token from a trusted issuer carrying `pep_scope`.
    Token,
    /// A TLS client certificate that chains to `[tls] client_ca_file`.
    Certificate,
    /// Either of the two.
    TokenOrCertificate,
}
