//! One decision: route match, the Cedar request (principal, action, resource, context),
//! evaluation of the endpoint's policy slice, and the reason a caller can act on.
//!
//! [`decide`] is synchronous and does no I/O: the token was verified before it is called.
//! [`Pdp`] wraps it with bounds checks, token verification and the decision log.

pub mod context;
pub mod issue;
pub mod path;
mod pdp;

use std::collections::HashSet;
use std::sync::LazyLock;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression,
};
use serde_json::{Map, Value};

pub use pdp::{decide_verified, principal_info, Answer, AuthzRequest, Pdp, PrincipalInfo};

use crate::policy::{AttrType, Endpoint, PolicySnapshot};
use crate::token::VerifiedToken;
use context::{record_fields, to_expr, Mode};

pub(crate) static AUTHORIZER: LazyLock<Authorizer> = LazyLock::new(Authorizer::new);
static USER: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("User"));
static CLIENT: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("Client"));
static ANONYMOUS: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("Anonymous"));
static ACTION: LazyLock<EntityTypeName> = LazyLock::new(|| type_name("Action"));

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

/// The answer of [`decide`].
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
        }
    }
}

/// What is asked, already normalized and bounded.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Upper-case HTTP method.
    pub method: &'a str,
    /// Normalized path (see [`path::normalize`]).
    pub path: &'a str,
    /// The caller's free-form context.
    pub context: &'a Map<String, Value>,
    /// Whether to explain every policy of the slice.
    pub explain: bool,
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// No token was given.
    Anonymous,
    /// A verified token.
    Token(&'a VerifiedToken),
}

/// Decides one request against one snapshot. Pure: no I/O, no locks, no `.await`.
pub fn decide(snapshot: &PolicySnapshot, input: &Input<'_>, caller: Caller<'_>) -> Verdict {
    decide_with(snapshot, input, caller, false)
}

/// Decides like [`decide`] but evaluates the whole policy set instead of the endpoint's
/// slice, with every context attribute built. Slow by design: for checking that the index
/// never changes an answer, and for audits that want that assurance on their own data.
pub fn decide_whole_set(
    snapshot: &PolicySnapshot,
    input: &Input<'_>,
    caller: Caller<'_>,
) -> Verdict {
    decide_with(snapshot, input, caller, true)
}

