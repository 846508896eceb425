//! Opaque (reference) access tokens, asked about at their issuer's RFC 7662 introspection
//! endpoint: which issuer a token belongs to (configuration, never a guess), how Arbiter
//! authenticates there, the signed answers of RFC 9701, one call in flight per token, and
//! how long answers are kept. An active answer becomes a [`VerifiedToken`] through the same
//! claims, identity and audience rules as a JWT's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dashmap::DashMap;
use jsonwebtoken::{decode, decode_header, Validation};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use super::keys::SigningKey;
use super::{digest_name, Issuer, TokenDigest, TokenError, VerifiedToken, Verifier};
use crate::config::{IntrospectionAuth, IntrospectionConfig, IssuerConfig};

/// Largest introspection answer accepted.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Lifetime of a client assertion (`private_key_jwt`).
const ASSERTION_SECONDS: u64 = 60;
/// How far a signed answer's `iat` may be from now, beyond the leeway.
const SIGNED_ANSWER_AGE: u64 = 60;
/// The media type of a signed answer (RFC 9701 §5).
const JWT_ANSWER: &str = "application/token-introspection+jwt";

/// Why an issuer's introspection client could not be set up (a key or certificate file).
#[derive(Debug, thiserror::Error)]
#[error("issuer `{issuer}` introspection: {why}")]
pub struct SetupError {
    issuer: String,
    why: String,
}

/// How Arbiter proves who it is to the endpoint.
enum Credentials {
    /// The whole `Authorization: Basic …` value.
    Basic(String),
    /// `client_secret` for the form body.
    Post(String),
    /// The key signing client assertions, and their `aud`.
    Assertion {
        key: Box<SigningKey>,
        audience: String,
    },
    /// The client certificate is the HTTP client's; only `client_id` goes in the body.
    Certificate,
}

/// One issuer's introspection endpoint.
pub struct Introspector {
    issuer: Arc<Issuer>,
    endpoint: String,
    client_id: String,
    credentials: Credentials,
    http: reqwest::Client,
    jwt_response: bool,
    max_cache: u64,
    inactive_cache: u64,
}

/// What the endpoint said about a token.
#[derive(Debug)]
enum Answer {
    /// `active: true`, with every member of the answer.
    Active(Map<String, Value>),
    /// `active: false`: unknown, expired, revoked, or not for Arbiter to see.
    Inactive,
}

/// Why the endpoint gave no usable answer: the metric's outcome and a message.
#[derive(Debug)]
struct Failure {
    outcome: &'static str,
    why: String,
}

impl Failure {
    fn new(outcome: &'static str, why: impl Into<String>) -> Self {
        Self {
            outcome,
            why: why.into(),
        }
    }
}

