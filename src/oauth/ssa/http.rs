//! The workflow's HTTP API. Every route but the statement JWKS is guarded by Arbiter's own
//! decision path: the bearer token, method and path go through the PDP like any API call,
//! so who may request, review or revoke is written as Cedar policies (`policies/ssa.cedar`)
//! and audited like every other rule. Requesters see only their own requests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::{Approval, NewRequest, SsaError, SsaService};
use crate::decision::{scope_uid, Answer, AuthzRequest, EntityRef, Pdp, Reason};
use crate::http::ApiError;
use crate::store::{AuditFilter, SsaRequestRecord};
use crate::wire::www_authenticate;

/// The realm of the RFC 6750 challenges.
const REALM: &str = "arbiter";

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The action of approving one of Arbiter's own scopes in a statement: no bundled policy
/// permits it, so a deployment that wants reviewers to hand out workflow scopes says so.
pub const APPROVE_SCOPE: &str = "ApproveScope";

/// What the routes share.
#[derive(Clone)]
pub struct SsaState {
    /// The workflow.
    pub service: Arc<SsaService>,
    /// The decision point guarding the routes.
    pub pdp: Arc<Pdp>,
    /// The issuer of this server's access tokens (whose clients a revocation disables).
    pub token_issuer: String,
}

/// The workflow routes.
pub fn router(state: SsaState) -> Router {
    Router::new()
        .route("/ssa/jwks.json", get(jwks))
        .route("/ssa/requests", post(submit).get(my_requests))
        .route("/ssa/requests/{id}", get(my_request))
        .route("/ssa/review/requests", get(all_requests))
        .route("/ssa/review/requests/{id}", get(any_request))
        .route("/ssa/review/requests/{id}/approve", post(approve))
        .route("/ssa/review/requests/{id}/deny", post(deny))
        .route("/ssa/review/statements/{jti}/revoke", post(revoke))
        .route("/ssa/review/audit", get(audit))
        .with_state(state)
}

impl From<SsaError> for ApiError {
    fn from(e: SsaError) -> Self {
        let (status, code) = match &e {
            SsaError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            SsaError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            SsaError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            SsaError::Forbidden(_) => (StatusCode::FORBIDDEN, "access_denied"),
            SsaError::Store(_) | SsaError::Signing => {
                tracing::error!(error = %e, "software statement workflow failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
            }
        };
        let description = match &e {
            SsaError::Store(_) => "the store failed".to_owned(),
            other => other.to_string(),
        };
        Self::new(status, code, description)
    }
}

type ApiResult = Result<Response, ApiError>;

/// The caller of a workflow route, admitted by the PDP: its Cedar principal
/// (`Client::"…"`, `User::"…"`, or `Anonymous` when a policy opens the route to anyone).
struct Caller(String);

impl axum::extract::FromRequestParts<SsaState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &SsaState,
    ) -> Result<Self, ApiError> {
        guard(
            state,
            &parts.headers,
            &parts.method,
            &parts.uri,
            &Map::new(),
        )
        .await
        .map(Caller)
    }
}

/// A workflow call with a JSON body, admitted by the PDP only once the body has arrived in
/// full: a token revoked, or a client disabled, while a slow body came in is refused (the
/// HTTP listener's request timeout bounds how slow).
struct Admitted<T> {
    caller: String,
    body: T,
}

impl<T: serde::de::DeserializeOwned + Send> axum::extract::FromRequest<SsaState> for Admitted<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &SsaState) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let body = read_json(body).await?;
        let caller = guard(
            state,
            &parts.headers,
            &parts.method,
            &parts.uri,
            &Map::new(),
        )
        .await?;
        Ok(Self { caller, body })
    }
}

/// The caller's bearer token, or a `400` with its challenge.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    crate::http::bearer_token(headers)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            ApiError::from(e).with_challenge(www_authenticate(REALM, Some(e.code()), "", None))
        })
}

