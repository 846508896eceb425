//! One decision: route match, the Cedar request (principal, action, resource, context),
//! evaluation of the endpoint's policy slice, and the reason a caller can act on.
//!
//! [`verdict`] is synchronous and does no I/O: the token was verified before it is called.
//! [`Pdp`] wraps it with bounds checks, token verification and the decision log.

pub mod context;
mod entities;
mod explain;
pub mod issue;
pub mod log;
mod outputs;
mod pdp;
pub mod tap;
mod token_context;

use std::sync::LazyLock;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression,
};
use serde_json::{Map, Value};

pub use outputs::Outputs;
pub use pdp::{principal_info, verdict_for_verified, Answer, AuthzRequest, Pdp, PrincipalInfo};

use crate::policy::{AttrType, Endpoint, PolicySnapshot, ENDPOINT_TYPE, SCOPE_TYPE};
use crate::token::{PrincipalKind, VerifiedToken};
use context::{record_fields, to_expr, Mode};

pub(crate) static AUTHORIZER: LazyLock<Authorizer> = LazyLock::new(Authorizer::new);
static USER: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("User"));
static CLIENT: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("Client"));
static ANONYMOUS: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("Anonymous"));
static ACTION: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("Action"));
static SCOPE: LazyLock<EntityTypeName> = LazyLock::new(|| type_name(crate::policy::SCOPE_TYPE));

/// `Client::"<id>"`, without parsing the type name again.
pub fn client_uid(id: &str) -> EntityUid {
    uid(&CLIENT, id)
}

/// `Scope::"<name>"`, the resource of an `IssueScope` decision.
pub fn scope_uid(name: &str) -> EntityUid {
    uid(&SCOPE, name)
}

/// Context keys Arbiter fills itself; a caller cannot set them.
pub const RESERVED_CONTEXT_KEYS: [&str; 4] = ["scopes", "token", "client", "params"];

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A permit applied and no forbid did.
    Allowed,
    /// The token is invalid, expired, not yet valid, wrongly signed or addressed.
    InvalidToken,
    /// The path matches no route.
    NoRoute,
    /// The route's permits ask for scopes the token lacks.
    InsufficientScope,
    /// A forbid applied, or no permit did.
    PolicyDeny,
    /// The request is malformed or out of bounds.
    InvalidRequest,
    /// A policy failed to evaluate in a way that could change the answer.
    Error,
    /// No token, and no policy opens the route to anonymous callers.
    MissingToken,
}

impl Reason {
    /// Every reason, allow first (`decision::tests` fails to compile when a reason is added
    /// and not listed here).
    pub const ALL: [Reason; 8] = [
        Self::Allowed,
        Self::PolicyDeny,
        Self::InsufficientScope,
        Self::MissingToken,
        Self::InvalidToken,
        Self::NoRoute,
        Self::InvalidRequest,
        Self::Error,
    ];

    /// The name used in logs and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allow",
            Self::InvalidToken => "invalid_token",
            Self::NoRoute => "no_route",
            Self::InsufficientScope => "insufficient_scope",
            Self::PolicyDeny => "policy_deny",
            Self::InvalidRequest => "invalid_request",
            Self::Error => "error",
            Self::MissingToken => "missing_token",
        }
    }
}

/// How one policy of the slice fared, when an explanation was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The policy's `@id`.
    pub policy_id: String,
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// What evaluation found.
    pub outcome: Outcome,
    /// File, relative to the policy directory.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// The `@scopes` annotation as written.
    pub scopes: Option<String>,
    /// Scopes of the closest alternative the token lacks.
    pub missing_scopes: Vec<String>,
    /// The evaluation error, if any.
    pub error: Option<String>,
    /// Whether the principal, action and resource constraints held.
    pub scope_matched: bool,
    /// When the scope matched but the conditions did not hold: the first part that failed,
    /// e.g. `when context.scopes.contains("otp")` was false.
    pub failed_condition: Option<String>,
    /// Its output annotations as written (`header_x_user_id` → `{principal.id}`): what it
    /// would ask a gateway to do if it determined the decision.
    pub outputs: Vec<(String, String)>,
}

/// The result of evaluating one policy on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Scope and conditions held.
    Satisfied,
    /// Something did not hold.
    NotSatisfied,
    /// Evaluation failed.
    Error,
}