impl Introspector {
    /// The client for `issuer`'s `[issuers.introspection]`: secrets, keys and certificates
    /// are read now, so a bad file stops the start instead of the first decision.
    pub fn new(
        config: &IssuerConfig,
        introspection: &IntrospectionConfig,
        issuer: Arc<Issuer>,
    ) -> Result<Self, SetupError> {
        let fail = |why: String| SetupError {
            issuer: config.issuer.clone(),
            why,
        };
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| fail(format!("`{}`: {e}", path.display())))
        };
        let secret = || -> Result<String, SetupError> {
            match (
                &introspection.client_secret,
                &introspection.client_secret_file,
            ) {
                (Some(secret), _) => Ok(secret.clone()),
                (None, Some(file)) => String::from_utf8(read(file)?)
                    .map(|s| s.trim_end().to_owned())
                    .map_err(|_| fail(format!("`{}` is not UTF-8", file.display()))),
                (None, None) => Err(fail("no client secret".into())),
            }
        };
        let timeout = Duration::from_millis(introspection.timeout_ms);
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would send the token and the credentials somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("arbiter/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &introspection.ca_file {
            let roots = reqwest::Certificate::from_pem_bundle(&read(ca)?)
                .map_err(|e| fail(format!("`{}`: {e}", ca.display())))?;
            for root in roots {
                http = http.add_root_certificate(root);
            }
        }
        let id = &introspection.client_id;
        let credentials = match introspection.auth_method {
            IntrospectionAuth::ClientSecretBasic => {
                // RFC 6749 §2.3.1: each part form-encoded before the Basic encoding.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair: String = [encode(id), encode(&secret()?)].join(":");
                Credentials::Basic(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            IntrospectionAuth::ClientSecretPost => Credentials::Post(secret()?),
            IntrospectionAuth::PrivateKeyJwt => {
                let path = introspection
                    .private_key_file
                    .as_deref()
                    .ok_or_else(|| fail("no `private_key_file`".into()))?;
                let der = pkcs8_der(&read(path)?)
                    .ok_or_else(|| fail(format!("`{}` is not a PKCS#8 PEM key", path.display())))?;
                let alg = super::keys::algorithm(introspection.assertion_alg);
                let mut key = SigningKey::from_pkcs8(alg, &der)
                    .map_err(|e| fail(format!("`{}` is not a {alg:?} key: {e}", path.display())))?;
                if let Some(kid) = &introspection.assertion_key_id {
                    key.kid = kid.clone();
                }
                Credentials::Assertion {
                    key: Box::new(key),
                    audience: introspection
                        .assertion_audience
                        .clone()
                        .unwrap_or_else(|| introspection.endpoint.clone()),
                }
            }
            IntrospectionAuth::TlsClientAuth => {
                let (Some(cert), Some(key)) = (
                    &introspection.client_cert_file,
                    &introspection.client_key_file,
                ) else {
                    return Err(fail("no `client_cert_file` and `client_key_file`".into()));
                };
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| fail(format!("client certificate: {e}")))?;
                http = http.identity(identity);
                Credentials::Certificate
            }
        };
        let http = http
            .build()
            .map_err(|e| fail(format!("HTTP client: {e}")))?;
        Ok(Self {
            issuer,
            endpoint: introspection.endpoint.clone(),
            client_id: id.clone(),
            credentials,
            http,
            jwt_response: introspection.jwt_response,
            max_cache: introspection.max_cache_seconds,
            inactive_cache: introspection.inactive_cache_seconds,
        })
    }

    /// The issuer whose tokens this endpoint answers for.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// Asks about a token Arbiter made up: an endpoint that answers `active: false` is
    /// reachable and takes Arbiter's credentials (`arbiter serve --check-config`).
    pub async fn probe(&self, leeway: u64) -> Result<(), String> {
        let probe = format!("arbiter-probe-{}", uuid::Uuid::now_v7());
        match self.call(&probe, leeway, crate::clock::now()).await {
            Ok(Answer::Inactive) => Ok(()),
            Ok(Answer::Active(_)) => Err("a made-up token was reported active".into()),
            Err(f) => Err(f.why),
        }
    }

    /// The form body of a request about `token`, with Arbiter's credentials in it (all but
    /// a Basic header's).
    fn form(&self, token: &str, now: u64) -> Result<String, Failure> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token)
            .append_pair("token_type_hint", "access_token");
        match &self.credentials {
            Credentials::Basic(_) => {}
            Credentials::Post(secret) => {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_secret", secret);
            }
            Credentials::Assertion { key, audience } => {
                let claims = json!({
                    "iss": self.client_id,
                    "sub": self.client_id,
                    "aud": audience,
                    "jti": uuid::Uuid::now_v7().to_string(),
                    "iat": now,
                    "exp": now + ASSERTION_SECONDS,
                });
                let assertion = key
                    .sign_jwt("JWT", &claims)
                    .map_err(|e| Failure::new("error", format!("client assertion: {e}")))?;
                form.append_pair("client_id", &self.client_id)
                    .append_pair(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .append_pair("client_assertion", &assertion);
            }
            Credentials::Certificate => {
                form.append_pair("client_id", &self.client_id);
            }
        }
        Ok(form.finish())
    }

    /// One introspection request and its answer.
    async fn call(&self, token: &str, leeway: u64, now: u64) -> Result<Answer, Failure> {
        let accept = if self.jwt_response {
            JWT_ANSWER
        } else {
            "application/json"
        };
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::ACCEPT, accept)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Credentials::Basic(header) = &self.credentials {
            request = request.header(reqwest::header::AUTHORIZATION, header);
        }
        let response = request
            .body(self.form(token, now)?)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    Failure::new("timeout", "the endpoint did not answer in time")
                } else {
                    Failure::new("unreachable", format!("the endpoint is unreachable: {e}"))
                }
            })?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(Failure::new(
                "http_error",
                format!("the endpoint answered HTTP {}", status.as_u16()),
            ));
        }
        let media = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let body = super::issuer::read_bounded(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| {
                if e.contains("timed out") {
                    Failure::new("timeout", "the endpoint did not answer in time")
                } else {
                    Failure::new("bad_response", format!("answer: {e}"))
                }
            })?;
        let members = if self.jwt_response {
            if media != JWT_ANSWER {
                return Err(Failure::new(
                    "bad_response",
                    format!(
                        "a signed answer ({JWT_ANSWER}, RFC 9701) was asked for, not `{media}`"
                    ),
                ));
            }
            self.signed_members(&body, leeway, now).await?
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(members)) => members,
                _ => {
                    return Err(Failure::new(
                        "bad_response",
                        "the answer is not a JSON object",
                    ))
                }
            }
        };
        match members.get("active") {
            Some(Value::Bool(true)) => Ok(Answer::Active(members)),
            Some(Value::Bool(false)) => Ok(Answer::Inactive),
            _ => Err(Failure::new(
                "bad_response",
                "the answer's `active` is not a boolean",
            )),
        }
    }

    /// The members of a signed answer (RFC 9701): a JWS of the issuer's keys, typed
    /// `token-introspection+jwt`, from the issuer, to Arbiter's client id, fresh.
    async fn signed_members(
        &self,
        body: &[u8],
        leeway: u64,
        now: u64,
    ) -> Result<Map<String, Value>, Failure> {
        let bad = |why: &str| Failure::new("bad_signature", format!("signed answer: {why}"));
        let jwt = std::str::from_utf8(body)
            .map_err(|_| bad("not text"))?
            .trim();
        let header = decode_header(jwt).map_err(|_| bad("not a JWS"))?;
        let typ = header
            .typ
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if typ != "token-introspection+jwt" && typ != JWT_ANSWER {
            return Err(bad("`typ` is not `token-introspection+jwt`"));
        }
        let key = super::jws::issuer_key(&self.issuer, &header)
            .await
            .map_err(|e| bad(&e.to_string()))?;
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer.name]);
        validation.set_audience(&[&self.client_id]);
        validation.set_required_spec_claims(&["iss", "aud"]);
        validation.validate_exp = false;
        validation.leeway = leeway;
        let claims = decode::<Map<String, Value>>(jwt, &key.decoding, &validation)
            .map_err(|e| bad(&super::jws::map_jwt_error(e).to_string()))?
            .claims;
        let fresh = claims
            .get("iat")
            .and_then(Value::as_u64)
            .is_some_and(|iat| iat.abs_diff(now) <= leeway + SIGNED_ANSWER_AGE);
        if !fresh {
            return Err(bad("`iat` is missing or not recent"));
        }
        match claims.get("token_introspection") {
            Some(Value::Object(members)) => Ok(members.clone()),
            _ => Err(bad("no `token_introspection` object")),
        }
    }
}

