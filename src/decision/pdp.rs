//! The decision service every transport calls: bounds → token (cache or verify) → live
//! snapshot → [`verdict`] → decision log line. Transports convert their messages to an
//! [`AuthzRequest`] and the [`Answer`] back; nothing here knows gRPC or HTTP.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tracing::field::Empty;
use tracing::Instrument as _;

use super::context::check_bounds;
use super::{verdict, Caller, EntityRef, Input, Reason, Subject, Verdict};
use crate::policy::path::normalize;
use crate::policy::{LivePolicies, PolicySnapshot};
use crate::token::{VerifiedToken, Verifier};

/// Longest token accepted.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest path accepted.
pub(crate) const MAX_PATH_BYTES: usize = 4 * 1024;
/// Longest HTTP method accepted.
const MAX_METHOD_BYTES: usize = 32;
/// Longest action name accepted for a named resource (AuthZEN actions such as
/// `can_read_todos`).
const MAX_ACTION_BYTES: usize = 256;

/// One question, as a transport received it.
#[derive(Debug, Clone, Copy)]
pub struct AuthzRequest<'a> {
    /// The bearer token without `Bearer `; empty for an anonymous request.
    pub token: &'a str,
    /// Who asks when not a token's bearer (AuthZEN's asserted subject, the token
    /// endpoint's authenticated client); used only when `token` is empty.
    pub subject: Option<Subject<'a>>,
    /// HTTP method, any case; with a `resource`, any action of the schema, as written.
    pub method: &'a str,
    /// Raw request path, possibly with a query string; unused with a `resource`.
    pub path: &'a str,
    /// The resource, when the question names one instead of a path (AuthZEN).
    pub resource: Option<&'a EntityRef>,
    /// The caller's free-form context.
    pub context: &'a Map<String, Value>,
    /// Whether to explain every policy of the slice.
    pub explain: bool,
    /// RFC 8705: base64url SHA-256 of the client certificate presented; empty when none.
    pub client_cert_sha256: &'a str,
}

/// Who the token says the caller is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalInfo {
    /// The Cedar principal, e.g. `User::"alice"`.
    pub entity: String,
    /// `client_id`.
    pub client_id: String,
    /// `sub`.
    pub sub: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// `iss`.
    pub issuer: String,
    /// `jti`.
    pub jti: String,
}

/// A decision with everything a caller and the log need.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The verdict.
    pub verdict: Verdict,
    /// Version of the policy set that decided.
    pub policy_version: String,
    /// Revision of the policy set that decided (its bundle's, or the version).
    pub policy_revision: String,
    /// Unique id of this decision (UUIDv7), also in the log line.
    pub decision_id: String,
    /// The token's principal, when a valid token was given.
    pub principal: Option<PrincipalInfo>,
    /// How long a gateway may reuse the answer.
    pub cache_ttl_seconds: u32,
}

/// The policy decision point: policies + token verification.
pub struct Pdp {
    policies: Arc<LivePolicies>,
    verifier: Arc<Verifier>,
    ttl_cap: u32,
    /// Where a share of decisions is copied to (a shadow candidate), if anywhere.
    tap: std::sync::OnceLock<Arc<dyn super::tap::DecisionTap>>,
}

impl Pdp {
    /// A decision point over a policy store and a verifier.
    pub fn new(policies: Arc<LivePolicies>, verifier: Arc<Verifier>, ttl_cap: u32) -> Self {
        Self {
            policies,
            verifier,
            ttl_cap,
            tap: std::sync::OnceLock::new(),
        }
    }

    /// Copies a share of decisions (of requests for a path, with a token or none) to `tap`;
    /// set once, at start.
    pub fn set_tap(&self, tap: Arc<dyn super::tap::DecisionTap>) {
        let _ = self.tap.set(tap);
    }

    /// The policy store.
    pub fn policies(&self) -> &Arc<LivePolicies> {
        &self.policies
    }

