//! The OpenID AuthZEN Authorization API 1.0 over HTTP: access evaluation, evaluations
//! (batch, with `evaluations_semantic`), subject, resource and action search (see
//! [`search`]), and `/.well-known/authzen-configuration`.
//!
//! Mapping onto Arbiter's Cedar model: the subject `{type, id, properties}` is the principal
//! `<Type>::"<id>"` (the type with its first letter upper-cased: `user` → `User`,
//! `identity` → `Identity`), or, without a subject, the principal of a bearer token in
//! `Authorization` (verified like any `Authorize` token: `User::"<sub>"` or
//! `Client::"<client_id>"`); the action `{name}` is `Action::"<name>"`; the resource is
//! `<Type>::"<id>"` likewise, except `{type: "route", id: "<template>"}`, which is Arbiter's
//! `Endpoint::"<template>"`; `properties` become the entity's attributes (over those in
//! `entities.json`, keeping its parents); `context` is the Cedar context.
//!
//! This is an adapter: every evaluation goes through [`Pdp::authorize`], the one decision
//! entry of every front door (route index, reserved context keys, decision id, log line,
//! metrics). A caller never sets `scopes`, `token`, `client` or `params`: with a bearer token
//! they come from the token; a context that names them is a `400` (one evaluation) or a
//! deny with reason `invalid_request` (in a batch).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

mod pep;
pub(crate) mod search;

use pep::require_pep;
pub(crate) use pep::PepAuth;

use crate::decision::{AuthzRequest, EntityRef, Pdp, Reason, Subject};
use crate::http::ApiError;

/// Largest request body accepted.
const MAX_BODY: usize = 256 * 1024;
/// Most evaluations in one batch.
const MAX_EVALUATIONS: usize = 1000;
/// Longest entity `type` and action `name`.
const MAX_NAME_BYTES: usize = 128;
/// Longest entity `id`.
const MAX_ID_BYTES: usize = 1024;
/// Largest `properties` of one entity, counted as JSON.
const MAX_PROPERTIES_BYTES: usize = 16 * 1024;
/// Most bytes a batch may expand to: each item takes what it lacks from the top-level
/// defaults, so one large default would otherwise be copied (and decided, and logged) once
/// per item.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

#[derive(Clone)]
struct AuthzenState {
    pdp: Arc<Pdp>,
    base: String,
    /// The authorization server's clients, when it runs: candidates of a `client` subject
    /// search beside those of `entities.json`.
    clients: Option<Arc<dyn crate::store::Store>>,
    /// Where searches run, and their budgets.
    search: SearchBudget,
}

/// Where AuthZEN searches run (the control plane's workers) and what one may cost.
#[derive(Clone)]
pub(crate) struct SearchBudget {
    /// The control plane's workers.
    pub(crate) workers: Arc<crate::control::Workers>,
    /// Candidates one page may examine.
    pub(crate) max_candidates: usize,
    /// Largest search request body.
    pub(crate) max_body_bytes: usize,
}

/// The AuthZEN routes; `base` is the public HTTP base URL for the metadata; `clients` is the
/// authorization server's store, when it runs (subject search lists its clients).
pub(crate) fn router(
    pdp: Arc<Pdp>,
    base: String,
    pep: PepAuth,
    clients: Option<Arc<dyn crate::store::Store>>,
    search: SearchBudget,
) -> Router {
    Router::new()
        .route("/access/v1/evaluation", post(evaluation))
        .route("/access/v1/evaluations", post(evaluations))
        .route("/access/v1/search/subject", post(search::subject))
        .route("/access/v1/search/resource", post(search::resource))
        .route("/access/v1/search/action", post(search::action_search))
        .route_layer(axum::middleware::from_fn_with_state(pep, require_pep))
        .route("/.well-known/authzen-configuration", get(configuration))
        .with_state(AuthzenState {
            pdp,
            base: base.trim_end_matches('/').to_owned(),
            clients,
            search,
        })
}

/// AuthZEN search for the workbench's Who-can screen: the same search as
/// `/access/v1/search/*`, asked without a token (the console decided who may ask).
#[derive(Clone)]
pub(crate) struct Searcher(AuthzenState);