/// The DER of the first PKCS#8 private key in a PEM document.
fn pkcs8_der(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem)
        .ok()
        .map(|k| k.secret_pkcs8_der().to_vec())
}

type Flight = Arc<OnceCell<Result<Arc<VerifiedToken>, TokenError>>>;

/// The introspecting issuers, which opaque tokens are whose, and what is in flight.
#[derive(Default)]
pub(super) struct OpaqueTokens {
    by_issuer: HashMap<String, Arc<Introspector>>,
    /// Longest prefix first.
    prefixes: Vec<(String, Arc<Introspector>)>,
    default: Option<Arc<Introspector>>,
    /// One call per token digest; every request with that token awaits the same cell.
    inflight: DashMap<TokenDigest, Flight>,
    /// Inactive or unacceptable answers until when, and why (bounded, O(1) eviction).
    rejected: Option<quick_cache::sync::Cache<TokenDigest, (u64, TokenError)>>,
}

impl OpaqueTokens {
    /// The introspecting issuers of the configuration.
    pub(super) fn new(
        configs: &[IssuerConfig],
        issuers: &HashMap<String, Arc<Issuer>>,
        capacity: usize,
    ) -> Result<Self, SetupError> {
        let mut opaque = Self::default();
        for config in configs {
            let (Some(introspection), Some(issuer)) =
                (&config.introspection, issuers.get(&config.issuer))
            else {
                continue;
            };
            let introspector = Arc::new(Introspector::new(config, introspection, issuer.clone())?);
            for prefix in &introspection.token_prefixes {
                opaque.prefixes.push((prefix.clone(), introspector.clone()));
            }
            if introspection.default {
                opaque.default = Some(introspector.clone());
            }
            opaque.by_issuer.insert(config.issuer.clone(), introspector);
        }
        opaque
            .prefixes
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        if !opaque.by_issuer.is_empty() {
            opaque.rejected = Some(quick_cache::sync::Cache::new((capacity / 4).max(16)));
        }
        Ok(opaque)
    }