    /// The token verifier.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// Decides one request. Never fails: every problem is a deny with a reason.
    pub async fn authorize(&self, req: AuthzRequest<'_>) -> Answer {
        self.authorize_logged(req, true).await
    }

    /// Decides one request of a larger question that logs itself once (an AuthZEN search):
    /// [`Pdp::authorize`] without the decision log line.
    pub async fn authorize_unlogged(&self, req: AuthzRequest<'_>) -> Answer {
        self.authorize_logged(req, false).await
    }

    async fn authorize_logged(&self, req: AuthzRequest<'_>, log: bool) -> Answer {
        let started = Instant::now();
        let span = decision_span();
        async {
            let (verdict, token, decided_by) = self.verify_and_evaluate(&req).await;
            // A tap sees logged decisions for a path, and copies only those it samples.
            let tap = self
                .tap
                .get()
                .filter(|t| log && req.subject.is_none() && req.resource.is_none() && t.wants());
            let sampled_token = tap.map(|_| token.clone());
            let answer = self.answer(started, &req, verdict, token, decided_by, log);
            if let (Some(tap), Some(token)) = (tap, sampled_token) {
                tap.offer(sample(&req, token, &answer));
            }
            answer
        }
        .instrument(span)
        .await
    }

    /// Decides a request whose caller Arbiter authenticated itself (the token endpoint's
    /// client, as [`Subject::Client`]): the same bounds, snapshot, decision, log line and
    /// metrics as [`Pdp::authorize`], without a token to verify (so without `.await`).
    pub fn authorize_authenticated(&self, req: AuthzRequest<'_>) -> Answer {
        let started = Instant::now();
        let _span = decision_span().entered();
        if !req.token.is_empty() {
            let verdict = Verdict::deny(Reason::Error, "a token needs `authorize`");
            return self.answer(started, &req, verdict, None, None, true);
        }
        let snapshot = self.policies.load();
        let verdict = verdict_for_verified(&snapshot, &req, None);
        self.answer(
            started,
            &req,
            verdict,
            None,
            Some(version_and_revision(&snapshot)),
            true,
        )
    }

    /// Refuses a request whose credentials a front door could not read (a malformed
    /// `Authorization` header): `invalid_request`, with the decision id, metrics and log
    /// line of any decision. Never decided as anonymous.
    pub fn refuse(&self, req: AuthzRequest<'_>, error: String) -> Answer {
        let _span = decision_span().entered();
        let verdict = Verdict::deny(Reason::InvalidRequest, error);
        self.answer(Instant::now(), &req, verdict, None, None, true)
    }

