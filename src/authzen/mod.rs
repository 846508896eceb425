//! The OpenID AuthZEN Authorization API 1.0 over HTTP: access evaluation, evaluations
//! (batch, with `evaluations_semantic`), and `/.well-known/authzen-configuration`.
//!
//! Mapping onto Arbiter's Cedar model: the subject `{type, id, properties}` is the principal
//! `<Type>::"<id>"` (the type with its first letter upper-cased: `user` → `User`,
//! `identity` → `Identity`), or, without a subject, the principal of a bearer token in
//! `Authorization` (verified like any `Authorize` token: `User::"<sub>"` or
//! `Client::"<client_id>"`); the action `{name}` is `Action::"<name>"`; the resource is
//! `<Type>::"<id>"` likewise, except `{type: "route", id: "<template>"}`, which is Arbiter's
//! `Endpoint::"<template>"`; `properties` become the entity's attributes (over those in
//! `entities.json`, keeping its parents); `context` is the Cedar context. Every request is
//! checked against the schema and evaluated against the whole live policy set; anything
//! that fails is a deny (`decision: false`) with the reason in the single-evaluation context.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cedar_policy::{Context, Decision, Entity, EntityUid, Request};
use serde_json::{json, Map, Value};

use crate::decision::Pdp;
use crate::policy::PolicySnapshot;

/// Largest request body accepted.
const MAX_BODY: usize = 256 * 1024;
/// Most evaluations in one batch.
const MAX_EVALUATIONS: usize = 1000;

#[derive(Clone)]
struct AuthzenState {
    pdp: Arc<Pdp>,
    base: String,
}

/// The AuthZEN routes; `base` is the public HTTP base URL for the metadata.
pub fn router(pdp: Arc<Pdp>, base: String) -> Router {
    Router::new()
        .route("/access/v1/evaluation", post(evaluation))
        .route("/access/v1/evaluations", post(evaluations))
        .route("/.well-known/authzen-configuration", get(configuration))
        .with_state(AuthzenState {
            pdp,
            base: base.trim_end_matches('/').to_owned(),
        })
}

/// A subject or resource as AuthZEN gives it.
#[derive(Debug, Clone)]
struct EntityRef {
    ty: String,
    id: String,
    properties: Map<String, Value>,
}

/// One evaluation, after defaults were applied.
#[derive(Debug, Clone)]
struct Evaluation {
    subject: Option<EntityRef>,
    action: String,
    resource: EntityRef,
    context: Map<String, Value>,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone)]
struct Outcome {
    allowed: bool,
    reason: String,
    policies: Vec<String>,
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid_request", "error_description": message.into() })),
    )
        .into_response()
}

async fn read_object(body: Body) -> Result<Map<String, Value>, Response> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| bad_request("the body is too large"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_request("the body must be a JSON object")),
        Err(e) => Err(bad_request(format!("the body is not JSON: {e}"))),
    }
}

fn entity(value: Option<&Value>, what: &str) -> Result<Option<EntityRef>, String> {
    let Some(value) = value else { return Ok(None) };
    let obj = value
        .as_object()
        .ok_or_else(|| format!("`{what}` must be an object"))?;
    let text = |k: &str| -> Result<String, String> {
        match obj.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None => Err(format!("`{what}.{k}` is required")),
            Some(_) => Err(format!("`{what}.{k}` must be a string")),
        }
    };
    let properties = match obj.get("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(format!("`{what}.properties` must be an object")),
    };
    Ok(Some(EntityRef {
        ty: text("type")?,
        id: text("id")?,
        properties,
    }))
}

