//! Bearer tokens: verification against trusted issuers (JWKS, files, HMAC by explicit
//! configuration; opaque tokens by RFC 7662 introspection), a cache of verified tokens until
//! their `exp`, the development issuer's key, and minting development tokens.
//!
//! Knows nothing of policies or transports. Never logs a raw token: a digest or `jti` only.

pub mod identity;
pub mod introspection;
pub mod issuer;
pub mod jwks;
mod jws;
pub mod keys;
pub mod mint;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub use identity::{identify, Identity, IdentityClaims, PrincipalKind};
pub use issuer::{Issuer, KeySource};

use jws::{issuer_key, looks_like_jws, map_jwt_error, truncate, unverified_alg, unverified_issuer};

use crate::clock::Clock;
use crate::config::Config;

/// Revoked ids kept before the first prune of expired ones.
const MIN_REVOKED_PRUNE: usize = 10_000;

/// A SHA-256 digest of a raw token: the cache key and the token's name in logs.
pub type TokenDigest = [u8; 32];

/// Why a token was not accepted. Every message is safe to log and to return to callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS with three base64url parts and JSON header and payload.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is `none` or an algorithm this issuer does not allow.
    #[error("algorithm `{0}` is not accepted")]
    UnsupportedAlgorithm(String),
    /// `iss` names no configured issuer.
    #[error("untrusted issuer `{0}`")]
    UntrustedIssuer(String),
    /// No key of the issuer has this `kid`, even after a refresh.
    #[error("unknown key id `{0}` for issuer `{1}`")]
    UnknownKey(String, String),
    /// The token has no `kid` and the issuer has several keys.
    #[error("token has no `kid` and issuer `{0}` has several keys")]
    MissingKeyId(String),
    /// The header's `alg` differs from the algorithm the key is bound to.
    #[error("algorithm `{token}` does not match the key's `{key}`")]
    AlgorithmMismatch {
        /// What the token claims.
        token: String,
        /// What the key allows.
        key: String,
    },
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` names none of the accepted audiences.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// `iss` does not match.
    #[error("token issuer does not match")]
    WrongIssuer,
    /// A required claim is absent.
    #[error("token lacks required claim `{0}`")]
    MissingClaim(String),
    /// A claim has the wrong JSON type.
    #[error("token claim has an invalid format: {0}")]
    InvalidClaim(String),
    /// The token's `jti` was revoked.
    #[error("token revoked")]
    Revoked,
    /// The client the token was issued to is disabled (or its software statement revoked).
    #[error("token's client is disabled")]
    ClientDisabled,
    /// `typ` header differs from the issuer's required type.
    #[error("token type must be `{0}`")]
    WrongType(String),
    /// The issuer's keys could not be fetched yet.
    #[error("no keys available for issuer `{0}`")]
    KeysUnavailable(String),
    /// The issuer's introspection endpoint says the token is not active (unknown, expired,
    /// revoked).
    #[error("token is not active")]
    Inactive,
    /// Not a JWT, and no configured issuer introspects tokens like it.
    #[error("token is not a JWT and no issuer is configured to introspect it")]
    UnknownOpaque,
    /// The issuer's introspection endpoint gave no usable answer (down, slow, refusing
    /// Arbiter's credentials, or an answer that does not verify): Arbiter cannot tell.
    #[error("introspection at issuer `{0}` failed: {1}")]
    IntrospectionFailed(String, String),
}

impl TokenError {
    /// Whether the token may be good and Arbiter could not tell (a deny with `ERROR`, not
    /// `INVALID_TOKEN`: the caller did nothing wrong, and asking again may succeed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::IntrospectionFailed(..))
    }
}

/// A token whose signature and claims were verified.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// SHA-256 of the raw token.
    pub digest: TokenDigest,
    /// `iss`.
    pub issuer: String,
    /// `sub`, if present.
    pub sub: Option<String>,
    /// The client, by the issuer's client claims (see [`IdentityClaims`]).
    pub client_id: Option<String>,
    /// The principal and client the token names (the one caller identity).
    pub identity: Identity,
    /// The issuer's key that verified it. When the issuer withdraws that key (a JWKS
    /// refresh without it, a rotation past it), the cached token is verified again, and
    /// refused if no key of the issuer verifies it any more.
    pub key: Option<std::sync::Weak<jwks::Key>>,
    /// From `scope` (space-separated) or `scp` (array or string).
    pub scopes: Vec<String>,
    /// `exp`, seconds since the epoch (for an introspected token without `exp`, when it
    /// must be introspected again).
    pub exp: u64,
    /// For an introspected token, when its issuer must be asked again (at most
    /// `max_cache_seconds` after the answer, never past `exp`); `None` for a JWT, good
    /// until its `exp`.
    pub recheck_at: Option<u64>,
    /// `jti`, if present.
    pub jti: Option<String>,
    /// Every claim, for the Cedar context.
    pub claims: Map<String, Value>,
    /// What the decision point derived from this token (its context values), kept with
    /// it so they live and die with the cached token.
    pub derived: Derived,
}

/// A slot for what a layer above derives from a verified token. Opaque here: the token
/// layer neither knows nor reads what is kept. A clone of the token starts with it empty.
#[derive(Default)]
pub struct Derived(ArcSwapOption<Box<dyn std::any::Any + Send + Sync>>);

impl Derived {
    /// `read` of what was kept, if anything is and it is a `T`.
    pub fn read<T: std::any::Any, R>(&self, read: impl FnOnce(&T) -> R) -> Option<R> {
        self.0
            .load()
            .as_deref()
            .and_then(|kept| kept.downcast_ref::<T>())
            .map(read)
    }

    /// Keeps `value`, replacing what was there.
    pub fn set<T: std::any::Any + Send + Sync>(&self, value: T) {
        self.0.store(Some(Arc::new(Box::new(value))));
    }
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

impl VerifiedToken {
    /// RFC 8705 §3: a token carrying `cnf.x5t#S256` is good only with that certificate
    /// (`presented`: the `x5t#S256` of the caller's certificate, empty without one). The one
    /// binding check of every front door that accepts a token.
    pub fn check_binding(&self, presented: &str) -> Result<(), &'static str> {
        let bound = self
            .claims
            .get("cnf")
            .and_then(|c| c.get("x5t#S256"))
            .and_then(Value::as_str);
        match bound {
            None => Ok(()),
            Some(_) if presented.is_empty() => {
                Err("the token is bound to a client certificate (RFC 8705) and none was presented")
            }
            Some(b) if b == presented => Ok(()),
            Some(_) => Err("the token is bound to another client certificate (RFC 8705)"),
        }
    }

    /// Whether the token carries a scope.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// How the token is named in logs: its `jti`, else a digest prefix.
    pub fn log_name(&self) -> String {
        match &self.jti {
            Some(jti) => format!("jti:{jti}"),
            None => digest_name(&self.digest),
        }
    }
}

