//! AuthZEN 1.0 search: which subjects may do an action on a resource, which resources a
//! subject may do an action on, which actions a subject may do on a resource.
//!
//! A search is a sequence of evaluations over candidates, each through the one decision
//! entry (so each is a logged decision with its own id): subjects and resources of a type are
//! the entities `entities.json` declares (a `route` resource is every endpoint of the route
//! index; `client` subjects are also the authorization server's registered clients), actions
//! are those the schema lets the principal type do to the resource type. Candidates are taken in a fixed order (by id), and a
//! page ends after `page.limit` results (100 unless asked; at most 1 000) or after 10 000
//! candidates examined, whichever is first; `page.next_token` then says where the next page
//! starts. A token belongs to one search over one policy version: another search, or a reload
//! between pages, is a `400` (search again), never a silently shifted page.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{
    action, bad_request, bearer, context, entity, evaluate_one, read_object_within,
    with_request_id, AuthzenState, Evaluation, Named, MAX_ID_BYTES, MAX_NAME_BYTES,
};
use crate::decision::Reason;
use crate::http::ApiError;
use crate::policy::PolicySnapshot;

/// Results per page unless the request asks for fewer or more.
const DEFAULT_LIMIT: usize = 100;
/// Most results per page.
const MAX_LIMIT: usize = 1000;

/// What a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Which subjects may.
    Subject,
    /// Which resources a subject may act on.
    Resource,
    /// Which actions a subject may do on a resource.
    Action,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Resource => "resource",
            Self::Action => "action",
        }
    }
}

/// A search request, read and checked.
struct Query {
    kind: Kind,
    /// The subject; for a subject search, only its type counts.
    subject: Option<Named>,
    /// The action; `None` for an action search.
    action: Option<String>,
    /// The resource; for a resource search, only its type counts.
    resource: Named,
    context: Map<String, Value>,
}

/// `POST /access/v1/search/subject`.
pub(super) async fn subject(
    State(state): State<AuthzenState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    search(Kind::Subject, &state, headers, body).await
}

/// `POST /access/v1/search/resource`.
pub(super) async fn resource(
    State(state): State<AuthzenState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    search(Kind::Resource, &state, headers, body).await
}

/// `POST /access/v1/search/action`.
pub(super) async fn action_search(
    State(state): State<AuthzenState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    search(Kind::Action, &state, headers, body).await
}

async fn search(kind: Kind, state: &AuthzenState, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let token = bearer(&headers)?.to_owned();
        let object = read_object_within(body, state.search.max_body_bytes).await?;
        search_object(kind, state, token, &object)
            .await
            .map(|page| Json(page).into_response())
    }
    .await;
    with_request_id(result.unwrap_or_else(IntoResponse::into_response), &headers)
}

/// One page of a search read from its request object (the HTTP route's and the workbench's
/// Who-can forms'), as the JSON answer.
pub(super) async fn search_object(
    kind: Kind,
    state: &AuthzenState,
    token: String,
    object: &Map<String, Value>,
) -> Result<Value, ApiError> {
    {
        let budget = state.search.clone();
        let q = read_query(kind, object, !token.is_empty()).map_err(bad_request)?;
        let snapshot = state.pdp.policies().snapshot();
        let fingerprint = fingerprint(&q);
        let (offset, limit) = read_page(object.get("page"), &snapshot.version, &fingerprint)?;
        // The candidates are examined on the control plane's workers, never on the threads
        // that answer decisions, and the search ends when its caller goes away.
        let job = run(
            state.clone(),
            q,
            token,
            snapshot,
            fingerprint,
            offset,
            limit,
        );
        budget
            .workers
            .search(SEARCH_BUDGET, job)
            .await
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    format!("the search did not finish: {e}"),
                )
            })?
    }
}

/// Longest one search page may run.
const SEARCH_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