/// The answer of [`verdict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allow or deny.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// The determining policies.
    pub policy_ids: Vec<String>,
    /// Safe, human-readable errors.
    pub errors: Vec<String>,
    /// On insufficient scope: the cheapest scope set that would satisfy a permit.
    pub required_scopes: Vec<String>,
    /// The matched route template.
    pub route: Option<String>,
    /// Per-policy explanation, when asked for.
    pub explanation: Vec<Explanation>,
    /// What the determining policies ask the gateway to do.
    pub outputs: Outputs,
}

impl Verdict {
    /// A deny without evaluation.
    pub fn deny(reason: Reason, error: impl Into<String>) -> Self {
        Self {
            allowed: false,
            reason,
            policy_ids: Vec::new(),
            errors: vec![error.into()],
            required_scopes: Vec::new(),
            route: None,
            explanation: Vec::new(),
            outputs: Outputs::default(),
        }
    }
}

/// What is asked, already normalized and bounded.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The action: an upper-case HTTP method for a path, any action of the schema for a
    /// [`resource`](Input::resource).
    pub method: &'a str,
    /// Normalized path (see [`crate::policy::path::normalize`]); unused when `resource` is set.
    pub path: &'a str,
    /// The resource, when the question names one instead of a path (AuthZEN). An `Endpoint`
    /// is looked up in the route index by its template; any other entity is decided against
    /// the policies that can apply to its type (`policy::ResourceIndex`).
    pub resource: Option<&'a EntityRef>,
    /// The caller's free-form context.
    pub context: &'a Map<String, Value>,
    /// Whether to explain every policy of the slice.
    pub explain: bool,
}

/// An entity a caller names, with attributes of its own (AuthZEN's subject and resource):
/// they apply over those `entities.json` gives it, which keeps its parents.
#[derive(Debug, Clone)]
pub struct EntityRef {
    /// `Type::"id"`.
    pub uid: EntityUid,
    /// Attributes the caller gives, typed by the schema.
    pub properties: Map<String, Value>,
}

/// Who asks, when not a token's bearer.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A subject a policy enforcement point asserts (AuthZEN).
    Asserted(&'a EntityRef),
    /// A client the authorization server authenticated (the token endpoint): `Client::"id"`
    /// with its registration attributes, bound to `issuer` like a token's principal.
    Client {
        /// The authorization server's issuer identifier.
        issuer: &'a str,
        /// The client and its registration attributes.
        client: &'a EntityRef,
    },
}