/// How a token is named in logs by its digest alone: a prefix of it.
pub fn digest_name(digest: &TokenDigest) -> String {
    format!("sha256:{}", hex::encode(&digest[..8]))
}

/// Verifies bearer tokens against the trusted issuers and caches the verified ones.
pub struct Verifier {
    issuers: HashMap<String, Arc<Issuer>>,
    /// Bounded, O(1) eviction: a flood of distinct valid tokens evicts, never scans.
    cache: quick_cache::sync::Cache<TokenDigest, Arc<VerifiedToken>>,
    /// Revoked token ids: `jti` → the issuers that revoked it, each with the token's `exp`.
    /// Keyed by `jti` alone so a decision looks it up without allocating.
    revoked: DashMap<String, Vec<(String, u64)>>,
    /// Past this many revoked ids, the expired ones are pruned (then it doubles: a scan
    /// is amortised over as many revocations as it looked at).
    prune_revoked_at: std::sync::atomic::AtomicUsize,
    /// Disabled clients: `client_id` → the issuer that issued their tokens. Swapped whole;
    /// read without locking.
    disabled: ArcSwap<HashMap<String, String>>,
    /// Issuers whose opaque tokens are introspected, and their calls in flight.
    opaque: introspection::OpaqueTokens,
    leeway: u64,
    http: reqwest::Client,
    clock: Clock,
}