    /// The introspector named by a token's prefix.
    pub(super) fn by_prefix(&self, token: &str) -> Option<&Arc<Introspector>> {
        self.prefixes
            .iter()
            .find(|(p, _)| token.starts_with(p.as_str()))
            .map(|(_, i)| i)
    }

    /// The introspector of opaque tokens no prefix names.
    pub(super) fn fallback(&self) -> Option<&Arc<Introspector>> {
        self.default.as_ref()
    }

    /// The introspector of an issuer, if it introspects.
    pub(super) fn of(&self, issuer: &str) -> Option<&Arc<Introspector>> {
        self.by_issuer.get(issuer)
    }

    /// Whether no issuer introspects.
    pub(super) fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }

    /// Every introspector.
    pub(super) fn all(&self) -> impl Iterator<Item = &Arc<Introspector>> {
        self.by_issuer.values()
    }
}

/// Removes a flight from the map when its last waiter leaves (finished or cancelled), so
/// abandoned calls leave nothing behind.
struct Boarding<'a> {
    inflight: &'a DashMap<TokenDigest, Flight>,
    digest: TokenDigest,
    flight: Flight,
}

impl Drop for Boarding<'_> {
    fn drop(&mut self) {
        // The map holds one reference and each waiter's boarding one: the last waiter out
        // (or anyone once the answer is in) takes the flight away.
        self.inflight.remove_if(&self.digest, |_, f| {
            Arc::ptr_eq(f, &self.flight) && (f.initialized() || Arc::strong_count(f) <= 2)
        });
        crate::telemetry::metrics::METRICS.introspections_in_flight(self.inflight.len());
    }
}

impl Verifier {
    /// A token of `introspector`'s issuer, by its answer: a cached rejection, the answer of
    /// the call in flight for this token, or a new call.
    pub(super) async fn introspect(
        &self,
        introspector: &Introspector,
        token: &str,
        digest: TokenDigest,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        if let Some(rejected) = &self.opaque.rejected {
            if let Some((until, why)) = rejected.get(&digest) {
                if until > self.clock.now() {
                    return Err(why);
                }
                rejected.remove(&digest);
            }
        }
        // The waiter's only reference to the flight is its boarding's: a waiter cancelled
        // mid-call (its caller's deadline) is then counted right when it leaves.
        let boarding = Boarding {
            inflight: &self.opaque.inflight,
            digest,
            flight: self
                .opaque
                .inflight
                .entry(digest)
                .or_default()
                .value()
                .clone(),
        };
        crate::telemetry::metrics::METRICS.introspections_in_flight(self.opaque.inflight.len());
        let answer = boarding
            .flight
            .get_or_init(|| self.introspect_now(introspector, token, digest))
            .await
            .clone();
        drop(boarding);
        answer
    }