impl Searcher {
    /// A searcher over the decision point, with the authorization server's clients as
    /// candidates of a `client` subject search when it runs.
    pub(crate) fn new(
        pdp: Arc<Pdp>,
        clients: Option<Arc<dyn crate::store::Store>>,
        search: SearchBudget,
    ) -> Self {
        Self(AuthzenState {
            pdp,
            base: String::new(),
            clients,
            search,
        })
    }

    /// One page of a search of `kind`, its request given as AuthZEN's JSON object.
    pub(crate) async fn search(
        &self,
        kind: search::Kind,
        request: &Map<String, Value>,
    ) -> Result<Value, String> {
        search::search_object(kind, &self.0, String::new(), request)
            .await
            .map_err(|e| e.description)
    }
}

/// A subject or resource as AuthZEN gives it.
#[derive(Debug, Clone)]
struct Named {
    ty: String,
    id: String,
    properties: Map<String, Value>,
}

/// One evaluation, after defaults were applied.
#[derive(Debug, Clone)]
struct Evaluation {
    subject: Option<Named>,
    action: String,
    resource: Named,
    context: Map<String, Value>,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone)]
struct Outcome {
    allowed: bool,
    reason: Reason,
    errors: Vec<String>,
    policies: Vec<String>,
    decision_id: String,
    outputs: crate::decision::Outputs,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(message)
}

async fn read_object(body: Body) -> Result<Map<String, Value>, ApiError> {
    read_object_within(body, MAX_BODY).await
}

/// A JSON object body of at most `max` bytes.
async fn read_object_within(body: Body, max: usize) -> Result<Map<String, Value>, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| bad_request("the body is too large"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_request("the body must be a JSON object")),
        Err(e) => Err(bad_request(format!("the body is not JSON: {e}"))),
    }
}

fn entity(value: Option<&Value>, what: &str) -> Result<Option<Named>, String> {
    let Some(value) = value else { return Ok(None) };
    let obj = value
        .as_object()
        .ok_or_else(|| format!("`{what}` must be an object"))?;
    let text = |k: &str, max: usize| -> Result<String, String> {
        match obj.get(k) {
            Some(Value::String(s)) if s.len() > max => {
                Err(format!("`{what}.{k}` is longer than {max} bytes"))
            }
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None => Err(format!("`{what}.{k}` is required")),
            Some(_) => Err(format!("`{what}.{k}` must be a string")),
        }
    };
    let properties = match obj.get("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) if map_size(m) > MAX_PROPERTIES_BYTES => {
            return Err(format!(
                "`{what}.properties` is larger than {MAX_PROPERTIES_BYTES} bytes"
            ))
        }
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(format!("`{what}.properties` must be an object")),
    };
    Ok(Some(Named {
        ty: text("type", MAX_NAME_BYTES)?,
        id: text("id", MAX_ID_BYTES)?,
        properties,
    }))
}

/// The size of a value as compact JSON (what it costs to copy, decide and log).
fn json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(json_size).sum::<usize>(),
        Value::Object(o) => map_size(o),
    }
}

fn map_size(m: &Map<String, Value>) -> usize {
    2 + m
        .iter()
        .map(|(k, x)| k.len() + 3 + json_size(x))
        .sum::<usize>()
}

impl Evaluation {
    /// What this evaluation weighs once its defaults are applied.
    fn size(&self) -> usize {
        let named = |n: &Named| n.ty.len() + n.id.len() + map_size(&n.properties);
        self.subject.as_ref().map_or(0, named)
            + self.action.len()
            + named(&self.resource)
            + map_size(&self.context)
    }
}

fn action(value: Option<&Value>) -> Result<Option<String>, String> {
    let Some(value) = value else { return Ok(None) };
    match value.get("name") {
        Some(Value::String(s)) if s.len() > MAX_NAME_BYTES => Err(format!(
            "`action.name` is longer than {MAX_NAME_BYTES} bytes"
        )),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(Value::String(_)) | None => Err("`action.name` is required".into()),
        Some(_) => Err("`action.name` must be a string".into()),
    }
}

