//! The OAuth HTTP routes (axum): `POST /token`, `GET /jwks.json` and RFC 8414 metadata.
//! Parsing follows RFC 6749 to the letter: form-encoded bodies only, no repeated parameter,
//! one client authentication method per request, errors as §5.2 JSON with `no-store`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::Extension;

use crate::http::ApiError;
use crate::tls::PeerCertificate;

use super::token::{ClientAuth, OAuthError, Origin, TokenRequest, TokenService};

/// Largest token request body accepted.
const MAX_BODY: usize = 16 * 1024;

/// The authorization server's routes.
pub fn router(service: Arc<TokenService>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .route("/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .with_state(service)
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let basic = status == StatusCode::UNAUTHORIZED && self.used_basic;
        let mut error = ApiError::new(status, self.code, self.description);
        if basic {
            error = error.with_challenge("Basic realm=\"arbiter\", charset=\"UTF-8\"");
        }
        error.into_response()
    }
}

/// The client certificate of the request's connection, if any.
type Certificate = Option<Extension<PeerCertificate>>;

async fn token(
    State(service): State<Arc<TokenService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    certificate: Certificate,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut req = match parse_token_request(&headers, &body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    req.origin = Origin {
        peer: Some(peer.ip()),
        forwarded_for: crate::http::forwarded_chain(&headers),
        fraud_score: crate::http::fraud_scores(&headers),
        certificate: certificate.map(|Extension(c)| c),
    };
    match service.token(req).await {
        Ok(granted) => no_store(Json(granted).into_response()),
        Err(e) => e.into_response(),
    }
}

/// Reads a request body up to [`MAX_BODY`]; a larger one is an OAuth `invalid_request`.
async fn read_body(body: Body) -> Result<Bytes, OAuthError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        OAuthError::new(
            "invalid_request",
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    })
}

/// A `/token` request as RFC 6749 reads it: the form body (no repeated parameter but
/// `resource`) and the client's credentials from `Authorization` or the form. Public for the
/// property tests and fuzz targets that feed it hostile bodies.
pub fn parse_token_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthError> {
    let Form {
        mut params,
        resources,
        auth,
    } = parse_form(headers, body)?;
    Ok(TokenRequest {
        grant_type: params.remove("grant_type"),
        scope: params.remove("scope"),
        resources,
        auth,
        origin: Origin::default(),
    })
}

/// A parsed form: single-valued parameters, RFC 8707 `resource`s, and the credentials.
struct Form {
    params: HashMap<String, String>,
    resources: Vec<String>,
    auth: ClientAuth,
}

/// An endpoint's form parameters and the client's credentials, parsed by RFC 6749's rules
/// (only `resource` may repeat, as RFC 8707 allows).
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::new(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut params: HashMap<String, String> = HashMap::new();
    let mut resources = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if k == "resource" {
            resources.push(v.into_owned());
        } else if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                format!("parameter `{k}` is repeated"),
            ));
        }
    }
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(basic_credentials(value)?),
        None => None,
    };
    let client_id_param = params.get("client_id").cloned();
    let post = match (params.remove("client_id"), params.remove("client_secret")) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        (Some(_), None) => None, // a public client, or one using Basic
        (None, Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "`client_secret` without `client_id`",
            ))
        }
    };
    let assertion = match (params.remove("client_assertion_type"), params.remove("client_assertion")) {
        (Some(kind), Some(jwt)) if kind == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" => Some(jwt),
        (None, None) => None,
        _ => {
            return Err(OAuthError::new(
                "invalid_request",
                "`client_assertion_type` must be `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, with `client_assertion`",
            ))
        }
    };
    if let Some(jwt) = assertion {
        if basic.is_some() || post.is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method, not two",
            ));
        }
        return Ok(Form {
            params,
            resources,
            auth: ClientAuth::Assertion {
                id: client_id_param,
                assertion: jwt,
            },
        });
    }
    let auth = match (basic, post) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method, not two",
            ))
        }
        (Some((id, secret)), None) => ClientAuth::Basic { id, secret },
        (None, Some((id, secret))) => ClientAuth::Post { id, secret },
        (None, None) => match client_id_param {
            // Nothing but the id: RFC 8705 mutual TLS, by the connection's certificate.
            Some(id) => ClientAuth::Tls { id },
            None => ClientAuth::None,
        },
    };
    Ok(Form {
        params,
        resources,
        auth,
    })
}

/// The `token` parameter of introspection and revocation.
fn token_param(params: &mut HashMap<String, String>) -> Result<String, OAuthError> {
    params
        .remove("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::new("invalid_request", "`token` is required"))
}

fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The client's credentials and the `token` parameter of introspection and revocation.
async fn token_form(headers: &HeaderMap, body: Body) -> Result<(ClientAuth, String), OAuthError> {
    let body = read_body(body).await?;
    let mut form = parse_form(headers, &body)?;
    Ok((form.auth, token_param(&mut form.params)?))
}

/// RFC 7662 introspection: the caller authenticates as a client.
async fn introspect(
    State(service): State<Arc<TokenService>>,
    certificate: Certificate,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let certificate = certificate.map(|Extension(c)| c);
    let result = match token_form(&headers, body).await {
        Ok((auth, token)) => {
            service
                .introspect(&auth, certificate.as_ref(), &token)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(Some(active)) => no_store(Json(active).into_response()),
        Ok(None) => no_store(Json(json!({ "active": false })).into_response()),
        Err(e) => e.into_response(),
    }
}

/// RFC 7009 revocation: 200 with an empty body whether or not the token was valid.
async fn revoke(
    State(service): State<Arc<TokenService>>,
    certificate: Certificate,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let certificate = certificate.map(|Extension(c)| c);
    let result = match token_form(&headers, body).await {
        Ok((auth, token)) => service.revoke(&auth, certificate.as_ref(), &token).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    }
}

/// RFC 6749 §2.3.1: `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic_credentials(value: &HeaderValue) -> Result<(String, String), OAuthError> {
    let invalid = || OAuthError {
        code: "invalid_client",
        description: "malformed Basic credentials".into(),
        used_basic: true,
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let (scheme, encoded) = text.split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    let unescape = |s: &str| -> Result<String, OAuthError> {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .ok_or_else(invalid)
    };
    Ok((unescape(id)?, unescape(secret)?))
}

async fn jwks(State(service): State<Arc<TokenService>>) -> Response {
    let mut response = Json(service.keys().jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn metadata(State(service): State<Arc<TokenService>>) -> Response {
    let settings = service.settings();
    let base = settings.issuer.trim_end_matches('/');
    let mut methods = vec![
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    if settings.client_certificates {
        methods.extend(["tls_client_auth", "self_signed_tls_client_auth"]);
    }
    Json(json!({
        "issuer": settings.issuer,
        "token_endpoint": format!("{base}/token"),
        "introspection_endpoint": format!("{base}/introspect"),
        "revocation_endpoint": format!("{base}/revoke"),
        "registration_endpoint": format!("{base}/register"),
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "jwks_uri": format!("{base}/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": methods,
        "tls_client_certificate_bound_access_tokens": settings.client_certificates,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "RS256", "EdDSA"],
        "response_types_supported": [],
        "scopes_supported": [],
    }))
    .into_response()
}
