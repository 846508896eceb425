//! `arbiter::client`: the thin async client gateways and services embed. One lazily
//! connected channel (tonic reconnects it), a deadline on every call, fail-closed on any
//! transport error or deadline (fail-open only by explicit opt-in, logged at error level on
//! every use), and a decision cache keyed by token digest + method + path + context digest
//! that honours the server's `cache_ttl_seconds`, never outlives the token's `exp`, is
//! bounded, and is dropped whole when an answer carries a new policy version. Concurrent
//! identical requests on a miss share one RPC.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument as _;

use crate::wire::json_to_struct;
use crate::wire::proto::{self, authorizer_client::AuthorizerClient};

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The PDP's gRPC URL, e.g. `http://127.0.0.1:50051`.
    pub endpoint: String,
    /// Longest wait for one decision; past it the call fails (closed).
    pub deadline: Duration,
    /// Longest wait to connect.
    pub connect_timeout: Duration,
    /// Most cached decisions; 0 disables the cache.
    pub cache_capacity: usize,
    /// Allow when the PDP cannot be reached. Off by default; every use is logged as an error.
    pub fail_open: bool,
    /// TLS to the PDP (an `https://` endpoint): the CA to verify it with, and optionally a
    /// client certificate for mTLS. Never "accept any certificate".
    pub tls: Option<ClientTls>,
}

/// How the client verifies the PDP and proves itself.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// PEM CA bundle the PDP's certificate must chain to.
    pub ca_file: std::path::PathBuf,
    /// PEM client certificate and key, for a PDP that requires mTLS.
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The name to verify, when it differs from the endpoint's host.
    pub domain: Option<String>,
}

impl ClientConfig {
    /// Defaults for `endpoint`: 250 ms deadline, 1 s connect timeout, 10 000 cached
    /// decisions, fail closed.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            deadline: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            cache_capacity: 10_000,
            fail_open: false,
            tls: None,
        }
    }
}

/// Errors building a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a valid URL.
    #[error("invalid PDP endpoint `{0}`")]
    Endpoint(String),
    /// The TLS files could not be used.
    #[error("PDP TLS: {0}")]
    Tls(String),
}

/// One question.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// Bearer token (without `Bearer `); empty for anonymous.
    pub token: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// Request path.
    pub path: &'a str,
    /// Free-form context (client IP, host, fraud score, …).
    pub context: &'a Map<String, Value>,
    /// RFC 8705: base64url SHA-256 of the client certificate the caller presented, for
    /// certificate-bound tokens; empty when none.
    pub client_cert_sha256: &'a str,
}

/// The answer, from the PDP or the cache.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Whether to let the request through.
    pub allowed: bool,
    /// Why.
    pub reason: proto::Reason,
    /// Scopes that would satisfy a permit, on insufficient scope.
    pub required_scopes: Vec<String>,
    /// Errors, safe to show.
    pub errors: Vec<String>,
    /// The decision id (of the RPC that decided, for a cached answer).
    pub decision_id: String,
    /// The policy version that decided: the content hash the cache is keyed on (it changes
    /// with every revision, and with any change a reused revision name would hide).
    pub policy_version: String,
    /// The revision that decided (the bundle's), as the fleet view and the logs name it.
    pub policy_revision: String,
    /// The token's principal, e.g. `Client::"demo"`.
    pub principal: Option<String>,
    /// What the determining policies ask the gateway to do: headers for the upstream, the
    /// status and body of a deny, metadata for later filters.
    pub outputs: proto::DecisionOutputs,
    /// Whether the answer came from the cache.
    pub cached: bool,
    /// Whether the PDP could not be reached (the answer is the fail-closed or fail-open
    /// default).
    pub unavailable: bool,
}

struct Cached {
    decision: Decision,
    until: Instant,
}

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// RPCs sent.
    pub rpcs: AtomicU64,
    /// Answers served from the cache.
    pub hits: AtomicU64,
    /// Times the cache was dropped for a new policy version.
    pub version_drops: AtomicU64,
}

type Key = [u8; 32];

/// The client. Cheap to share (`Arc`).
pub struct ArbiterClient {
    config: ClientConfig,
    rpc: AuthorizerClient<Channel>,
    /// Bounded, O(1) eviction: made-up paths by the million evict, never scan.
    cache: quick_cache::sync::Cache<Key, Arc<Cached>>,
    inflight: DashMap<Key, Arc<OnceCell<Decision>>>,
    version: std::sync::Mutex<String>,
    stats: ClientStats,
}