/// Examines one page of candidates (yielding between them), logs the search once, and
/// answers the page.
async fn run(
    state: AuthzenState,
    q: Query,
    token: String,
    snapshot: std::sync::Arc<PolicySnapshot>,
    fingerprint: String,
    offset: usize,
    limit: usize,
) -> Result<Value, ApiError> {
    let started = std::time::Instant::now();
    let mut candidates = candidates(&q, &snapshot);
    if let (Kind::Subject, Some(store)) = (q.kind, &state.clients) {
        let is_client = q
            .subject
            .as_ref()
            .is_some_and(|s| super::cedar_type(&s.ty, false) == "Client");
        if is_client {
            let registered = store.clients().await.map_err(|e| {
                tracing::warn!(error = %e, "subject search: the client store failed");
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the client store could not be read",
                )
            })?;
            // A disabled client can do nothing: never a result.
            candidates.extend(
                registered
                    .into_iter()
                    .filter(|c| !c.disabled)
                    .map(|c| c.client_id),
            );
            candidates.sort();
            candidates.dedup();
        }
    }
    let mut results = Vec::new();
    let mut at = offset.min(candidates.len());
    let mut examined = 0;
    // A candidate the request cannot be asked about (an action whose context needs what
    // the caller did not send) is simply not a result; a request no candidate can be
    // asked about (a reserved context key, a malformed token) is the caller's error.
    let mut invalid: Option<String> = None;
    let mut asked = 0;
    let max_examined = state.search.max_candidates;
    while at < candidates.len() && results.len() < limit && examined < max_examined {
        let e = evaluation(&q, &candidates[at]);
        let outcome = evaluate_one(&state, &token, &e, false).await;
        if outcome.reason == Reason::InvalidRequest {
            invalid.get_or_insert_with(|| outcome.errors.join("; "));
        } else {
            asked += 1;
        }
        if outcome.allowed {
            results.push(result(&q, &candidates[at]));
        }
        at += 1;
        examined += 1;
        // Other work on these threads (another search, a proof) gets its turn.
        tokio::task::yield_now().await;
    }
    let refused = asked == 0 && invalid.is_some();
    tracing::info!(
        target: "arbiter::search",
        kind = q.kind.name(),
        policy_version = %snapshot.version,
        candidates = candidates.len(),
        examined,
        results = results.len(),
        refused,
        duration_ms = started.elapsed().as_millis() as u64,
        "authzen search"
    );
    if let (0, Some(why)) = (asked, invalid) {
        return Err(bad_request(why));
    }
    let next_token = if at < candidates.len() {
        page_token(&snapshot.version, &fingerprint, at)
    } else {
        String::new()
    };
    Ok(json!({
        "results": results,
        "page": { "next_token": next_token },
    }))
}

/// Reads a search request: the searched entity needs only its type.
fn read_query(kind: Kind, item: &Map<String, Value>, has_token: bool) -> Result<Query, String> {
    let subject = match kind {
        Kind::Subject => {
            Some(type_only(item.get("subject"), "subject")?.ok_or("`subject` is required")?)
        }
        _ => {
            let s = entity(item.get("subject"), "subject")?;
            if s.is_none() && !has_token {
                return Err("`subject` is required (or a bearer token)".into());
            }
            s
        }
    };
    let action = match kind {
        Kind::Action => None,
        _ => Some(action(item.get("action"))?.ok_or("`action` is required")?),
    };
    let resource = match kind {
        Kind::Resource => type_only(item.get("resource"), "resource")?,
        _ => entity(item.get("resource"), "resource")?,
    }
    .ok_or("`resource` is required")?;
    Ok(Query {
        kind,
        subject,
        action,
        resource,
        context: context(item.get("context"))?.unwrap_or_default(),
    })
}

/// A searched entity: its `type` (required); an `id` is ignored, as the specification says.
fn type_only(value: Option<&Value>, what: &str) -> Result<Option<Named>, String> {
    let Some(value) = value else { return Ok(None) };
    let obj = value
        .as_object()
        .ok_or_else(|| format!("`{what}` must be an object"))?;
    match obj.get("type") {
        Some(Value::String(s)) if s.len() > MAX_NAME_BYTES => Err(format!(
            "`{what}.type` is longer than {MAX_NAME_BYTES} bytes"
        )),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(Named {
            ty: s.clone(),
            id: String::new(),
            properties: Map::new(),
        })),
        Some(Value::String(_)) | None => Err(format!("`{what}.type` is required")),
        Some(_) => Err(format!("`{what}.type` must be a string")),
    }
}

