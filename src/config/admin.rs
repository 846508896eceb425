//! The `[admin]` section: who may use the control plane (`PolicyAdmin`) and the budgets of
//! the work it asks for (proofs, AuthZEN search). Read by `control`; imports nothing.

use std::path::PathBuf;

use serde::Deserialize;

/// Who may administer, and how much control-plane work may cost.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// How an administrator authenticates (default `auto`: anonymous only when the listener
    /// that serves `PolicyAdmin` is on loopback, with a warning; a token or a certificate on
    /// any other).
    pub authentication: AdminAuthentication,
    /// The scope a token needs to read: `Status`, `QueryPolicies`, `AnalyzePolicies`,
    /// `ComparePolicies` (default `arbiter.admin.read`).
    pub read_scope: String,
    /// The scope a token needs to change the live set, `Reload`; it also reads (default
    /// `arbiter.admin`).
    pub write_scope: String,
    /// CA bundle (PEM) an administrator's TLS client certificate chains to; such a
    /// certificate may read and change. Needs `[tls]` and a listener that asks for
    /// certificates (the admin listener does; on the gRPC listener set
    /// `grpc_client_certs = "optional"` or `required`).
    pub client_ca_file: Option<PathBuf>,
    /// The cvc5 executable proofs run; unset: `cvc5` on the `PATH`, then `CVC5`, then the
    /// repository's `tools/cvc5` over the PyPI wheel.
    pub solver: Option<PathBuf>,
    /// Longest a proof (`AnalyzePolicies`, `ComparePolicies`) may run, in seconds, before
    /// its solver is killed.
    pub proof_timeout_seconds: u64,
    /// Threads of the control plane's own runtime (proofs, searches, candidate loads).
    pub workers: usize,
    /// Searches (AuthZEN `search/*`) running at once; more wait.
    pub max_concurrent_searches: usize,
    /// Candidates one search page may examine (each is a decision).
    pub search_max_candidates: usize,
    /// Largest AuthZEN search request body, in bytes.
    pub search_max_body_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            authentication: AdminAuthentication::Auto,
            read_scope: "arbiter.admin.read".to_owned(),
            write_scope: "arbiter.admin".to_owned(),
            client_ca_file: None,
            solver: None,
            proof_timeout_seconds: 120,
            workers: 1,
            max_concurrent_searches: 2,
            search_max_candidates: 10_000,
            search_max_body_bytes: 64 * 1024,
        }
    }
}

impl AdminConfig {
    /// What is wrong with the section, if anything, given whether `[tls]` is set.
    pub fn invalid(&self, tls: bool) -> Option<String> {
        if self.client_ca_file.is_some() && !tls {
            return Some("[admin] client_ca_file needs [tls]".into());
        }
        if self.authentication == AdminAuthentication::Certificate && self.client_ca_file.is_none()
        {
            return Some(
                "[admin] authentication = \"certificate\" needs [admin] client_ca_file".into(),
            );
        }
        if self.read_scope.trim().is_empty() || self.write_scope.trim().is_empty() {
            return Some("[admin] `read_scope` and `write_scope` must not be empty".into());
        }
        if self.proof_timeout_seconds == 0 {
            return Some("[admin] `proof_timeout_seconds` must be at least 1".into());
        }
        if !(1..=16).contains(&self.workers) {
            return Some("[admin] `workers` must be from 1 to 16".into());
        }
        if self.max_concurrent_searches == 0 || self.search_max_candidates == 0 {
            return Some(
                "[admin] `max_concurrent_searches` and `search_max_candidates` must be at least 1"
                    .into(),
            );
        }
        if self.search_max_body_bytes < 1024 {
            return Some("[admin] `search_max_body_bytes` must be at least 1024".into());
        }
        None
    }
}

/// How an administrator authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminAuthentication {
    /// `none` when the listener serving `PolicyAdmin` is loopback, `token-or-certificate`
    /// on any other.
    Auto,
    /// Anyone who reaches the listener may administer.
    None,
    /// A bearer token from a trusted issuer carrying the read or write scope.
    Token,
    /// A TLS client certificate that chains to `[admin] client_ca_file`.
    Certificate,
    /// Either of the two.
    TokenOrCertificate,
}