fn context(value: Option<&Value>) -> Result<Option<Map<String, Value>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err("`context` must be an object".into()),
    }
}

/// Reads one evaluation from `item`, taking what it lacks from `defaults` whole.
fn read_evaluation(
    item: &Map<String, Value>,
    defaults: Option<&Map<String, Value>>,
    has_token: bool,
) -> Result<Evaluation, String> {
    let pick = |k: &str| item.get(k).or_else(|| defaults.and_then(|d| d.get(k)));
    let subject = entity(pick("subject"), "subject")?;
    if subject.is_none() && !has_token {
        return Err("`subject` is required (or a bearer token)".into());
    }
    let action = action(pick("action"))?.ok_or("`action` is required")?;
    let resource = entity(pick("resource"), "resource")?.ok_or("`resource` is required")?;
    let context = context(pick("context"))?.unwrap_or_default();
    Ok(Evaluation {
        subject,
        action,
        resource,
        context,
    })
}

fn cedar_type(authzen: &str, resource: bool) -> String {
    if resource && authzen == "route" {
        return crate::policy::ENDPOINT_TYPE.to_owned();
    }
    let mut chars = authzen.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The Cedar entity of an AuthZEN subject or resource.
fn entity_ref(named: &Named, resource: bool) -> Result<EntityRef, String> {
    let ty = cedar_type(&named.ty, resource);
    let uid = cedar_policy::EntityUid::from_json(json!({ "type": ty, "id": named.id }))
        .map_err(|e| format!("`{ty}::{:?}` is not an entity: {e}", named.id))?;
    Ok(EntityRef {
        uid,
        properties: named.properties.clone(),
    })
}

fn deny(reason: Reason, error: String) -> Outcome {
    Outcome {
        allowed: false,
        reason,
        errors: vec![error],
        policies: Vec::new(),
        decision_id: String::new(),
        outputs: crate::decision::Outputs::default(),
    }
}

/// Decides one evaluation through the one decision entry. Without a subject, the bearer
/// token is the caller (its identity, scopes and claims, as for `Authorize`).
/// One evaluation through the one decision entry; `log`: its own decision log line (a
/// search logs once for all its candidates instead).
async fn evaluate_one(state: &AuthzenState, token: &str, e: &Evaluation, log: bool) -> Outcome {
    let subject = match e.subject.as_ref().map(|s| entity_ref(s, false)).transpose() {
        Ok(s) => s,
        Err(m) => return deny(Reason::InvalidRequest, m),
    };
    let resource = match entity_ref(&e.resource, true) {
        Ok(r) => r,
        Err(m) => return deny(Reason::InvalidRequest, m),
    };
    let request = AuthzRequest {
        // An asserted subject is the caller; otherwise the bearer token is.
        token: if subject.is_some() { "" } else { token },
        subject: subject.as_ref().map(Subject::Asserted),
        method: &e.action,
        path: "",
        resource: Some(&resource),
        context: &e.context,
        explain: false,
        client_cert_sha256: "",
    };
    let answer = if log {
        state.pdp.authorize(request).await
    } else {
        state.pdp.authorize_unlogged(request).await
    };
    let v = answer.verdict;
    Outcome {
        allowed: v.allowed,
        reason: v.reason,
        errors: v.errors,
        policies: v.policy_ids,
        decision_id: answer.decision_id,
        outputs: v.outputs,
    }
}

/// The AuthZEN response context of one outcome: Arbiter's reason, the determining
/// policies, errors and the decision id (as in the decision log), and the determining
/// policies' outputs when they have any (headers whose values need path parameters are left
/// out: a route template has none).
fn outcome_context(o: &Outcome) -> Value {
    let mut context = json!({
        "reason": o.reason.as_str(),
        "policies": o.policies,
        "errors": o.errors,
        "decision_id": o.decision_id,
    });
    if !o.outputs.is_empty() {
        context["outputs"] = json!(o.outputs);
    }
    context
}

fn with_request_id(mut response: Response, headers: &HeaderMap) -> Response {
    if let Some(id) = headers.get("x-request-id") {
        response.headers_mut().insert("x-request-id", id.clone());
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The bearer token of the request (`""` without one), read by the HTTP edge's one parser.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    Ok(crate::http::bearer_token(headers)?.unwrap_or_default())
}

async fn evaluation(State(state): State<AuthzenState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let token = bearer(&headers)?;
        let object = read_object(body).await?;
        let e = read_evaluation(&object, None, !token.is_empty()).map_err(bad_request)?;
        let outcome = evaluate_one(&state, token, &e, true).await;
        if outcome.reason == Reason::InvalidRequest {
            return Err(bad_request(outcome.errors.join("; ")));
        }
        Ok(Json(json!({
            "decision": outcome.allowed,
            "context": outcome_context(&outcome),
        }))
        .into_response())
    }
    .await;
    with_request_id(result.unwrap_or_else(IntoResponse::into_response), &headers)
}

async fn evaluations(
    State(state): State<AuthzenState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let token = bearer(&headers)?;
        let object = read_object(body).await?;
        batch(&state, token, &object).await
    }
    .await;
    with_request_id(result.unwrap_or_else(IntoResponse::into_response), &headers)
}