/// The candidates in the order pages take them: entity ids, route templates or action names.
fn candidates(q: &Query, snapshot: &PolicySnapshot) -> Vec<String> {
    let of_type = |authzen: &str, resource: bool| -> Vec<String> {
        let ty = super::cedar_type(authzen, resource);
        if resource && ty == crate::policy::ENDPOINT_TYPE {
            return snapshot
                .routes
                .endpoints()
                .iter()
                .map(|e| e.template.clone())
                .collect();
        }
        let mut ids: Vec<String> = snapshot
            .entities
            .iter()
            .filter(|e| e.uid().type_name().to_string() == ty)
            .map(|e| e.uid().id().unescaped().to_owned())
            .filter(|id| id.len() <= MAX_ID_BYTES)
            .collect();
        ids.sort();
        ids
    };
    match q.kind {
        Kind::Subject => q
            .subject
            .as_ref()
            .map(|s| of_type(&s.ty, false))
            .unwrap_or_default(),
        Kind::Resource => of_type(&q.resource.ty, true),
        Kind::Action => {
            // The actions the schema lets this principal type do to this resource type; a
            // bearer token's principal is a `User` or a `Client`.
            let resource = super::cedar_type(&q.resource.ty, true);
            let principals: Vec<String> = match &q.subject {
                Some(s) => vec![super::cedar_type(&s.ty, false)],
                None => vec!["User".to_owned(), "Client".to_owned()],
            };
            let mut names: Vec<String> = Vec::new();
            if let Ok(r) = resource.parse::<cedar_policy::EntityTypeName>() {
                for p in principals.iter().filter_map(|p| p.parse().ok()) {
                    names.extend(
                        snapshot
                            .schema
                            .actions_for_principal_and_resource(&p, &r)
                            .map(|a| a.id().unescaped().to_owned()),
                    );
                }
            }
            names.sort();
            names.dedup();
            names
        }
    }
}

/// The evaluation of one candidate.
fn evaluation(q: &Query, candidate: &str) -> Evaluation {
    let with_id = |n: &Named| Named {
        id: candidate.to_owned(),
        ..n.clone()
    };
    Evaluation {
        subject: match q.kind {
            Kind::Subject => q.subject.as_ref().map(with_id),
            _ => q.subject.clone(),
        },
        action: match q.kind {
            Kind::Action => candidate.to_owned(),
            _ => q.action.clone().unwrap_or_default(),
        },
        resource: match q.kind {
            Kind::Resource => with_id(&q.resource),
            _ => q.resource.clone(),
        },
        context: q.context.clone(),
    }
}

/// One result as AuthZEN writes it, in the type the caller named.
fn result(q: &Query, candidate: &str) -> Value {
    match q.kind {
        Kind::Subject => {
            json!({ "type": q.subject.as_ref().map_or("", |s| s.ty.as_str()), "id": candidate })
        }
        Kind::Resource => json!({ "type": q.resource.ty, "id": candidate }),
        Kind::Action => json!({ "name": candidate }),
    }
}

/// What identifies a search across its pages: everything but the page.
fn fingerprint(q: &Query) -> String {
    let named = |n: &Named| json!({ "type": n.ty, "id": n.id, "properties": n.properties });
    let canonical = json!({
        "kind": q.kind.name(),
        "subject": q.subject.as_ref().map(named),
        "action": q.action,
        "resource": named(&q.resource),
        "context": q.context,
    });
    hex::encode(&Sha256::digest(canonical.to_string().as_bytes())[..12])
}

fn page_token(version: &str, fingerprint: &str, offset: usize) -> String {
    let text = format!("{version}.{fingerprint}.{offset}");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// The first candidate and the page size a request asks for. The token is `page.token`
/// (AuthZEN 1.0) or `page.next_token` (as the drafts and some PEPs send it).
fn read_page(
    page: Option<&Value>,
    version: &str,
    fingerprint: &str,
) -> Result<(usize, usize), ApiError> {
    let Some(page) = page.filter(|p| !p.is_null()) else {
        return Ok((0, DEFAULT_LIMIT));
    };
    let page = page
        .as_object()
        .ok_or_else(|| bad_request("`page` must be an object"))?;
    let limit = match page.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
            _ => {
                return Err(bad_request(format!(
                    "`page.limit` must be a whole number from 1 to {MAX_LIMIT}"
                )))
            }
        },
    };
    let token = match page.get("token").or_else(|| page.get("next_token")) {
        None | Some(Value::Null) => return Ok((0, limit)),
        Some(Value::String(t)) if t.is_empty() => return Ok((0, limit)),
        Some(Value::String(t)) => t,
        Some(_) => return Err(bad_request("`page.token` must be a string")),
    };
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad_request("`page.token` is not a token this PDP gave"))?;
    let mut parts = text.splitn(3, '.');
    let (Some(v), Some(f), Some(offset)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad_request("`page.token` is not a token this PDP gave"));
    };
    let offset: usize = offset
        .parse()
        .map_err(|_| bad_request("`page.token` is not a token this PDP gave"))?;
    if f != fingerprint {
        return Err(bad_request("`page.token` belongs to another search"));
    }
    if v != version {
        return Err(bad_request(
            "the policies changed since the first page; search again from the start",
        ));
    }
    Ok((offset, limit))
}