impl ArbiterClient {
    /// A client; the channel connects on first use and reconnects by itself.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|_| ClientError::Endpoint(config.endpoint.clone()))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &config.tls {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| ClientError::Tls(format!("{}: {e}", p.display())))
            };
            let mut settings = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(read(&tls.ca_file)?));
            if let Some((cert, key)) = &tls.identity {
                settings = settings.identity(tonic::transport::Identity::from_pem(
                    read(cert)?,
                    read(key)?,
                ));
            }
            if let Some(domain) = &tls.domain {
                settings = settings.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(settings)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
        }
        if config.fail_open {
            tracing::warn!(endpoint = %config.endpoint, "arbiter client configured to FAIL OPEN: requests are allowed when the PDP is unreachable");
        }
        Ok(Self {
            cache: quick_cache::sync::Cache::new(config.cache_capacity.max(1)),
            rpc: AuthorizerClient::new(endpoint.connect_lazy()),
            config,
            inflight: DashMap::new(),
            version: std::sync::Mutex::new(String::new()),
            stats: ClientStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// Cached decisions right now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Decides one request: from the cache, by joining an identical request in flight, or
    /// by one RPC. Never fails: an unreachable PDP is a deny (or, opted in, an allow).
    pub async fn check(&self, check: Check<'_>) -> Decision {
        let key = cache_key(&check);
        if self.config.cache_capacity > 0 {
            if let Some(hit) = self.cache.get(&key) {
                if hit.until > Instant::now() {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    let mut d = hit.decision.clone();
                    d.cached = true;
                    return d;
                }
                self.cache.remove(&key);
            }
        }
        let cell = self
            .inflight
            .entry(key)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let decision = cell.get_or_init(|| self.ask(check, key)).await.clone();
        self.inflight.remove_if(&key, |_, c| Arc::ptr_eq(c, &cell));
        decision
    }

    async fn ask(&self, check: Check<'_>, key: Key) -> Decision {
        self.stats.rpcs.fetch_add(1, Ordering::Relaxed);
        let mut request = tonic::Request::new(proto::AuthorizeRequest {
            token: check.token.to_owned(),
            method: check.method.to_owned(),
            path: check.path.to_owned(),
            context: if check.context.is_empty() {
                None
            } else {
                Some(json_to_struct(check.context))
            },
            explain: false,
            client_cert_sha256: check.client_cert_sha256.to_owned(),
        });
        request.set_timeout(self.config.deadline);
        let span = tracing::debug_span!(
            "pdp.authorize",
            otel.name = "arbiter.v1.Authorizer/Authorize",
            otel.kind = "client",
            rpc.system = "grpc",
        );
        crate::telemetry::propagation::inject_metadata(&span, request.metadata_mut());
        let mut rpc = self.rpc.clone();
        let answer = tokio::time::timeout(self.config.deadline, rpc.authorize(request))
            .instrument(span)
            .await;
        let response = match answer {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => {
                return self.unavailable(&format!("PDP error: {}", status.message()))
            }
            Err(_) => return self.unavailable("PDP deadline exceeded"),
        };
        let decision = Decision {
            allowed: response.decision == proto::Decision::Allow as i32,
            reason: proto::Reason::try_from(response.reason).unwrap_or(proto::Reason::Error),
            required_scopes: response.required_scopes,
            errors: response.errors,
            decision_id: response.decision_id,
            policy_version: response.policy_version,
            policy_revision: response.policy_revision,
            principal: response.principal.map(|p| p.entity),
            outputs: response.outputs.unwrap_or_default(),
            cached: false,
            unavailable: false,
        };
        self.remember(check.token, key, &decision, response.cache_ttl_seconds);
        decision
    }

    fn remember(&self, token: &str, key: Key, decision: &Decision, ttl_seconds: u32) {
        {
            let mut version = self
                .version
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *version != decision.policy_version {
                if !version.is_empty() {
                    self.cache.clear();
                    self.stats.version_drops.fetch_add(1, Ordering::Relaxed);
                }
                version.clone_from(&decision.policy_version);
            }
        }
        if self.config.cache_capacity == 0 || ttl_seconds == 0 {
            return;
        }
        let mut ttl = Duration::from_secs(u64::from(ttl_seconds));
        if let Some(left) = token_lifetime_left(token) {
            ttl = ttl.min(left);
        }
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(
            key,
            Arc::new(Cached {
                decision: decision.clone(),
                until: Instant::now() + ttl,
            }),
        );
    }

    fn unavailable(&self, why: &str) -> Decision {
        if self.config.fail_open {
            tracing::error!(endpoint = %self.config.endpoint, error = %why, "PDP unreachable: FAILING OPEN (allowing) as configured");
        } else {
            tracing::warn!(endpoint = %self.config.endpoint, error = %why, "PDP unreachable: denying (fail closed)");
        }
        Decision {
            allowed: self.config.fail_open,
            reason: proto::Reason::Error,
            required_scopes: Vec::new(),
            errors: vec![why.to_owned()],
            decision_id: String::new(),
            policy_version: String::new(),
            policy_revision: String::new(),
            principal: None,
            outputs: proto::DecisionOutputs::default(),
            cached: false,
            unavailable: true,
        }
    }
}

/// SHA-256 over the token's digest, method, path and the context's canonical JSON.
fn cache_key(check: &Check<'_>) -> Key {
    let mut h = Sha256::new();
    h.update(Sha256::digest(check.token.as_bytes()));
    h.update([0]);
    h.update(check.method.as_bytes());
    h.update([0]);
    h.update(check.path.as_bytes());
    h.update([0]);
    h.update(check.client_cert_sha256.as_bytes());
    h.update([0]);
    // serde_json's map keeps keys sorted, so equal contexts serialize equally.
    if let Ok(bytes) = serde_json::to_vec(check.context) {
        h.update(bytes);
    }
    h.finalize().into()
}

/// How long until the token's `exp`, read without verifying (the PDP verified it).
fn token_lifetime_left(token: &str) -> Option<Duration> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    Some(Duration::from_secs(exp.saturating_sub(crate::clock::now())))
}