impl Verifier {
    /// A verifier for the configured issuers plus `extra` (e.g. the development issuer).
    /// Fails when an introspecting issuer's secret, key or certificate files do not load.
    pub fn new(config: &Config, extra: Vec<Issuer>) -> Result<Self, introspection::SetupError> {
        let mut issuers = HashMap::new();
        for issuer in extra {
            issuers.insert(issuer.name.clone(), Arc::new(issuer));
        }
        for c in &config.issuers {
            issuers.insert(c.issuer.clone(), Arc::new(Issuer::from_config(c)));
        }
        let opaque = introspection::OpaqueTokens::new(
            &config.issuers,
            &issuers,
            config.token_cache_capacity,
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("arbiter/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Ok(Self {
            issuers,
            cache: quick_cache::sync::Cache::new(config.token_cache_capacity.max(1)),
            revoked: DashMap::new(),
            prune_revoked_at: std::sync::atomic::AtomicUsize::new(MIN_REVOKED_PRUNE),
            disabled: ArcSwap::from_pointee(HashMap::new()),
            opaque,
            leeway: config.leeway_seconds,
            http,
            clock: Clock::system(),
        })
    }

    /// The same verifier reading `clock` (tests move a manual clock instead of sleeping).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock cached tokens expire by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Starts key refreshers and waits (up to `first_fetch`) for each issuer's first fetch.
    pub async fn start(&self, shutdown: &CancellationToken, first_fetch: Duration) {
        for issuer in self.issuers.values() {
            tokio::spawn(
                issuer
                    .clone()
                    .run_refresher(self.http.clone(), shutdown.clone()),
            );
        }
        for issuer in self.issuers.values() {
            issuer.wait_first_attempt(first_fetch).await;
        }
    }

    /// One trusted issuer by its `iss`.
    pub fn issuer(&self, name: &str) -> Option<&Arc<Issuer>> {
        self.issuers.get(name)
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> impl Iterator<Item = &Arc<Issuer>> {
        self.issuers.values()
    }

    /// A verified token from the cache, if this exact token was verified before, has not
    /// expired, the key that verified it is still the issuer's, and (introspected) its
    /// issuer need not be asked again yet. The hot path of a repeat decision: one digest
    /// and one map lookup.
    pub fn cached(&self, digest: &TokenDigest) -> Option<Arc<VerifiedToken>> {
        let hit = self.cache.get(digest)?;
        let key_gone = hit.key.as_ref().is_some_and(|k| k.strong_count() == 0);
        let now = self.clock.now();
        if !key_gone && hit.exp + self.leeway > now && hit.recheck_at.is_none_or(|at| at > now) {
            Some(hit)
        } else {
            self.cache.remove(digest);
            None
        }
    }

    /// Marks a token id revoked until `exp`: the next decision on it is a deny even if it
    /// was verified before ([`Self::verify`] checks revocations on cache hits too, so
    /// nothing is scanned here).
    pub fn revoke(&self, issuer: &str, jti: &str, exp: u64) {
        let known = |by: &Vec<(String, u64)>| by.iter().any(|(i, _)| i == issuer);
        if self.revoked.get(jti).is_some_and(|by| known(&by)) {
            // Known already (the store is polled again and again): nothing to do.
            return;
        }
        let prune_at = self.prune_revoked_at.load(Ordering::Relaxed);
        if self.revoked.len() > prune_at {
            let now = self.clock.now();
            self.revoked.retain(|_, by| {
                by.retain(|(_, e)| *e + self.leeway > now);
                !by.is_empty()
            });
            self.prune_revoked_at.store(
                (self.revoked.len() * 2).max(MIN_REVOKED_PRUNE),
                Ordering::Relaxed,
            );
        }
        let mut by = self.revoked.entry(jti.to_owned()).or_default();
        if known(&by) {
            return;
        }
        by.push((issuer.to_owned(), exp));
    }

    fn is_revoked(&self, token: &VerifiedToken) -> bool {
        if self.revoked.is_empty() {
            return false;
        }
        match &token.jti {
            Some(jti) => self
                .revoked
                .get(jti.as_str())
                .is_some_and(|by| by.iter().any(|(issuer, _)| *issuer == token.issuer)),
            None => false,
        }
    }

    /// Verifies a token: from the cache, or by signature and claims (refreshing the issuer's
    /// keys once when the `kid` is unknown). A revoked token is refused either way.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let verified = self.verify_unrevoked(token).await?;
        if self.is_revoked(&verified) {
            return Err(TokenError::Revoked);
        }
        if self.is_client_disabled(&verified) {
            return Err(TokenError::ClientDisabled);
        }
        Ok(verified)
    }

    /// [`Self::verify`] for a token that must be a JWT of `issuer`; anything else is
    /// refused before any work, so Arbiter's own introspection and revocation endpoints never
    /// make it ask another server about a token.
    pub async fn verify_issued_by(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        if !looks_like_jws(token) {
            return Err(TokenError::Malformed("not a JWT"));
        }
        if unverified_issuer(token)? != issuer {
            return Err(TokenError::WrongIssuer);
        }
        self.verify(token).await
    }

