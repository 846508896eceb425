//! Dynamic client registration (RFC 7591) with software statements, and its management
//! protocol (RFC 7592). A statement's claims take precedence over the same metadata in the
//! request (§2.3); the client may never get a scope beyond the statement's
//! `authorization.allowed_scopes`, at registration or on update. Registration without a
//! statement is refused unless `[oauth] open_registration` is set.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::clients::{self, ClientSpec};
use crate::http::ApiError;
use crate::oauth::ssa::statement::StatementError;
use crate::oauth::ssa::SsaService;
use crate::store::{AuditEvent, ClientRecord, Store, StoreError};
use crate::token::Verifier;

/// Largest registration body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Grant types a client may register with (what the token endpoint supports).
const GRANT_TYPES: [&str; 1] = ["client_credentials"];

/// What the registration routes share.
#[derive(Clone)]
pub struct RegisterState {
    /// Clients live here.
    pub store: Arc<dyn Store>,
    /// The token endpoint, told when a client changes (it caches client records).
    pub tokens: Arc<super::token::TokenService>,
    /// Verifies software statements (absent when the workflow is disabled).
    pub ssa: Option<Arc<SsaService>>,
    /// Learns of deleted clients at once.
    pub verifier: Arc<Verifier>,
    /// The authorization server's issuer identifier.
    pub issuer: String,
    /// Whether a client may register without a statement.
    pub open_registration: bool,
    /// The scopes a client registered without a statement may ever get: these, or (unset)
    /// any but Arbiter's own (`arbiter.*`).
    pub open_registration_scopes: Option<Vec<String>>,
    /// Registrations still allowed now, refilled over time (`registrations_per_minute`).
    pub admission: Arc<super::registration_rate::RegistrationRate>,
    /// Whether a client's own URLs may name loopback, private or link-local addresses.
    pub allow_private_client_urls: bool,
}

impl RegisterState {
    /// Whether a client that registered without a statement may hold `scope`.
    fn open_scope(&self, scope: &str) -> bool {
        match &self.open_registration_scopes {
            Some(list) => list.iter().any(|s| s == scope),
            None => !super::is_arbiter_scope(scope),
        }
    }
}

/// `POST /register` and `GET|PUT|DELETE /register/{client_id}`.
pub fn router(state: RegisterState) -> Router {
    Router::new()
        .route("/register", post(register))
        .route(
            "/register/{client_id}",
            axum::routing::get(read).put(update).delete(delete),
        )
        .with_state(state)
}

/// An RFC 7591 §3.2.2 error: the HTTP edge's one error body.
type RegError = ApiError;

fn reg_error(code: &'static str, description: impl Into<String>) -> RegError {
    ApiError::new(StatusCode::BAD_REQUEST, code, description)
}

fn unauthorized() -> RegError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "the registration access token is not valid for this client",
    )
    .with_challenge(crate::wire::www_authenticate(
        "arbiter",
        Some("invalid_token"),
        "",
        None,
    ))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "registration store failure");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the store failed",
        )
    }
}

impl From<StatementError> for ApiError {
    fn from(e: StatementError) -> Self {
        let code = e.code();
        match e {
            StatementError::Store => StoreError::Backend("statement check".into()).into(),
            StatementError::Invalid(m) | StatementError::Unapproved(m) => reg_error(code, m),
        }
    }
}

fn created_or_ok(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn read_metadata(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, RegError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" {
        return Err(reg_error(
            "invalid_client_metadata",
            "the body must be application/json",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| reg_error("invalid_client_metadata", "the body is too large"))?;
    metadata_object(&bytes)
}

/// The body of a registration request: a JSON object, or `invalid_client_metadata`.
fn metadata_object(bytes: &[u8]) -> Result<Map<String, Value>, RegError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(reg_error(
            "invalid_client_metadata",
            "the body must be a JSON object",
        )),
    }
}

/// The client an RFC 7591 registration body without a statement describes, checked as
/// registration checks it (metadata types, scopes, keys, URIs) before anything is stored.
/// Public for the property tests and fuzz targets that feed it hostile bodies.
pub fn parse_registration(body: &[u8]) -> Result<ClientSpec, ApiError> {
    let described = describe(&metadata_object(body)?, None, None, false)?;
    clients::new_credentials(&described.spec)
        .map_err(|e| reg_error("invalid_client_metadata", e.to_string()))?;
    Ok(described.spec)
}