fn decide_with(
    snapshot: &PolicySnapshot,
    input: &Input<'_>,
    caller: Caller<'_>,
    whole: bool,
) -> Verdict {
    let Some(route) = snapshot.routes.at(input.path) else {
        return Verdict::deny(
            Reason::NoRoute,
            format!("no route matches `{}`", input.path),
        );
    };
    let endpoint = route.endpoint;
    let policies = if whole {
        &snapshot.policies
    } else {
        &endpoint.policies
    };
    let mut verdict = match evaluate(
        snapshot,
        endpoint,
        policies,
        &route.params,
        input,
        caller,
        whole,
    ) {
        Ok(v) => v,
        Err(v) => *v,
    };
    verdict.route = Some(endpoint.template.clone());
    verdict
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
    endpoint: &Endpoint,
    policies: &PolicySet,
    params: &matchit::Params<'_, '_>,
    input: &Input<'_>,
    caller: Caller<'_>,
    full_context: bool,
) -> Result<Verdict, Box<Verdict>> {
    let prepared = prepare(snapshot, endpoint, params, input, caller, full_context)?;
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
        Caller::Anonymous => false,
    };

    let mut verdict = Verdict {
        allowed: false,
        reason: Reason::PolicyDeny,
        policy_ids: determining,
        errors,
        required_scopes: Vec::new(),
        route: None,
        explanation: Vec::new(),
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
            } else if let Some(required) =
                closest_scopes(snapshot, endpoint, input.method, &scopes_of)
            {
                verdict.reason = Reason::InsufficientScope;
                verdict.required_scopes = required;
            }
        }
    }
    if input.explain {
        verdict.explanation = explain(snapshot, endpoint, input.method, &prepared, &scopes_of);
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

fn explain(
    snapshot: &PolicySnapshot,
    endpoint: &Endpoint,
    method: &str,
    prepared: &Prepared,
    has: &dyn Fn(&str) -> bool,
) -> Vec<Explanation> {
    let mut out = Vec::new();
    for id in &endpoint.policy_ids {
        let (Some(meta), Some(policy)) = (snapshot.meta.get(id), endpoint.policies.policy(id))
        else {
            continue;
        };
        if !action_applies(meta.actions.as_deref(), method) {
            continue;
        }
        let single = match PolicySet::from_policies([policy.clone()]) {
            Ok(s) => s,
            Err(_) => continue,
        };
        let response =
            AUTHORIZER.is_authorized(&prepared.request, &single, prepared.entities.get());
        let error = response
            .diagnostics()
            .errors()
            .next()
            .map(ToString::to_string);
        let satisfied = response.diagnostics().reason().next().is_some();
        let missing_scopes = meta
            .scopes
            .as_ref()
            .and_then(|e| e.closest(has))
            .map(|(_, missing)| missing.into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let (scope_matched, failed_condition) = if satisfied {
            (true, None)
        } else {
            why_not(policy, prepared)
        };
        out.push(Explanation {
            policy_id: id.to_string(),
            effect: meta.effect,
            outcome: match (&error, satisfied) {
                (Some(_), _) => Outcome::Error,
                (None, true) => Outcome::Satisfied,
                (None, false) => Outcome::NotSatisfied,
            },
            file: meta.file.clone(),
            line: meta.line,
            scopes: meta.scopes.as_ref().map(|s| s.source().to_owned()),
            missing_scopes,
            error,
            scope_matched,
            failed_condition,
        });
    }
    out
}

/// Why a policy did not apply: whether its scope matched, and if so the first part of its
/// conditions that failed (each `when` split at its top-level `&&`, each `unless` whole),
/// found by evaluating each part alone in the same request. Explain mode only.
fn why_not(policy: &cedar_policy::Policy, prepared: &Prepared) -> (bool, Option<String>) {
    let Ok(mut est) = policy.to_json() else {
        return (false, None);
    };
    let conditions = match est.get_mut("conditions") {
        Some(serde_json::Value::Array(list)) => std::mem::take(list),
        _ => Vec::new(),
    };
    if let Some(annotations) = est.get_mut("annotations") {
        *annotations = serde_json::Value::Object(serde_json::Map::new());
    }
    let holds = |est: &serde_json::Value| -> Option<bool> {
        let p = cedar_policy::Policy::from_json(None, est.clone()).ok()?;
        let set = PolicySet::from_policies([p]).ok()?;
        let r = AUTHORIZER.is_authorized(&prepared.request, &set, prepared.entities.get());
        if r.diagnostics().errors().next().is_some() {
            return Some(false);
        }
        let held = r.diagnostics().reason().next().is_some();
        Some(held)
    };
    // Always "permit" for the probes, so a forbid's parts are judged the same way.
    est["effect"] = serde_json::Value::from("permit");
    if holds(&est) != Some(true) {
        return (false, None);
    }
    for condition in conditions {
        let kind = condition
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("when")
            .to_owned();
        let Some(body) = condition.get("body") else {
            continue;
        };
        let parts = if kind == "when" {
            let mut parts = Vec::new();
            conjuncts(body, &mut parts);
            parts
        } else {
            vec![body.clone()]
        };
        for part in parts {
            let mut probe = est.clone();
            probe["conditions"] = serde_json::json!([{ "kind": kind, "body": part }]);
            if holds(&probe) == Some(false) {
                let text = cedar_policy::Policy::from_json(None, probe)
                    .map(|p| condition_text(&p.to_string(), &kind))
                    .unwrap_or_default();
                let verdict = if kind == "when" { "was false" } else { "held" };
                return (true, Some(format!("{kind} {{ {text} }} {verdict}")));
            }
        }
    }
    (true, None)
}

/// The top-level operands of `&&` in an EST expression, in order.
fn conjuncts(expr: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match expr.get("&&") {
        Some(and) => {
            if let Some(l) = and.get("left") {
                conjuncts(l, out);
            }
            if let Some(r) = and.get("right") {
                conjuncts(r, out);
            }
        }
        None => out.push(expr.clone()),
    }
}

/// The expression of a printed one-condition policy: what follows `when {` (or `unless {`).
fn condition_text(policy: &str, kind: &str) -> String {
    let marker = format!("{kind} {{");
    match policy.rfind(&marker) {
        Some(at) => policy[at + marker.len()..]
            .trim()
            .trim_end_matches(';')
            .trim_end()
            .trim_end_matches('}')
            .trim()
            .to_owned(),
        None => String::new(),
    }
}

/// Builds the Cedar request and the entities it needs, per the design's mapping.
fn prepare<'s>(
    snapshot: &'s PolicySnapshot,
    endpoint: &Endpoint,
    params: &matchit::Params<'_, '_>,
    input: &Input<'_>,
    caller: Caller<'_>,
    full_context: bool,
) -> Result<Prepared<'s>, Box<Verdict>> {
    let invalid = |m: String| Box::new(Verdict::deny(Reason::InvalidRequest, m));
    let Some(shape) = snapshot.shapes.contexts.get(input.method) else {
        return Err(invalid(format!(
            "method `{}` is not an action of the schema",
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

    // Principal and client.
    let (principal, client) = match caller {
        Caller::Anonymous => (uid(&ANONYMOUS, ""), None),
        Caller::Token(t) => {
            let client_id = t.client_id.as_deref().or(t.sub.as_deref());
            let Some(client_id) = client_id else {
                return Err(Box::new(Verdict::deny(
                    Reason::InvalidToken,
                    "token names neither `client_id` nor `sub`",
                )));
            };
            let client = uid(&CLIENT, client_id);
            match t.sub.as_deref() {
                Some(sub) if sub != client_id => (uid(&USER, sub), Some(client)),
                _ => (client.clone(), Some(client)),
            }
        }
    };

    let token = match caller {
        Caller::Token(t) => Some(t),
        Caller::Anonymous => None,
    };
    let claim_attrs = match token {
        Some(t) if snapshot.entities.get(&principal).is_none() => {
            claim_attributes(snapshot, &principal, t)
        }
        _ => Vec::new(),
    };
    let entities = if claim_attrs.is_empty() {
        EntitySet::Static(&snapshot.entities)
    } else {
        let principal_entity = Entity::new(
            principal.clone(),
            claim_attrs.into_iter().collect(),
            HashSet::new(),
        )
        .map_err(|e| {
            Box::new(Verdict::deny(
                Reason::InvalidToken,
                format!("token claims: {e}"),
            ))
        })?;
        let mut list: Vec<Entity> = endpoint.entities.clone();
        list.push(principal_entity);
        if let Some(client) = &client {
            add_known(snapshot, &mut list, client);
        }
        EntitySet::Built(
            Entities::from_entities(list, None)
                .map_err(|e| Box::new(Verdict::deny(Reason::Error, e.to_string())))?,
        )
    };

    // Context, by the action's declared shape.
    let mut pairs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(shape.attrs.len());
    for (name, ty, required) in &shape.attrs {
        let read = match (&endpoint.context_reads, full_context) {
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
            "scopes" => Some(RestrictedExpression::new_set(
                token
                    .map(|t| t.scopes.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|s| RestrictedExpression::new_string(s.clone())),
            )),
            "token" => match (token, ty) {
                (Some(t), AttrType::Record(claims)) => Some(
                    RestrictedExpression::new_record(
                        record_fields(&t.claims, claims, Mode::Lenient, "token")
                            .map_err(|m| Box::new(Verdict::deny(Reason::InvalidToken, m)))?,
                    )
                    .map_err(|e| invalid(e.to_string()))?,
                ),
                _ => None,
            },
            "client" => client.clone().map(RestrictedExpression::new_entity_uid),
            "params" => match ty {
                AttrType::Record(declared) => {
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
    let request = Request::new(principal, action, endpoint.uid.clone(), context, None)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Prepared { request, entities })
}

/// Attributes of a principal that is not in `entities.json`, from same-named token claims the
/// schema declares for its type.
fn claim_attributes(
    snapshot: &PolicySnapshot,
    principal: &EntityUid,
    token: &VerifiedToken,
) -> Vec<(String, RestrictedExpression)> {
    let type_name = if principal.type_name() == &*USER {
        "User"
    } else {
        "Client"
    };
    match snapshot.shapes.entities.get(type_name) {
        Some(shape) if !shape.attrs.is_empty() => {
            record_fields(&token.claims, shape, Mode::Lenient, "").unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Adds an entity of `entities.json` and its ancestors, skipping any already present.
fn add_known(snapshot: &PolicySnapshot, out: &mut Vec<Entity>, uid: &EntityUid) {
    let mut push = |u: &EntityUid| {
        if !out.iter().any(|e| e.uid() == *u) {
            if let Some(e) = snapshot.entities.get(u) {
                out.push(e.clone());
            }
        }
    };
    push(uid);
    if let Some(ancestors) = snapshot.entities.ancestors(uid) {
        for a in ancestors {
            push(a);
        }
    }
}

fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

fn type_name(name: &str) -> EntityTypeName {
    name.parse()
        .unwrap_or_else(|_| unreachable!("`{name}` is a valid entity type name"))
}