    fn answer(
        &self,
        started: Instant,
        req: &AuthzRequest<'_>,
        verdict: Verdict,
        token: Option<Arc<VerifiedToken>>,
        decided_by: Option<(String, String)>,
        log: bool,
    ) -> Answer {
        let decision_id = uuid::Uuid::now_v7().to_string();
        // The version of the snapshot that decided, not whatever is live by now.
        let (snapshot_version, snapshot_revision) = match decided_by {
            Some(v) => v,
            None => version_and_revision(&self.policies.load()),
        };
        let cache_ttl_seconds = match (&verdict.reason, &token) {
            // Not worth a place in a gateway's cache: an unknown route is as cheap to decide
            // again, and caching it let anyone fill the cache with made-up paths.
            (
                Reason::InvalidRequest | Reason::InvalidToken | Reason::Error | Reason::NoRoute,
                _,
            ) => 0,
            (_, Some(t)) => {
                // An introspected token's answer lasts only until its issuer is asked again.
                let until = t.recheck_at.map_or(t.exp, |at| at.min(t.exp));
                let left = until.saturating_sub(self.verifier.clock().now());
                u32::try_from(left).unwrap_or(u32::MAX).min(self.ttl_cap)
            }
            (_, None) => self.ttl_cap,
        };
        let principal = match (&token, req.subject) {
            (Some(t), _) => Some(principal_info(t)),
            (None, Some(subject)) if req.token.is_empty() => Some(PrincipalInfo {
                entity: subject.entity().uid.to_string(),
                client_id: match subject {
                    Subject::Client { client, .. } => client.uid.id().unescaped().to_owned(),
                    Subject::Asserted(_) => String::new(),
                },
                issuer: match subject {
                    Subject::Client { issuer, .. } => issuer.to_owned(),
                    Subject::Asserted(_) => String::new(),
                },
                ..PrincipalInfo::default()
            }),
            _ => None,
        };
        let answer = Answer {
            verdict,
            policy_version: snapshot_version,
            policy_revision: snapshot_revision,
            decision_id,
            principal,
            cache_ttl_seconds,
        };
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            // The decision span's, when traces are on.
            let span = tracing::Span::current();
            span.record("decision.id", answer.decision_id.as_str());
            span.record("decision.allowed", answer.verdict.allowed);
            span.record("decision.reason", answer.verdict.reason.as_str());
            span.record("policy.revision", answer.policy_revision.as_str());
            if let Some(route) = &answer.verdict.route {
                span.record("decision.route", route.as_str());
            }
        }
        let took = started.elapsed();
        crate::telemetry::metrics::METRICS.decision(
            answer.verdict.allowed,
            answer.verdict.reason.as_str(),
            took,
        );
        if log {
            tracing::debug_span!("decision.log").in_scope(|| {
                super::log::log_decision(&answer, req, token.as_deref(), took);
            });
        }
        answer
    }

    /// The verdict, the verified token, and the version of the snapshot that decided (`None`
    /// when the request was refused before any policy was consulted).
    async fn verify_and_evaluate(
        &self,
        req: &AuthzRequest<'_>,
    ) -> (
        Verdict,
        Option<Arc<VerifiedToken>>,
        Option<(String, String)>,
    ) {
        let (method, path) = match normalize_request(req) {
            Ok(prepared) => prepared,
            Err(m) => return (Verdict::deny(Reason::InvalidRequest, m), None, None),
        };
        let token = if req.token.is_empty() {
            None
        } else {
            let verifying = tracing::debug_span!("token.verify", token.cache = Empty);
            match self.verifier.verify(req.token).instrument(verifying).await {
                Ok(t) => Some(t),
                Err(e) => {
                    // Fail closed either way; `ERROR` when the token may be good and its
                    // issuer could not be asked.
                    let reason = if e.is_unavailable() {
                        Reason::Error
                    } else {
                        Reason::InvalidToken
                    };
                    return (Verdict::deny(reason, e.to_string()), None, None);
                }
            }
        };
        if let Some(t) = &token {
            if let Err(why) = t.check_binding(req.client_cert_sha256) {
                return (Verdict::deny(Reason::InvalidToken, why), None, None);
            }
        }
        let snapshot = self.policies.load();
        let verdict = verdict_for_normalized(&snapshot, &method, &path, req, token.as_deref());
        (verdict, token, Some(version_and_revision(&snapshot)))
    }
}

/// An owned copy of a decision for a tap.
fn sample(
    req: &AuthzRequest<'_>,
    token: Option<Arc<VerifiedToken>>,
    answer: &Answer,
) -> super::tap::DecisionSample {
    super::tap::DecisionSample {
        decision_id: answer.decision_id.clone(),
        token,
        method: req.method.to_owned(),
        path: req.path.to_owned(),
        context: req.context.clone(),
        client_cert_sha256: req.client_cert_sha256.to_owned(),
        allowed: answer.verdict.allowed,
        reason: answer.verdict.reason.as_str(),
        policy_ids: answer.verdict.policy_ids.clone(),
        route: answer.verdict.route.clone(),
        revision: answer.policy_revision.clone(),
    }
}