fn strings(value: Option<&Value>, name: &str) -> Result<Option<Vec<String>>, RegError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                reg_error(
                    "invalid_client_metadata",
                    format!("`{name}` must be an array of strings"),
                )
            }),
        Some(_) => Err(reg_error(
            "invalid_client_metadata",
            format!("`{name}` must be an array of strings"),
        )),
    }
}

fn text(value: Option<&Value>, name: &str) -> Result<Option<String>, RegError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(reg_error(
            "invalid_client_metadata",
            format!("`{name}` must be a string"),
        )),
    }
}

/// The client that the metadata (statement claims over request) describes, before ids.
struct Described {
    spec: ClientSpec,
    /// The registered metadata to store and echo back.
    metadata: Map<String, Value>,
}

/// Merges a statement's claims over the request's metadata and checks the result.
/// `ceiling` is the most the client may be granted (the statement's allowed scopes).
fn describe(
    request: &Map<String, Value>,
    statement: Option<&Map<String, Value>>,
    ceiling: Option<&[String]>,
    private_urls_ok: bool,
) -> Result<Described, RegError> {
    let pick = |name: &str| {
        statement
            .and_then(|s| s.get(name))
            .or_else(|| request.get(name))
    };
    // A URL a signed statement gives was approved by its issuer; one the client wrote
    // itself may not point inside Arbiter's network unless the operator allows it.
    let url_ok = |name: &str| private_urls_ok || statement.and_then(|s| s.get(name)).is_some();
    let mut metadata = Map::new();
    let software_name = text(pick("software_name"), "software_name")?;
    let client_name = text(pick("client_name"), "client_name")?
        .or_else(|| software_name.clone())
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| reg_error("invalid_client_metadata", "`client_name` is required"))?;
    metadata.insert("client_name".into(), json!(client_name));
    let grant_types = strings(pick("grant_types"), "grant_types")?
        .unwrap_or_else(|| vec!["client_credentials".into()]);
    if let Some(g) = grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(reg_error(
            "invalid_client_metadata",
            format!("grant type `{g}` is not supported (only client_credentials)"),
        ));
    }
    metadata.insert("grant_types".into(), json!(grant_types));
    if let Some(types) = strings(pick("response_types"), "response_types")? {
        if !types.is_empty() {
            return Err(reg_error(
                "invalid_client_metadata",
                "no response types are supported (client_credentials only)",
            ));
        }
    }
    if let Some(uris) = strings(pick("redirect_uris"), "redirect_uris")? {
        let uris = uris
            .iter()
            .map(|uri| clients::client_url(uri, url_ok("redirect_uris")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| reg_error("invalid_redirect_uri", e))?;
        metadata.insert("redirect_uris".into(), json!(uris));
    }
    let jwks = pick("jwks").filter(|v| !v.is_null()).cloned();
    let jwks_uri = text(pick("jwks_uri"), "jwks_uri")?
        .map(|uri| clients::client_url(&uri, url_ok("jwks_uri")))
        .transpose()
        .map_err(|e| reg_error("invalid_client_metadata", e))?;
    let method = text(
        request.get("token_endpoint_auth_method"),
        "token_endpoint_auth_method",
    )?
    .unwrap_or_else(|| {
        if jwks.is_some() || jwks_uri.is_some() {
            "private_key_jwt".into()
        } else {
            "client_secret_basic".into()
        }
    });
    if !clients::AUTH_METHODS.contains(&method.as_str()) {
        return Err(reg_error(
            "invalid_client_metadata",
            format!("token_endpoint_auth_method `{method}` is not supported"),
        ));
    }
    metadata.insert("token_endpoint_auth_method".into(), json!(method));
    // RFC 8705 §2.1.2: a tls_client_auth client names its certificate's subject, once.
    let mut subjects = Vec::new();
    for name in super::mtls::SUBJECT_PARAMETERS {
        if let Some(v) = text(pick(name), name)? {
            subjects.push((name.to_owned(), v));
        }
    }
    if subjects.len() > 1 {
        return Err(reg_error(
            "invalid_client_metadata",
            "give one certificate subject parameter, not several",
        ));
    }
    let tls_subject = subjects.pop();
    if let Some((name, value)) = &tls_subject {
        metadata.insert(name.clone(), json!(value));
    }
    let mtls = method.ends_with("tls_client_auth");
    match pick("tls_client_certificate_bound_access_tokens") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) if mtls => {}
        Some(Value::Bool(true)) => {
            return Err(reg_error(
                "invalid_client_metadata",
                "certificate-bound access tokens are issued to tls_client_auth and self_signed_tls_client_auth clients",
            ))
        }
        Some(_) => {
            return Err(reg_error(
                "invalid_client_metadata",
                "`tls_client_certificate_bound_access_tokens` must be a boolean",
            ))
        }
    }
    if mtls {
        metadata.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            json!(true),
        );
    }
    let requested: Option<Vec<String>> = text(request.get("scope"), "scope")?.map(|s| {
        s.split(' ')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let scopes: Vec<String> = match (requested, ceiling) {
        (Some(asked), Some(max)) => asked.into_iter().filter(|s| max.contains(s)).collect(),
        (None, Some(max)) => max.to_vec(),
        (Some(asked), None) => asked,
        (None, None) => Vec::new(),
    };
    metadata.insert("scope".into(), json!(scopes.join(" ")));
    for name in [
        "software_id",
        "software_name",
        "software_version",
        "contacts",
        "org_name",
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
    ] {
        if let Some(v) = pick(name).filter(|v| !v.is_null()) {
            metadata.insert(name.into(), v.clone());
        }
    }
    if let Some(max) = ceiling {
        metadata.insert("authorization".into(), json!({ "allowed_scopes": max }));
    }
    if let Some(j) = &jwks {
        metadata.insert("jwks".into(), j.clone());
    }
    if let Some(u) = &jwks_uri {
        metadata.insert("jwks_uri".into(), json!(u));
    }
    let spec = ClientSpec {
        name: client_name,
        scopes,
        auth_method: method,
        jwks,
        jwks_uri,
        software_id: text(pick("software_id"), "software_id")?,
        org: text(pick("org_name"), "org_name")?,
        tls_subject,
        ..Default::default()
    };
    Ok(Described { spec, metadata })
}

fn client_uri(state: &RegisterState, client_id: &str) -> String {
    format!(
        "{}/register/{client_id}",
        state.issuer.trim_end_matches('/')
    )
}

/// The RFC 7591 §3.2.1 body for a client (secrets only when just made).
fn client_body(
    state: &RegisterState,
    record: &ClientRecord,
    secret: Option<&str>,
    registration_token: Option<&str>,
) -> Value {
    let mut out = record
        .metadata
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    out.insert("client_id".into(), json!(record.client_id));
    out.insert("client_id_issued_at".into(), json!(record.created_at));
    out.insert("scope".into(), json!(record.allowed_scopes.join(" ")));
    if let Some(secret) = secret {
        out.insert("client_secret".into(), json!(secret));
    }
    if record.secret_sha256.is_some() {
        out.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(t) = registration_token {
        out.insert("registration_access_token".into(), json!(t));
    }
    out.insert(
        "registration_client_uri".into(),
        json!(client_uri(state, &record.client_id)),
    );
    Value::Object(out)
}

async fn register(
    State(state): State<RegisterState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RegError> {
    if let Err(wait) = state.admission.admit() {
        let mut refused = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many registrations; try again later",
        )
        .into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
            refused
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        return Ok(refused);
    }
    let request = read_metadata(&headers, body).await?;
    let statement = match text(request.get("software_statement"), "software_statement")? {
        Some(jwt) => {
            let ssa = state.ssa.as_ref().ok_or_else(|| {
                reg_error(
                    "unapproved_software_statement",
                    "software statements are not accepted here (the workflow is disabled)",
                )
            })?;
            Some((ssa.statements().verify(&jwt).await?, jwt))
        }
        None if state.open_registration => None,
        None => {
            return Err(reg_error(
                "invalid_software_statement",
                "a software statement is required to register",
            ))
        }
    };
    let described = describe(
        &request,
        statement.as_ref().map(|(s, _)| &s.claims),
        statement.as_ref().map(|(s, _)| s.allowed_scopes.as_slice()),
        state.allow_private_client_urls,
    )?;
    let Described {
        mut spec,
        mut metadata,
    } = described;
    if statement.is_none() {
        // Nobody vouched for this client: only what open registration may ever get.
        spec.scopes.retain(|s| state.open_scope(s));
        metadata.insert("scope".into(), json!(spec.scopes.join(" ")));
    }
    if let Some((_, jwt)) = &statement {
        metadata.insert("software_statement".into(), json!(jwt));
    }
    // Checks the spec (scopes, JWKS) the same way the CLI does; ids and secrets come after.
    let mut created = clients::new_credentials(&spec)
        .map_err(|e| reg_error("invalid_client_metadata", e.to_string()))?;
    let registration_token =
        clients::random_token(32).map_err(|e| reg_error("server_error", e.to_string()))?;
    created.record.registration_token_sha256 = Some(clients::digest(&registration_token));
    created.record.metadata = Some(Value::Object(metadata));
    created.record.statement = statement
        .as_ref()
        .map(|(s, _)| (s.issuer.clone(), s.jti.clone()));
    let mut audit = AuditEvent::new(
        statement.as_ref().map_or_else(
            || "registration".to_owned(),
            |(s, _)| format!("software:{}", s.software_id),
        ),
        "client.register",
    );
    audit.client_id = Some(created.record.client_id.clone());
    audit.statement_jti = statement.as_ref().map(|(s, _)| s.jti.clone());
    audit.detail = json!({ "scopes": created.record.allowed_scopes, "statement_issuer": statement.as_ref().map(|(s, _)| &s.issuer) });
    match state.store.register_client(&created.record, &audit).await {
        Ok(()) => {}
        Err(StoreError::Duplicate(_)) if statement.is_some() => {
            return Err(reg_error(
                "invalid_software_statement",
                "this software statement was already used to register a client",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(client_id = %created.record.client_id, statement = ?created.record.statement.as_ref().map(|s| &s.1), "client registered");
    Ok(created_or_ok(
        StatusCode::CREATED,
        client_body(
            &state,
            &created.record,
            created.secret.as_deref(),
            Some(&registration_token),
        ),
    ))
}

/// The client a registration access token is for: it must match in constant time, and the
/// client must not be disabled or deleted.
async fn authorized(
    state: &RegisterState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<ClientRecord, RegError> {
    let token = crate::http::bearer_token(headers)?.ok_or_else(unauthorized)?;
    let record = state
        .store
        .client(client_id)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(unauthorized)?;
    let stored = record
        .registration_token_sha256
        .as_deref()
        .ok_or_else(unauthorized)?;
    aws_lc_rs::constant_time::verify_slices_are_equal(stored, &clients::digest(token))
        .map_err(|_| unauthorized())?;
    Ok(record)
}

async fn read(
    State(state): State<RegisterState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response, RegError> {
    let record = authorized(&state, &headers, &client_id).await?;
    Ok(created_or_ok(
        StatusCode::OK,
        client_body(&state, &record, None, None),
    ))
}

/// RFC 7592 update: the whole metadata again. The statement still takes precedence and
/// still caps the scopes; the authentication method and keys cannot change here.
async fn update(
    State(state): State<RegisterState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    body: Body,
) -> Result<Response, RegError> {
    let mut record = authorized(&state, &headers, &client_id).await?;
    let request = read_metadata(&headers, body).await?;
    if request.get("client_id").and_then(Value::as_str) != Some(client_id.as_str()) {
        return Err(reg_error(
            "invalid_client_metadata",
            "`client_id` must be this client's",
        ));
    }
    // RFC 7592 §2.2: the four server-assigned fields are ignored; a secret, if sent, must
    // be the current one.
    if let Some(sent) = request.get("client_secret") {
        let matches = sent
            .as_str()
            .is_some_and(|secret| clients::secret_matches(&record, secret));
        if !matches {
            return Err(reg_error(
                "invalid_client_metadata",
                "`client_secret` does not match the current secret",
            ));
        }
    }
    let stored = record
        .metadata
        .clone()
        .and_then(|m| match m {
            Value::Object(o) => Some(o),
            _ => None,
        })
        .unwrap_or_default();
    // The statement's claims (kept in the stored metadata) still win; so does its ceiling.
    let statement_claims = record.statement.as_ref().map(|_| {
        let mut claims = Map::new();
        for name in [
            "software_id",
            "software_name",
            "software_version",
            "grant_types",
            "jwks",
            "jwks_uri",
            "org_name",
            "contacts",
        ]
        .into_iter()
        .chain(super::mtls::SUBJECT_PARAMETERS)
        {
            if let Some(v) = stored.get(name) {
                claims.insert(name.into(), v.clone());
            }
        }
        claims
    });
    let ceiling: Option<Vec<String>> = stored
        .get("authorization")
        .and_then(|a| a.get("allowed_scopes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        });
    let mut merged = request;
    for ignored in [
        "software_statement",
        "client_secret",
        "registration_access_token",
        "registration_client_uri",
        "client_secret_expires_at",
        "client_id_issued_at",
    ] {
        merged.remove(ignored);
    }
    if let Some(jwks) = stored.get("jwks") {
        merged.entry("jwks").or_insert_with(|| jwks.clone());
    }
    if let Some(uri) = stored.get("jwks_uri") {
        merged.entry("jwks_uri").or_insert_with(|| uri.clone());
    }
    if let Some((name, value)) = &record.tls_subject {
        merged.entry(name.as_str()).or_insert_with(|| json!(value));
    }
    let Described {
        mut spec,
        mut metadata,
    } = describe(
        &merged,
        statement_claims.as_ref(),
        ceiling.as_deref(),
        state.allow_private_client_urls,
    )?;
    if record.statement.is_none() {
        spec.scopes.retain(|s| state.open_scope(s));
        metadata.insert("scope".into(), json!(spec.scopes.join(" ")));
    }
    if spec.auth_method != record.auth_method
        || spec.jwks != record.jwks
        || spec.jwks_uri != record.jwks_uri
        || spec.tls_subject != record.tls_subject
    {
        return Err(reg_error(
            "invalid_client_metadata",
            "the authentication method, keys and certificate subject cannot change; register a new client",
        ));
    }
    if let Some(jwt) = stored.get("software_statement") {
        metadata.insert("software_statement".into(), jwt.clone());
    }
    record.name = spec.name;
    record.allowed_scopes = spec.scopes;
    record.metadata = Some(Value::Object(metadata));
    let mut audit = AuditEvent::new(format!("client:{client_id}"), "client.update");
    audit.client_id = Some(client_id.clone());
    audit.statement_jti = record.statement.as_ref().map(|s| s.1.clone());
    audit.detail = json!({ "scopes": record.allowed_scopes });
    if !state.store.update_client(&record, &audit).await? {
        return Err(unauthorized());
    }
    state.tokens.forget_client(&client_id);
    Ok(created_or_ok(
        StatusCode::OK,
        client_body(&state, &record, None, None),
    ))
}

/// RFC 7592 delete: the client is disabled for good (its row stays for the audit trail, and
/// its statement stays used) and its tokens are refused from now on.
async fn delete(
    State(state): State<RegisterState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response, RegError> {
    let record = authorized(&state, &headers, &client_id).await?;
    let mut audit = AuditEvent::new(format!("client:{client_id}"), "client.delete");
    audit.client_id = Some(client_id.clone());
    audit.statement_jti = record.statement.as_ref().map(|s| s.1.clone());
    if !state.store.delete_client(&client_id, &audit).await? {
        return Err(unauthorized());
    }
    state
        .verifier
        .disable_clients(&state.issuer, std::slice::from_ref(&client_id));
    state.tokens.forget_client(&client_id);
    tracing::info!(client_id = %client_id, "client deleted by its registration access token");
    Ok(StatusCode::NO_CONTENT.into_response())
}