    /// Refuses, from now on, every token `issuer` issued to these clients (they were
    /// disabled, or their software statement was revoked).
    pub fn disable_clients(&self, issuer: &str, client_ids: &[String]) {
        if client_ids.is_empty() {
            return;
        }
        self.disabled.rcu(|current| {
            let mut next = HashMap::clone(current);
            for id in client_ids {
                next.insert(id.clone(), issuer.to_owned());
            }
            next
        });
    }

    /// Replaces the disabled clients of `issuer` with exactly these (as the store lists
    /// them), so clients disabled elsewhere (the CLI, another instance) are refused too.
    pub fn set_disabled_clients(&self, issuer: &str, client_ids: Vec<String>) {
        let current = self.disabled.load();
        let same = current.values().filter(|i| *i == issuer).count() == client_ids.len()
            && client_ids
                .iter()
                .all(|id| current.get(id).is_some_and(|i| i == issuer));
        if same {
            return;
        }
        self.disabled.rcu(|current| {
            let mut next: HashMap<String, String> = current
                .iter()
                .filter(|(_, i)| *i != issuer)
                .map(|(c, i)| (c.clone(), i.clone()))
                .collect();
            for id in &client_ids {
                next.insert(id.clone(), issuer.to_owned());
            }
            next
        });
    }

    /// Whether `issuer`'s client `client_id` is disabled (as far as this process knows).
    pub fn client_disabled(&self, issuer: &str, client_id: &str) -> bool {
        let disabled = self.disabled.load();
        !disabled.is_empty() && disabled.get(client_id).is_some_and(|i| i == issuer)
    }

    fn is_client_disabled(&self, token: &VerifiedToken) -> bool {
        let disabled = self.disabled.load();
        if disabled.is_empty() {
            return false;
        }
        token
            .client_id
            .as_deref()
            .and_then(|id| disabled.get(id))
            .is_some_and(|issuer| *issuer == token.issuer)
    }

    async fn verify_unrevoked(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let digest = digest(token);
        let hit = self.cached(&digest);
        crate::telemetry::metrics::METRICS.token_cache(hit.is_some());
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            // The `token.verify` span's, when traces are on.
            let cache = if hit.is_some() { "hit" } else { "miss" };
            tracing::Span::current().record("token.cache", cache);
        }
        if let Some(hit) = hit {
            return Ok(hit);
        }
        // Which issuer an opaque token is for is configuration: a prefix, else (for what
        // is not a JWS) the default introspecting issuer. Never the `iss` of a JWT that
        // names another issuer.
        if let Some(introspector) = self.opaque.by_prefix(token) {
            return self.introspect(introspector, token, digest).await;
        }
        if !looks_like_jws(token) {
            if let Some(introspector) = self.opaque.fallback() {
                return self.introspect(introspector, token, digest).await;
            }
            if !self.opaque.is_empty() {
                return Err(TokenError::UnknownOpaque);
            }
        }
        let header = decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Json(_) => TokenError::UnsupportedAlgorithm(unverified_alg(token)),
            _ => TokenError::Malformed("invalid header"),
        })?;
        let iss = unverified_issuer(token)?;
        let issuer = self
            .issuers
            .get(&iss)
            .ok_or_else(|| TokenError::UntrustedIssuer(truncate(&iss, 200)))?;
        if matches!(issuer.source, KeySource::None) {
            // An issuer without keys: its JWTs are as opaque to Arbiter as any other token.
            return match self.opaque.of(&issuer.name) {
                Some(introspector) => self.introspect(introspector, token, digest).await,
                None => Err(TokenError::KeysUnavailable(issuer.name.clone())),
            };
        }
        let alg = header.alg;
        let validation = issuer.validation(alg, self.leeway);
        // The key that verified the token: a cached token lives only as long as it does.
        let mut verified_with: Option<std::sync::Weak<jwks::Key>> = None;
        let verified = if let Some(key) = issuer.hmac_key(alg) {
            decode::<Map<String, Value>>(token, key, &validation)
        } else {
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(TokenError::UnsupportedAlgorithm(format!("{alg:?}")));
            }
            let key = issuer_key(issuer, &header).await?;
            verified_with = Some(Arc::downgrade(&key));
            decode::<Map<String, Value>>(token, &key.decoding, &validation)
        }
        .map_err(map_jwt_error)?;
        if let Some(typ) = &issuer.required_typ {
            let actual = header.typ.as_deref().unwrap_or_default();
            let matches = actual.eq_ignore_ascii_case(typ)
                || actual
                    .strip_prefix("application/")
                    .is_some_and(|t| t.eq_ignore_ascii_case(typ));
            if !matches {
                return Err(TokenError::WrongType(typ.clone()));
            }
        }
        let mut token =
            VerifiedToken::from_claims(digest, verified.claims, &issuer.identity, None)?;
        token.key = verified_with;
        let token = Arc::new(token);
        self.remember(token.clone());
        Ok(token)
    }

    fn remember(&self, token: Arc<VerifiedToken>) {
        self.cache.insert(token.digest, token);
    }

    /// Number of cached tokens.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}