/// Asks the PDP whether the caller may make this call, with `context` (the facts of the
/// request under review); the caller's principal if so.
async fn guard(
    state: &SsaState,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    context: &Map<String, Value>,
) -> Result<String, ApiError> {
    let answer = state
        .pdp
        .authorize(AuthzRequest {
            subject: None,
            resource: None,
            token: bearer(headers)?,
            method: method.as_str(),
            path: uri.path(),
            context,
            explain: false,
            client_cert_sha256: "",
        })
        .await;
    admitted(answer)
}

/// The caller's principal when the answer is an allow, else the HTTP denial.
fn admitted(answer: Answer) -> Result<String, ApiError> {
    let verdict = answer.verdict;
    if verdict.allowed {
        return Ok(answer
            .principal
            .map_or_else(|| "Anonymous".to_owned(), |p| p.entity));
    }
    let denial = crate::wire::http_denial(
        REALM,
        verdict.reason.into(),
        &verdict.errors,
        &verdict.required_scopes,
    );
    let mut e = ApiError::new(
        StatusCode::from_u16(denial.status).unwrap_or(StatusCode::FORBIDDEN),
        denial.error,
        if verdict.reason == Reason::NoRoute {
            "no policy covers this endpoint (see policies/ssa.cedar)".to_owned()
        } else {
            denial.description
        },
    );
    e.challenge = denial.challenge;
    e.description.truncate(500);
    Err(e)
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    })?;
    let text = if bytes.is_empty() {
        &b"{}"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(text).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("invalid JSON body: {e}"),
        )
    })
}

fn no_store(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A request as its readers see it, with the statement once issued.
async fn view(state: &SsaState, request: &SsaRequestRecord) -> Result<Value, ApiError> {
    let mut out = serde_json::to_value(request).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "encoding failed",
        )
    })?;
    if let Some(jti) = &request.statement_jti {
        if let Some(st) = state.service.statement(jti).await? {
            out["software_statement"] = json!(st.jwt);
            out["statement_expires_at"] = json!(st.expires_at);
            out["statement_revoked_at"] = json!(st.revoked_at);
        }
    }
    Ok(out)
}