impl<'a> Subject<'a> {
    /// The subject's entity.
    pub fn entity(self) -> &'a EntityRef {
        match self {
            Self::Asserted(e) | Self::Client { client: e, .. } => e,
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// No token was given.
    Anonymous,
    /// A verified token: its [`Identity`](crate::token::Identity) is the principal.
    Token(&'a VerifiedToken),
    /// Who asks without a token (an asserted subject, an authenticated client): no scopes,
    /// no token claims.
    Subject(Subject<'a>),
}

/// Decides one request against one snapshot. Pure: no I/O, no locks, no `.await`.
pub fn verdict(snapshot: &PolicySnapshot, input: &Input<'_>, caller: Caller<'_>) -> Verdict {
    route_and_evaluate(snapshot, input, caller, false)
}

/// Decides like [`verdict`] but evaluates the whole policy set instead of the endpoint's
/// slice, with every context attribute built. Slow by design: for checking that the index
/// never changes an answer, and for audits that want that assurance on their own data.
pub fn verdict_over_whole_set(
    snapshot: &PolicySnapshot,
    input: &Input<'_>,
    caller: Caller<'_>,
) -> Verdict {
    route_and_evaluate(snapshot, input, caller, true)
}

fn route_and_evaluate(
    snapshot: &PolicySnapshot,
    input: &Input<'_>,
    caller: Caller<'_>,
    whole: bool,
) -> Verdict {
    let routing = tracing::debug_span!("route.match").entered();
    let (target, params) = match input.resource {
        Some(r) if r.uid.type_name().basename() == ENDPOINT_TYPE => {
            let template = r.uid.id().unescaped();
            match snapshot.routes.by_template(template) {
                Some(endpoint) => (Target::Endpoint(endpoint, Some(r)), None),
                None => {
                    return Verdict::deny(Reason::NoRoute, format!("no route `{template}`"));
                }
            }
        }
        Some(r) => (Target::Entity(r), None),
        None => match snapshot.routes.at(input.path) {
            Some(route) => (Target::Endpoint(route.endpoint, None), Some(route.params)),
            None => {
                return Verdict::deny(
                    Reason::NoRoute,
                    format!("no route matches `{}`", input.path),
                );
            }
        },
    };
    let policies = match target {
        _ if whole => &snapshot.policies,
        Target::Endpoint(endpoint, _) => &endpoint.policies,
        // Issuing a scope: the slice of policies that can apply to that scope.
        Target::Entity(r) if r.uid.type_name().basename() == SCOPE_TYPE => {
            snapshot.scopes.policies_for(r.uid.id().unescaped())
        }
        // Any other named resource: the slice of its entity type.
        Target::Entity(r) => snapshot.resources.policies_for(r.uid.type_name()),
    };
    drop(routing);
    let evaluating = tracing::debug_span!("evaluate").entered();
    let mut verdict = match evaluate(
        snapshot,
        target,
        policies,
        params.as_ref(),
        input,
        caller,
        whole,
    ) {
        Ok(v) => v,
        Err(v) => *v,
    };
    drop(evaluating);
    if let Target::Endpoint(endpoint, _) = target {
        verdict.route = Some(endpoint.template.clone());
    }
    verdict
}

/// What a decision is about: a routed endpoint (with the attributes a caller gave it, if
/// any), or another entity.
#[derive(Clone, Copy)]
enum Target<'s> {
    Endpoint(&'s Endpoint, Option<&'s EntityRef>),
    Entity(&'s EntityRef),
}

impl<'s> Target<'s> {
    fn endpoint(self) -> Option<&'s Endpoint> {
        match self {
            Self::Endpoint(e, _) => Some(e),
            Self::Entity(_) => None,
        }
    }

    fn uid(self) -> &'s EntityUid {
        match self {
            Self::Endpoint(e, _) => &e.uid,
            Self::Entity(r) => &r.uid,
        }
    }

    /// Attributes the caller gave the resource.
    fn asserted(self) -> Option<&'s EntityRef> {
        match self {
            Self::Endpoint(_, r) => r.filter(|r| !r.properties.is_empty()),
            Self::Entity(r) => Some(r).filter(|r| !r.properties.is_empty()),
        }
    }
}

struct Prepared<'s> {
    request: Request,
    entities: EntitySet<'s>,
}

/// The entities a request is evaluated against. Usually the snapshot's static store as it is:
/// a principal that is neither in `entities.json` nor carries attributes behaves exactly like
/// an absent entity, and so does an endpoint without parents. Only a principal with attributes
/// from its token needs a store of its own.
enum EntitySet<'s> {
    Static(&'s Entities),
    Built(Entities),
}

impl EntitySet<'_> {
    fn get(&self) -> &Entities {
        match self {
            Self::Static(e) => e,
            Self::Built(e) => e,
        }
    }
}