/// The version and revision of the snapshot that decides, for the answer and its log line.
fn version_and_revision(snapshot: &crate::policy::PolicySnapshot) -> (String, String) {
    (snapshot.version.clone(), snapshot.revision.clone())
}

/// The span of one decision, its outcome recorded by [`Pdp::answer`]; disabled (and so
/// free) unless traces are on.
fn decision_span() -> tracing::Span {
    tracing::debug_span!(
        "decision",
        decision.id = Empty,
        decision.allowed = Empty,
        decision.reason = Empty,
        decision.route = Empty,
        policy.revision = Empty,
    )
}

/// The request's bounds and path rules, as every decision applies them: the upper-case
/// method and the normalized path, or why the request is invalid.
fn normalize_request<'r>(req: &AuthzRequest<'r>) -> Result<(Cow<'r, str>, Cow<'r, str>), String> {
    if req.token.len() > MAX_TOKEN_BYTES {
        return Err(format!("token is longer than {MAX_TOKEN_BYTES} bytes"));
    }
    check_bounds(req.context)?;
    if req.resource.is_some() {
        // An action of the schema, as written: only its size is checked here.
        if req.method.is_empty() || req.method.len() > MAX_ACTION_BYTES {
            return Err(format!("action must be 1 to {MAX_ACTION_BYTES} bytes"));
        }
        return Ok((Cow::Borrowed(req.method), Cow::Borrowed("")));
    }
    if req.path.len() > MAX_PATH_BYTES {
        return Err(format!("path is longer than {MAX_PATH_BYTES} bytes"));
    }
    if req.method.is_empty()
        || req.method.len() > MAX_METHOD_BYTES
        || !req.method.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return Err("method must be an HTTP method such as `GET`".into());
    }
    let path = normalize(req.path).map_err(|e| e.to_string())?;
    let method = if req.method.bytes().all(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(req.method)
    } else {
        Cow::Owned(req.method.to_ascii_uppercase())
    };
    Ok((method, path))
}

/// Decides a request whose token was verified elsewhere (policy tests, replay of logged
/// decisions): the same bounds, path rules and decision as [`Pdp::authorize`], with the
/// given claims instead of a verifier. `req.token` is ignored.
pub fn verdict_for_verified(
    snapshot: &PolicySnapshot,
    req: &AuthzRequest<'_>,
    token: Option<&VerifiedToken>,
) -> Verdict {
    let unbounded = AuthzRequest { token: "", ..*req };
    let (method, path) = match normalize_request(&unbounded) {
        Ok(prepared) => prepared,
        Err(m) => return Verdict::deny(Reason::InvalidRequest, m),
    };
    verdict_for_normalized(snapshot, &method, &path, &unbounded, token)
}

/// Decides a prepared request (method upper-cased, path normalized) with a verified token.
fn verdict_for_normalized(
    snapshot: &PolicySnapshot,
    method: &str,
    path: &str,
    req: &AuthzRequest<'_>,
    token: Option<&VerifiedToken>,
) -> Verdict {
    let caller = match (token, req.subject) {
        (Some(t), _) => Caller::Token(t),
        (None, Some(subject)) if req.token.is_empty() => Caller::Subject(subject),
        (None, _) => Caller::Anonymous,
    };
    let input = Input {
        method,
        path,
        resource: req.resource,
        context: req.context,
        explain: req.explain,
    };
    verdict(snapshot, &input, caller)
}

/// Who a verified token names: its one [`Identity`](crate::token::Identity).
pub fn principal_info(t: &VerifiedToken) -> PrincipalInfo {
    PrincipalInfo {
        entity: t.identity.entity(),
        client_id: t.client_id.clone().unwrap_or_default(),
        sub: t.sub.clone().unwrap_or_default(),
        scopes: t.scopes.clone(),
        issuer: t.issuer.clone(),
        jti: t.jti.clone().unwrap_or_default(),
    }
}