fn action(value: Option<&Value>) -> Result<Option<String>, String> {
    let Some(value) = value else { return Ok(None) };
    match value.get("name") {
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

fn uid(ty: &str, id: &str) -> Result<EntityUid, String> {
    let json = json!({ "type": ty, "id": id });
    EntityUid::from_json(json).map_err(|e| format!("`{ty}::{id:?}` is not an entity: {e}"))
}

/// Decides one evaluation against a snapshot. Pure: no I/O. With a bearer token, its scopes
/// fill `context.scopes` when the action's context declares it (as `Authorize` does).
fn decide(
    snapshot: &PolicySnapshot,
    principal: &EntityRef,
    token: Option<&crate::token::VerifiedToken>,
    e: &Evaluation,
) -> Outcome {
    let scopes = token.filter(|_| {
        !e.context.contains_key("scopes")
            && snapshot
                .shapes
                .contexts
                .get(&e.action)
                .is_some_and(|shape| shape.get("scopes").is_some())
    });
    match try_decide(snapshot, principal, e, scopes.map(|t| t.scopes.as_slice())) {
        Ok(o) => o,
        Err(reason) => Outcome {
            allowed: false,
            reason,
            policies: Vec::new(),
        },
    }
}

/// `scopes`: the bearer token's, to add to the context.
fn try_decide(
    snapshot: &PolicySnapshot,
    principal: &EntityRef,
    e: &Evaluation,
    scopes: Option<&[String]>,
) -> Result<Outcome, String> {
    let schema = &snapshot.schema;
    let p_uid = uid(&cedar_type(&principal.ty, false), &principal.id)?;
    let r_uid = uid(&cedar_type(&e.resource.ty, true), &e.resource.id)?;
    let a_uid = uid("Action", &e.action)?;
    let mut extra = Vec::new();
    for (u, props) in [
        (&p_uid, &principal.properties),
        (&r_uid, &e.resource.properties),
    ] {
        if props.is_empty() {
            continue;
        }
        let (mut attrs, parents) = match snapshot.entities.get(u) {
            Some(existing) => {
                let v = existing.to_json_value().map_err(|e| e.to_string())?;
                (
                    v.get("attrs")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                    v.get("parents").cloned().unwrap_or_else(|| json!([])),
                )
            }
            None => (Map::new(), json!([])),
        };
        attrs.extend(props.clone());
        let json = json!({
            "uid": { "type": u.type_name().to_string(), "id": u.id().unescaped() },
            "attrs": attrs,
            "parents": parents,
        });
        extra.push(
            Entity::from_json_value(json, Some(schema)).map_err(|err| format!("{u}: {err}"))?,
        );
    }
    // The static entities are copied only when the request brings attributes of its own.
    let upserted;
    let entities = if extra.is_empty() {
        &snapshot.entities
    } else {
        upserted = snapshot
            .entities
            .clone()
            .upsert_entities(extra, Some(schema))
            .map_err(|err| err.to_string())?;
        &upserted
    };
    let mut context = e.context.clone();
    if let Some(scopes) = scopes {
        context.insert("scopes".into(), json!(scopes));
    }
    let ctx = Context::from_json_value(Value::Object(context), Some((schema, &a_uid)))
        .map_err(|err| format!("context: {err}"))?;
    let request =
        Request::new(p_uid, a_uid, r_uid, ctx, Some(schema)).map_err(|err| err.to_string())?;
    let response =
        crate::decision::AUTHORIZER.is_authorized(&request, &snapshot.policies, entities);
    let diagnostics = response.diagnostics();
    let forbid_failed = diagnostics.errors().any(|err| match err {
        cedar_policy::AuthorizationError::PolicyEvaluationError(pe) => snapshot
            .meta
            .get(pe.policy_id())
            .is_some_and(|m| m.effect == cedar_policy::Effect::Forbid),
    });
    let policies: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    let allowed = response.decision() == Decision::Allow && !forbid_failed;
    let reason = match (response.decision(), forbid_failed) {
        (Decision::Allow, false) => "allow",
        (Decision::Allow, true) => "error",
        (Decision::Deny, _) if policies.is_empty() => "no permit applies",
        (Decision::Deny, _) => "policy_deny",
    };
    Ok(Outcome {
        allowed,
        reason: reason.to_owned(),
        policies,
    })
}

/// The principal of an evaluation: its subject, or the bearer token's.
async fn principal_of(
    state: &AuthzenState,
    headers: &HeaderMap,
    e: &Evaluation,
) -> Result<(EntityRef, Option<Arc<crate::token::VerifiedToken>>), String> {
    if let Some(s) = &e.subject {
        return Ok((s.clone(), None));
    }
    let token = bearer(headers).ok_or("no subject and no bearer token")?;
    let verified = state
        .pdp
        .verifier()
        .verify(token)
        .await
        .map_err(|err| format!("bearer token: {err}"))?;
    let who = crate::decision::principal_info(&verified);
    let (ty, id) = if who.entity.starts_with("User::") {
        ("user", who.sub)
    } else {
        ("client", who.client_id)
    };
    let subject = EntityRef {
        ty: ty.into(),
        id,
        properties: Map::new(),
    };
    Ok((subject, Some(verified)))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
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

async fn evaluate_one(state: &AuthzenState, headers: &HeaderMap, e: &Evaluation) -> Outcome {
    let (principal, token) = match principal_of(state, headers, e).await {
        Ok(p) => p,
        Err(reason) => {
            return Outcome {
                allowed: false,
                reason,
                policies: Vec::new(),
            }
        }
    };
    let snapshot = state.pdp.policies().load();
    let outcome = decide(&snapshot, &principal, token.as_deref(), e);
    tracing::info!(
        target: "arbiter::decision",
        api = "authzen",
        principal = %format!("{}::{:?}", cedar_type(&principal.ty, false), principal.id),
        action = %e.action,
        resource = %format!("{}::{:?}", cedar_type(&e.resource.ty, true), e.resource.id),
        decision = if outcome.allowed { "allow" } else { "deny" },
        reason = %outcome.reason,
        policies = ?outcome.policies,
        policy_version = %snapshot.version,
        "decision"
    );
    outcome
}

async fn evaluation(State(state): State<AuthzenState>, headers: HeaderMap, body: Body) -> Response {
    let object = match read_object(body).await {
        Ok(o) => o,
        Err(r) => return with_request_id(r, &headers),
    };
    let e = match read_evaluation(&object, None, bearer(&headers).is_some()) {
        Ok(e) => e,
        Err(m) => return with_request_id(bad_request(m), &headers),
    };
    let outcome = evaluate_one(&state, &headers, &e).await;
    with_request_id(
        Json(json!({
            "decision": outcome.allowed,
            "context": { "reason": outcome.reason, "policies": outcome.policies },
        }))
        .into_response(),
        &headers,
    )
}

async fn evaluations(
    State(state): State<AuthzenState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let object = match read_object(body).await {
        Ok(o) => o,
        Err(r) => return with_request_id(r, &headers),
    };
    let has_token = bearer(&headers).is_some();
    let items = match object.get("evaluations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return with_request_id(bad_request("`evaluations` must be an array"), &headers),
    };
    if items.is_empty() {
        // No batch: one evaluation from the top-level fields.
        return evaluation_from(&state, &headers, &object, has_token).await;
    }
    if items.len() > MAX_EVALUATIONS {
        return with_request_id(
            bad_request(format!("at most {MAX_EVALUATIONS} evaluations")),
            &headers,
        );
    }
    let semantic = match object
        .get("options")
        .and_then(|o| o.get("evaluations_semantic"))
    {
        None | Some(Value::Null) => "execute_all",
        Some(Value::String(s)) if matches!(s.as_str(), "execute_all" | "deny_on_first_deny" | "permit_on_first_permit") => s.as_str(),
        Some(_) => {
            return with_request_id(
                bad_request("`options.evaluations_semantic` is execute_all, deny_on_first_deny or permit_on_first_permit"),
                &headers,
            )
        }
    }
    .to_owned();
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(item) = item.as_object() else {
            return with_request_id(
                bad_request(format!("evaluations[{i}] must be an object")),
                &headers,
            );
        };
        match read_evaluation(item, Some(&object), has_token) {
            Ok(e) => parsed.push(e),
            Err(m) => {
                return with_request_id(bad_request(format!("evaluations[{i}]: {m}")), &headers)
            }
        }
    }
    let mut results = Vec::with_capacity(parsed.len());
    for e in &parsed {
        let outcome = evaluate_one(&state, &headers, e).await;
        results.push(json!({ "decision": outcome.allowed }));
        let stop = match semantic.as_str() {
            "deny_on_first_deny" => !outcome.allowed,
            "permit_on_first_permit" => outcome.allowed,
            _ => false,
        };
        if stop {
            break;
        }
    }
    with_request_id(
        Json(json!({ "evaluations": results })).into_response(),
        &headers,
    )
}

async fn evaluation_from(
    state: &AuthzenState,
    headers: &HeaderMap,
    object: &Map<String, Value>,
    has_token: bool,
) -> Response {
    match read_evaluation(object, None, has_token) {
        Ok(e) => {
            let outcome = evaluate_one(state, headers, &e).await;
            with_request_id(
                Json(json!({ "decision": outcome.allowed })).into_response(),
                headers,
            )
        }
        Err(m) => with_request_id(bad_request(m), headers),
    }
}

async fn configuration(State(state): State<AuthzenState>) -> Response {
    Json(json!({
        "policy_decision_point": state.base,
        "access_evaluation_endpoint": format!("{}/access/v1/evaluation", state.base),
        "access_evaluations_endpoint": format!("{}/access/v1/evaluations", state.base),
    }))
    .into_response()
}