fn evaluate(
    snapshot: &PolicySnapshot,
    target: Target<'_>,
    policies: &PolicySet,
    params: Option<&matchit::Params<'_, '_>>,
    input: &Input<'_>,
    caller: Caller<'_>,
    full_context: bool,
) -> Result<Verdict, Box<Verdict>> {
    let prepared = cedar_request(snapshot, target, params, input, caller, full_context)?;
    let response = AUTHORIZER.is_authorized(&prepared.request, policies, prepared.entities.get());
    let diagnostics = response.diagnostics();
    let mut errors: Vec<String> = Vec::new();
    let mut forbid_failed = false;
    for e in diagnostics.errors() {
        let id = policy_of_error(e);
        if let Some(meta) = snapshot.meta.get(&id) {
            forbid_failed |= meta.effect == Effect::Forbid;
        }
        errors.push(e.to_string());
    }
    let determining: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    let scopes_of = |s: &str| match caller {
        Caller::Token(t) => t.has_scope(s),
        Caller::Anonymous | Caller::Subject(_) => false,
    };

    let mut verdict = Verdict {
        allowed: false,
        reason: Reason::PolicyDeny,
        policy_ids: determining,
        errors,
        required_scopes: Vec::new(),
        route: None,
        explanation: Vec::new(),
        outputs: Outputs::default(),
    };
    match response.decision() {
        CedarDecision::Allow if forbid_failed => {
            verdict.reason = Reason::Error;
            verdict
                .errors
                .push("a forbid policy failed to evaluate; denying".into());
        }
        CedarDecision::Allow => {
            verdict.allowed = true;
            verdict.reason = Reason::Allowed;
        }
        CedarDecision::Deny => {
            if matches!(caller, Caller::Anonymous) {
                verdict.reason = Reason::MissingToken;
            } else if !verdict.policy_ids.is_empty() {
                verdict.reason = Reason::PolicyDeny;
            } else if !verdict.errors.is_empty() {
                verdict.reason = Reason::Error;
            } else if let Some(required) = target
                .endpoint()
                .and_then(|e| closest_scopes(snapshot, e, input.method, &scopes_of))
            {
                verdict.reason = Reason::InsufficientScope;
                verdict.required_scopes = required;
            }
        }
    }
    let may_have_outputs = target.endpoint().is_none_or(|e| e.has_outputs);
    if may_have_outputs && (verdict.allowed || verdict.reason == Reason::PolicyDeny) {
        let (claims, scopes) = match caller {
            Caller::Token(t) => (Some(&t.claims), t.scopes.as_slice()),
            Caller::Anonymous | Caller::Subject(_) => (None, &[][..]),
        };
        let verified = crate::policy::outputs::Verified {
            principal: prepared.request.principal(),
            claims,
            scopes,
            params,
        };
        match outputs::render(snapshot, &verdict.policy_ids, verdict.allowed, &verified) {
            Ok(o) => verdict.outputs = o,
            Err(e) => {
                verdict.allowed = false;
                verdict.reason = Reason::Error;
                verdict.errors.push(e);
            }
        }
    }
    if verdict.allowed && target.endpoint().is_some() && !snapshot.output_headers.is_empty() {
        // Forwarded: the client's copies of every header some policy can set are dropped,
        // whichever policy decided (those this decision sets are replaced instead).
        verdict.outputs.remove_headers =
            outputs::settable_headers_not_set(snapshot, &verdict.outputs.headers);
    }
    if input.explain {
        verdict.explanation =
            explain::explain(snapshot, target, input.method, &prepared, &scopes_of);
    }
    Ok(verdict)
}

fn policy_of_error(e: &cedar_policy::AuthorizationError) -> PolicyId {
    match e {
        cedar_policy::AuthorizationError::PolicyEvaluationError(err) => err.policy_id().clone(),
    }
}

/// Among the permits of the slice that name this action and carry `@scopes`, the alternative
/// needing the fewest scopes the token lacks; `None` when none lacks any (the deny has
/// another cause) or no permit carries scopes.
fn closest_scopes(
    snapshot: &PolicySnapshot,
    endpoint: &Endpoint,
    method: &str,
    has: &dyn Fn(&str) -> bool,
) -> Option<Vec<String>> {
    let mut best: Option<(usize, usize, Vec<String>)> = None;
    for id in &endpoint.policy_ids {
        let Some(meta) = snapshot.meta.get(id) else {
            continue;
        };
        if meta.effect != Effect::Permit || !action_applies(meta.actions.as_deref(), method) {
            continue;
        }
        let Some(expr) = &meta.scopes else { continue };
        if let Some((alt, missing)) = expr.closest(has) {
            let key = (missing.len(), alt.len());
            if best.as_ref().is_none_or(|(m, l, _)| key < (*m, *l)) {
                best = Some((key.0, key.1, alt.iter().cloned().collect()));
            }
        }
    }
    match best {
        Some((missing, _, scopes)) if missing > 0 => Some(scopes),
        _ => None,
    }
}

fn action_applies(actions: Option<&[String]>, method: &str) -> bool {
    actions.is_none_or(|list| list.iter().any(|a| a == method || !is_method_name(a)))
}

fn is_method_name(a: &str) -> bool {
    matches!(
        a,
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "TRACE" | "CONNECT"
    )
}