    /// Calls the endpoint, counts the outcome, and keeps what may be kept.
    async fn introspect_now(
        &self,
        introspector: &Introspector,
        token: &str,
        digest: TokenDigest,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        let issuer = &introspector.issuer;
        let started = Instant::now();
        let now = self.clock.now();
        let answer = introspector.call(token, self.leeway, now).await;
        let result = match answer {
            Ok(Answer::Active(members)) => self
                .accept(introspector, members, digest, now)
                .map(Arc::new)
                .map_err(|e| ("refused", e)),
            Ok(Answer::Inactive) => Err(("inactive", TokenError::Inactive)),
            Err(failure) => {
                tracing::warn!(
                    issuer = %issuer.name,
                    token = %digest_name(&digest),
                    outcome = failure.outcome,
                    error = %failure.why,
                    "token introspection failed"
                );
                Err((
                    failure.outcome,
                    TokenError::IntrospectionFailed(issuer.name.clone(), failure.why),
                ))
            }
        };
        let outcome = match &result {
            Ok(_) => "active",
            Err((outcome, _)) => outcome,
        };
        crate::telemetry::metrics::METRICS.introspection(&issuer.name, outcome, started.elapsed());
        match result {
            Ok(verified) => {
                if verified.recheck_at.is_some_and(|at| at > now) {
                    self.remember(verified.clone());
                }
                Ok(verified)
            }
            Err((_, why)) => {
                let definite = !matches!(why, TokenError::IntrospectionFailed(..));
                if let (true, Some(rejected)) = (definite, &self.opaque.rejected) {
                    if introspector.inactive_cache > 0 {
                        rejected.insert(digest, (now + introspector.inactive_cache, why.clone()));
                    }
                }
                Err(why)
            }
        }
    }

    /// An active answer as a verified token, under the rules a JWT of the issuer obeys:
    /// its `iss` (the issuer's, when absent), an accepted `aud`, `exp` and `nbf` with the
    /// leeway, an access token (not a refresh token, not a proof-of-possession type Arbiter
    /// cannot check), and the issuer's identity claims.
    fn accept(
        &self,
        introspector: &Introspector,
        mut claims: Map<String, Value>,
        digest: TokenDigest,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        let issuer = &introspector.issuer;
        claims.remove("active");
        match claims.get("iss") {
            None => {
                claims.insert("iss".into(), Value::String(issuer.name.clone()));
            }
            Some(Value::String(iss)) if *iss == issuer.name => {}
            Some(_) => return Err(TokenError::WrongIssuer),
        }
        let addressed = match claims.get("aud") {
            Some(Value::String(aud)) => issuer.audiences.contains(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| issuer.audiences.iter().any(|a| a == aud)),
            None => return Err(TokenError::MissingClaim("aud".into())),
            Some(_) => false,
        };
        if !addressed {
            return Err(TokenError::WrongAudience);
        }
        let exp = match claims.get("exp") {
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| TokenError::InvalidClaim("`exp` must be a number".into()))?,
            ),
            None => None,
        };
        if exp.is_some_and(|exp| exp + self.leeway <= now) {
            return Err(TokenError::Expired);
        }
        if claims
            .get("nbf")
            .and_then(Value::as_u64)
            .is_some_and(|nbf| nbf > now + self.leeway)
        {
            return Err(TokenError::NotYetValid);
        }
        if let Some(kind) = claims.get("token_type") {
            let access = kind.as_str().is_some_and(|k| {
                k.eq_ignore_ascii_case("bearer")
                    || k == "access_token"
                    || k == "urn:ietf:params:oauth:token-type:access_token"
            });
            if !access {
                return Err(TokenError::InvalidClaim(
                    "`token_type` is not a bearer access token".into(),
                ));
            }
        }
        let recheck_at = now + introspector.max_cache;
        let recheck_at = exp.map_or(recheck_at, |exp| exp.min(recheck_at));
        let mut token =
            VerifiedToken::from_claims(digest, claims, &issuer.identity, Some(recheck_at))?;
        token.recheck_at = Some(recheck_at);
        Ok(token)
    }

    /// Checks each introspection endpoint with a made-up token.
    pub async fn probe_introspection(&self) -> Vec<(String, Result<(), String>)> {
        let mut out = Vec::new();
        for i in self.opaque.all() {
            out.push((i.issuer.name.clone(), i.probe(self.leeway).await));
        }
        out
    }
}