async fn batch(
    state: &AuthzenState,
    token: &str,
    object: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let items = match object.get("evaluations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(bad_request("`evaluations` must be an array")),
    };
    if items.is_empty() {
        // No batch: one evaluation from the top-level fields.
        let e = read_evaluation(object, None, !token.is_empty()).map_err(bad_request)?;
        let outcome = evaluate_one(state, token, &e, true).await;
        if outcome.reason == Reason::InvalidRequest {
            return Err(bad_request(outcome.errors.join("; ")));
        }
        return Ok(Json(json!({ "decision": outcome.allowed })).into_response());
    }
    if items.len() > MAX_EVALUATIONS {
        return Err(bad_request(format!(
            "at most {MAX_EVALUATIONS} evaluations"
        )));
    }
    let semantic = match object
        .get("options")
        .and_then(|o| o.get("evaluations_semantic"))
    {
        None | Some(Value::Null) => "execute_all",
        Some(Value::String(s))
            if matches!(
                s.as_str(),
                "execute_all" | "deny_on_first_deny" | "permit_on_first_permit"
            ) =>
        {
            s.as_str()
        }
        Some(_) => {
            return Err(bad_request(
                "`options.evaluations_semantic` is execute_all, deny_on_first_deny or permit_on_first_permit",
            ))
        }
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut weight = 0usize;
    for (i, item) in items.iter().enumerate() {
        let item = item
            .as_object()
            .ok_or_else(|| bad_request(format!("evaluations[{i}] must be an object")))?;
        let e = read_evaluation(item, Some(object), !token.is_empty())
            .map_err(|m| bad_request(format!("evaluations[{i}]: {m}")))?;
        weight = weight.saturating_add(e.size());
        if weight > MAX_BATCH_BYTES {
            return Err(bad_request(format!(
                "the evaluations expand to more than {MAX_BATCH_BYTES} bytes with their defaults"
            )));
        }
        parsed.push(e);
    }
    let mut results = Vec::with_capacity(parsed.len());
    for e in &parsed {
        let outcome = evaluate_one(state, token, e, true).await;
        results.push(json!({ "decision": outcome.allowed }));
        let stop = match semantic {
            "deny_on_first_deny" => !outcome.allowed,
            "permit_on_first_permit" => outcome.allowed,
            _ => false,
        };
        if stop {
            break;
        }
    }
    Ok(Json(json!({ "evaluations": results })).into_response())
}

async fn configuration(State(state): State<AuthzenState>) -> Response {
    Json(json!({
        "policy_decision_point": state.base,
        "access_evaluation_endpoint": format!("{}/access/v1/evaluation", state.base),
        "access_evaluations_endpoint": format!("{}/access/v1/evaluations", state.base),
        "search_subject_endpoint": format!("{}/access/v1/search/subject", state.base),
        "search_resource_endpoint": format!("{}/access/v1/search/resource", state.base),
        "search_action_endpoint": format!("{}/access/v1/search/action", state.base),
    }))
    .into_response()
}