impl VerifiedToken {
    /// A token from claims that were verified elsewhere (policy tests, replay of logged
    /// decisions); its digest is over the claims, so it never matches a real token's.
    /// The default [`IdentityClaims`] name principal and client.
    pub fn from_verified_claims(claims: Map<String, Value>) -> Result<Self, TokenError> {
        let digest = digest(&Value::Object(claims.clone()).to_string());
        Self::from_claims(digest, claims, &IdentityClaims::default(), None)
    }

    /// The token of verified claims; `exp` is required unless `exp_unknown` says until when
    /// a token without one is good (an introspection answer need not carry `exp`).
    fn from_claims(
        digest: TokenDigest,
        claims: Map<String, Value>,
        names: &IdentityClaims,
        exp_unknown: Option<u64>,
    ) -> Result<Self, TokenError> {
        let string = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let exp = match (claims.get("exp"), exp_unknown) {
            (None, Some(until)) => Some(until),
            (exp, _) => exp.and_then(Value::as_u64),
        }
        .ok_or_else(|| TokenError::InvalidClaim("`exp` must be a number".into()))?;
        let scopes = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(_) => return Err(TokenError::InvalidClaim("`scope` must be a string".into())),
            None => Vec::new(),
        };
        let identity = identify(&claims, names).ok_or_else(|| {
            TokenError::MissingClaim(format!("{} or {}", names.user, names.client.join(" or ")))
        })?;
        Ok(Self {
            digest,
            issuer: string("iss").unwrap_or_default(),
            sub: string(&names.user),
            client_id: identity.client_id.clone(),
            identity,
            key: None,
            scopes,
            exp,
            recheck_at: None,
            jti: string("jti"),
            derived: Derived::default(),
            claims,
        })
    }
}

/// SHA-256 of a raw token.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cached_tokens_expire_by_the_verifiers_clock() {
        let clock = Clock::manual(1_000_000);
        let verifier = Verifier::new(&Config::default(), Vec::new())
            .unwrap()
            .with_clock(clock.clone());
        let Value::Object(claims) =
            json!({"iss": "i", "sub": "s", "client_id": "c", "exp": 1_000_100})
        else {
            unreachable!()
        };
        let token = Arc::new(VerifiedToken::from_verified_claims(claims).unwrap());
        verifier.remember(token.clone());
        assert!(verifier.cached(&token.digest).is_some());
        clock.advance(100 + verifier.leeway - 1);
        assert!(
            verifier.cached(&token.digest).is_some(),
            "within the leeway"
        );
        clock.advance(1);
        assert!(
            verifier.cached(&token.digest).is_none(),
            "expired, and dropped"
        );
        assert_eq!(verifier.cache_len(), 0);
    }

    #[test]
    fn introspected_tokens_leave_the_cache_when_their_issuer_must_be_asked_again() {
        let clock = Clock::manual(1_000_000);
        let verifier = Verifier::new(&Config::default(), Vec::new())
            .unwrap()
            .with_clock(clock.clone());
        let Value::Object(claims) =
            json!({"iss": "i", "sub": "s", "client_id": "c", "exp": 1_000_900})
        else {
            unreachable!()
        };
        let mut token = VerifiedToken::from_verified_claims(claims).unwrap();
        token.recheck_at = Some(1_000_010);
        let token = Arc::new(token);
        verifier.remember(token.clone());
        clock.advance(9);
        assert!(verifier.cached(&token.digest).is_some());
        clock.advance(1);
        assert!(
            verifier.cached(&token.digest).is_none(),
            "asked again long before `exp`"
        );
    }
}