async fn jwks(State(state): State<SsaState>) -> Response {
    let mut response = Json(state.service.keys().jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn submit(State(state): State<SsaState>, call: Admitted<NewRequest>) -> ApiResult {
    let record = state.service.submit(&call.caller, call.body).await?;
    Ok(no_store(StatusCode::CREATED, view(&state, &record).await?))
}

#[derive(serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
}

async fn list(state: &SsaState, status: Option<&str>, owner: Option<&str>) -> ApiResult {
    let mut out = Vec::new();
    for r in state.service.requests(status, owner).await? {
        out.push(view(state, &r).await?);
    }
    Ok(no_store(StatusCode::OK, Value::Array(out)))
}

async fn my_requests(
    State(state): State<SsaState>,
    Caller(caller): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    list(&state, q.status.as_deref(), Some(&caller)).await
}

async fn all_requests(
    State(state): State<SsaState>,
    _admitted: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    list(&state, q.status.as_deref(), None).await
}

async fn my_request(
    State(state): State<SsaState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> ApiResult {
    let record = state.service.request(&id, Some(&caller)).await?;
    Ok(no_store(StatusCode::OK, view(&state, &record).await?))
}

async fn any_request(
    State(state): State<SsaState>,
    _admitted: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    let record = state.service.request(&id, None).await?;
    Ok(no_store(StatusCode::OK, view(&state, &record).await?))
}

/// The facts of a request under review that policies see as `context.ssa_request`:
/// whether the caller asked for it (`own`; the code refuses that too) and the scopes the
/// decision would approve (or, for a denial, those requested).
fn review_context(own: bool, scopes: &[String]) -> Map<String, Value> {
    let mut context = Map::new();
    context.insert(
        "ssa_request".into(),
        json!({ "own": own, "scopes": scopes }),
    );
    context
}

/// Admits a reviewer's decision on request `id` once its body has arrived: the PDP sees
/// the request's facts, and each of Arbiter's own scopes it would approve needs a policy
/// permitting `ApproveScope` on it. The reviewer's principal if admitted.
async fn admit_review(
    state: &SsaState,
    parts: &axum::http::request::Parts,
    id: &str,
    scopes: impl FnOnce(&SsaRequestRecord) -> Result<Vec<String>, SsaError>,
) -> Result<String, ApiError> {
    let facts = match state.service.request(id, None).await {
        Ok(request) => scopes(&request).map(|scopes| (request, scopes)),
        Err(e) => Err(e),
    };
    let (request, scopes) = match facts {
        Ok(facts) => facts,
        // Whether a request exists, and what is wrong with an approval, is for admitted
        // reviewers to learn.
        Err(e) => {
            let headers = &parts.headers;
            guard(state, headers, &parts.method, &parts.uri, &Map::new()).await?;
            return Err(e.into());
        }
    };
    let token = bearer(&parts.headers)?;
    // `own` must be in the context before the decision names the principal, so the token's
    // one identity is read here (a cache hit: the decision below verifies it anyway).
    let own = match state.pdp.verifier().verify(token).await {
        Ok(t) => t.identity.entity() == request.requester,
        Err(_) => false,
    };
    let context = review_context(own, &scopes);
    let reviewer = guard(state, &parts.headers, &parts.method, &parts.uri, &context).await?;
    for scope in scopes.iter().filter(|s| crate::oauth::is_arbiter_scope(s)) {
        let resource = EntityRef {
            uid: scope_uid(scope),
            properties: Map::new(),
        };
        let answer = state
            .pdp
            .authorize(AuthzRequest {
                subject: None,
                resource: Some(&resource),
                token,
                method: APPROVE_SCOPE,
                path: "",
                context: &context,
                explain: false,
                client_cert_sha256: "",
            })
            .await;
        if !answer.verdict.allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                format!(
                    "`{scope}` is one of Arbiter's own scopes: approving it needs a policy that permits Action::\"{APPROVE_SCOPE}\" on Scope::\"{scope}\""
                ),
            ));
        }
    }
    Ok(reviewer)
}

async fn approve(
    State(state): State<SsaState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult {
    let (parts, body) = request.into_parts();
    let approval: Approval = read_json(body).await?;
    let reviewer = admit_review(&state, &parts, &id, |r| {
        SsaService::approved_scopes(r, &approval)
    })
    .await?;
    let (record, _) = state.service.approve(&reviewer, &id, approval).await?;
    Ok(no_store(StatusCode::OK, view(&state, &record).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Reasoned {
    #[serde(default)]
    reason: String,
}

async fn deny(
    State(state): State<SsaState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult {
    let (parts, body) = request.into_parts();
    let r: Reasoned = read_json(body).await?;
    let reviewer = admit_review(&state, &parts, &id, |r| Ok(r.requested_scopes.clone())).await?;
    let record = state.service.deny(&reviewer, &id, &r.reason).await?;
    Ok(no_store(StatusCode::OK, view(&state, &record).await?))
}

async fn revoke(
    State(state): State<SsaState>,
    Path(jti): Path<String>,
    call: Admitted<Reasoned>,
) -> ApiResult {
    let clients = state
        .service
        .revoke(&call.caller, &jti, &call.body.reason, &state.token_issuer)
        .await?;
    Ok(no_store(
        StatusCode::OK,
        json!({ "jti": jti, "revoked": true, "disabled_clients": clients }),
    ))
}

async fn audit(
    State(state): State<SsaState>,
    _admitted: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    for k in q.keys() {
        if !matches!(k.as_str(), "request_id" | "statement_jti" | "client_id") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("unknown filter `{k}` (request_id, statement_jti, client_id)"),
            ));
        }
    }
    let filter = AuditFilter {
        request_id: q.get("request_id").cloned(),
        statement_jti: q.get("statement_jti").cloned(),
        client_id: q.get("client_id").cloned(),
    };
    let events = state.service.audit(&filter).await?;
    Ok(no_store(StatusCode::OK, json!(events)))
}