/// Builds the Cedar request and the entities it needs, per the design's mapping.
fn cedar_request<'s>(
    snapshot: &'s PolicySnapshot,
    target: Target<'_>,
    params: Option<&matchit::Params<'_, '_>>,
    input: &Input<'_>,
    caller: Caller<'_>,
    full_context: bool,
) -> Result<Prepared<'s>, Box<Verdict>> {
    let invalid = |m: String| Box::new(Verdict::deny(Reason::InvalidRequest, m));
    let Some(shape) = snapshot.shapes.contexts.get(input.method) else {
        return Err(invalid(format!(
            "action `{}` is not an action of the schema",
            input.method
        )));
    };
    for key in RESERVED_CONTEXT_KEYS {
        if input.context.contains_key(key) {
            return Err(invalid(format!(
                "context field `{key}` is set by Arbiter and cannot be given"
            )));
        }
    }

    // Principal and client: the token's one identity, or the asserted subject.
    let token = match caller {
        Caller::Token(t) => Some(t),
        Caller::Anonymous | Caller::Subject(_) => None,
    };
    let (principal, client) = match caller {
        Caller::Anonymous => (uid(&ANONYMOUS, ""), None),
        Caller::Subject(Subject::Asserted(subject)) => (subject.uid.clone(), None),
        Caller::Subject(Subject::Client { client, .. }) => {
            (client.uid.clone(), Some(client.uid.clone()))
        }
        Caller::Token(t) => {
            let kind = match t.identity.kind {
                PrincipalKind::User => &*USER,
                PrincipalKind::Client => &*CLIENT,
            };
            (
                uid(kind, &t.identity.id),
                t.identity.client_id.as_deref().map(|c| uid(&CLIENT, c)),
            )
        }
    };
    let entities = entities::entities_for(snapshot, target, caller, &principal, client.as_ref())?;

    // What the token alone determines, built once per token and policy version.
    let mut from_token = match token {
        Some(t) => {
            let claims_type = shape
                .attrs
                .iter()
                .find(|(name, ..)| name == "token")
                .map(|(_, ty, _)| ty);
            let (scopes, claims) =
                token_context::scopes_and_claims(t, &snapshot.version, claims_type);
            (Some(scopes), claims)
        }
        None => (None, Ok(None)),
    };

    // Context, by the action's declared shape.
    let mut pairs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(shape.attrs.len());
    let reads = target.endpoint().and_then(|e| e.context_reads.as_ref());
    for (name, ty, required) in &shape.attrs {
        let read = match (reads, full_context) {
            (_, true) | (None, _) => true,
            (Some(reads), false) => reads.contains(name.as_str()),
        };
        if !read && !*required {
            // no policy of this endpoint's slice can see it: skip building it
            if let Some(v) = input.context.get(name.as_str()) {
                // still reject a value of the wrong type, as the full context would
                if !RESERVED_CONTEXT_KEYS.contains(&name.as_str()) {
                    to_expr(v, ty, Mode::Strict, name)
                        .map_err(|m| invalid(format!("context {m}")))?;
                }
            }
            continue;
        }
        let value = match name.as_str() {
            "scopes" => Some(
                from_token
                    .0
                    .take()
                    .unwrap_or_else(|| RestrictedExpression::new_set([])),
            ),
            "token" => std::mem::replace(&mut from_token.1, Ok(None))?,
            "client" => client.clone().map(RestrictedExpression::new_entity_uid),
            "params" => match (ty, params) {
                (AttrType::Record(declared), Some(params)) => {
                    let map: Map<String, Value> = params
                        .iter()
                        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                        .collect();
                    Some(
                        RestrictedExpression::new_record(
                            record_fields(&map, declared, Mode::Strict, "params")
                                .map_err(invalid)?,
                        )
                        .map_err(|e| invalid(e.to_string()))?,
                    )
                }
                _ => None,
            },
            other => match input.context.get(other) {
                Some(v) => Some(
                    to_expr(v, ty, Mode::Strict, other)
                        .map_err(|m| invalid(format!("context {m}")))?,
                ),
                None => None,
            },
        };
        match value {
            Some(v) => pairs.push((name.clone(), v)),
            None if *required => {
                return Err(invalid(format!(
                    "context field `{name}` is required by the schema"
                )))
            }
            None => {}
        }
    }
    let context = Context::from_pairs(pairs).map_err(|e| invalid(format!("context: {e}")))?;
    let action = uid(&ACTION, input.method);
    let request = Request::new(principal, action, target.uid().clone(), context, None)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Prepared { request, entities })
}

fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

fn type_name(name: &str) -> EntityTypeName {
    name.parse()
        .unwrap_or_else(|_| unreachable!("`{name}` is a valid entity type name"))
}

#[cfg(test)]
mod tests;
