//! `arbiter gateway`: a reverse proxy that asks Arbiter before every request. It takes the
//! bearer token (RFC 6750 header form; query-string tokens refused unless configured), asks
//! with method, path and context (client IP, host, configured headers), then forwards the
//! allowed request to the upstream with bodies streamed both ways, or answers the denial per
//! RFC 6750. An unreachable PDP is a 503, never a forward. Over TLS, the thumbprint of the
//! client's certificate goes with every question, so certificate-bound tokens (RFC 8705)
//! work through the gateway and nowhere else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::client::{ArbiterClient, Check, ClientConfig, Decision};
use crate::config::TlsConfig;
use crate::grpc::proto::Reason;
use crate::tls::{Listener, PeerCertificate, ReloadingTls};

/// Header carrying the decision id to the upstream.
pub const DECISION_HEADER: &str = "x-arbiter-decision-id";
/// Header carrying the token's principal to the upstream.
pub const PRINCIPAL_HEADER: &str = "x-arbiter-principal";

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The upstream base URL, e.g. `http://127.0.0.1:9000`.
    pub upstream: String,
    /// The PDP client's settings.
    pub pdp: ClientConfig,
    /// Pass the `Authorization` header to the upstream (else strip it).
    pub pass_authorization: bool,
    /// Accept `access_token` in the query string (RFC 6750 §2.3; off by default).
    pub allow_query_token: bool,
    /// Request headers copied into the decision context: `(header, context key)`.
    pub context_headers: Vec<(HeaderName, String)>,
    /// Longest wait for the upstream's response headers.
    pub upstream_timeout: Duration,
    /// Largest request body forwarded.
    pub max_body_bytes: usize,
    /// The realm in `WWW-Authenticate`.
    pub realm: String,
    /// Serve TLS (client certificates per its `http_client_certs`; `optional` lets clients
    /// with certificate-bound tokens use them).
    pub tls: Option<TlsConfig>,
}

impl GatewayConfig {
    /// Defaults: pass `Authorization`, header tokens only, 30 s upstream timeout, 10 MiB
    /// bodies.
    pub fn new(upstream: impl Into<String>, pdp: impl Into<String>) -> Self {
        Self {
            upstream: upstream.into(),
            pdp: ClientConfig::new(pdp),
            pass_authorization: true,
            allow_query_token: false,
            context_headers: Vec::new(),
            upstream_timeout: Duration::from_secs(30),
            max_body_bytes: 10 * 1024 * 1024,
            realm: "arbiter".into(),
            tls: None,
        }
    }
}

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The upstream URL is not an http URL.
    #[error("invalid upstream `{0}` (an http:// URL)")]
    Upstream(String),
    /// The PDP client could not be built.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// Serving failed.
    #[error("gateway: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS files did not load.
    #[error("gateway: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

struct Gateway {
    config: GatewayConfig,
    upstream: Uri,
    pdp: ArbiterClient,
    http: Client<HttpConnector, Body>,
}

/// Serves the gateway on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: GatewayConfig,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let upstream: Uri = config
        .upstream
        .parse()
        .ok()
        .filter(|u: &Uri| u.scheme_str() == Some("http") && u.authority().is_some())
        .ok_or_else(|| GatewayError::Upstream(config.upstream.clone()))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let http = Client::builder(TokioExecutor::new()).build(connector);
    let state = Arc::new(Gateway {
        pdp: ArbiterClient::new(config.pdp.clone())?,
        config,
        upstream,
        http,
    });
    let tls = match &state.config.tls {
        Some(c) => {
            let tls = ReloadingTls::new(c.clone(), Listener::Http)?;
            tokio::spawn(tls.clone().watch(shutdown.clone()));
            Some(tls)
        }
        None => None,
    };
    let app = axum::Router::new().fallback(handle).with_state(state);
    crate::tls::serve_http(listener, app, tls, shutdown).await?;
    Ok(())
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    certificate: Option<Extension<PeerCertificate>>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gw.config.max_body_bytes as u64) {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        );
    }
    let token = match bearer_token(&gw.config, &parts.headers, &parts.uri) {
        Ok(t) => t,
        Err(response) => return *response,
    };
    let mut context = Map::new();
    context.insert("ip".into(), json!(peer.ip().to_string()));
    if let Some(host) = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        context.insert("host".into(), json!(host));
    }
    for (name, key) in &gw.config.context_headers {
        if let Some(v) = parts.headers.get(name).and_then(|h| h.to_str().ok()) {
            let value = v
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(v));
            context.insert(key.clone(), value);
        }
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let decision = gw
        .pdp
        .check(Check {
            token: token.as_deref().unwrap_or(""),
            method: parts.method.as_str(),
            path: &path_and_query,
            context: &context,
            client_cert_sha256: certificate
                .as_ref()
                .map_or("", |Extension(c)| c.thumbprint()),
        })
        .await;
    if !decision.allowed || decision.unavailable && !gw.config.pdp.fail_open {
        return denial(&gw.config, &decision);
    }
    // Forward.
    strip_hop_by_hop(&mut parts.headers);
    for h in [DECISION_HEADER, PRINCIPAL_HEADER] {
        parts.headers.remove(h);
    }
    if !gw.config.pass_authorization {
        parts.headers.remove(header::AUTHORIZATION);
    }
    append_forwarded(&mut parts.headers, peer, gw.config.tls.is_some());
    if let Ok(v) = HeaderValue::from_str(&decision.decision_id) {
        parts.headers.insert(DECISION_HEADER, v);
    }
    if let Some(p) = decision
        .principal
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        parts.headers.insert(PRINCIPAL_HEADER, p);
    }
    let mut target = gw.upstream.clone().into_parts();
    let base = gw.upstream.path().trim_end_matches('/');
    target.path_and_query = format!("{base}{path_and_query}").parse().ok();
    let Ok(uri) = Uri::from_parts(target) else {
        return plain(StatusCode::BAD_REQUEST, "invalid request target");
    };
    parts.uri = uri;
    let body = Body::new(http_body_util::Limited::new(body, gw.config.max_body_bytes));
    let upstream_request = Request::from_parts(parts, body);
    match tokio::time::timeout(
        gw.config.upstream_timeout,
        gw.http.request(upstream_request),
    )
    .await
    {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream request failed");
            plain(StatusCode::BAD_GATEWAY, "the upstream could not be reached")
        }
        Err(_) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            "the upstream did not answer in time",
        ),
    }
}

/// The bearer token: `Authorization: Bearer …`, or (if allowed) `access_token` in the query.
#[allow(clippy::result_large_err)]
fn bearer_token(
    config: &GatewayConfig,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Option<String>, Box<Response>> {
    let in_query = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    let in_header = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or_default();
            match text.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    Some(token.trim().to_owned())
                }
                _ => {
                    return Err(Box::new(challenge(
                        config,
                        StatusCode::BAD_REQUEST,
                        Some("invalid_request"),
                        "use `Authorization: Bearer <token>`",
                        None,
                    )))
                }
            }
        }
    };
    match (in_header, in_query) {
        (Some(_), Some(_)) => Err(Box::new(challenge(
            config,
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "a token in both the header and the query",
            None,
        ))),
        (Some(t), None) => Ok(Some(t)),
        (None, Some(t)) if config.allow_query_token => Ok(Some(t)),
        (None, Some(_)) => Err(Box::new(challenge(
            config,
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "tokens in the query string are not accepted; use the Authorization header",
            None,
        ))),
        (None, None) => Ok(None),
    }
}

fn denial(config: &GatewayConfig, d: &Decision) -> Response {
    if d.unavailable {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the policy decision point is unavailable",
        );
    }
    let answer = http_denial(&config.realm, d.reason, &d.errors, &d.required_scopes);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = match (&answer.challenge, d.reason) {
        (Some(value), _) => {
            let mut r = (
                status,
                axum::Json(
                    json!({ "error": answer.error, "error_description": answer.description }),
                ),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(value) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
        (None, _) => plain(status, &answer.description),
    };
    if let Ok(v) = HeaderValue::from_str(&d.decision_id) {
        response.headers_mut().insert(DECISION_HEADER, v);
    }
    response
}

/// How a deny answers over HTTP (RFC 6750 §3): the status, the error code, a description
/// safe to show, and the `WWW-Authenticate` challenge when there is one. Shared by the
/// gateway, Envoy ext_authz and the workflow routes, so they answer alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDenial {
    /// 400, 401 or 403.
    pub status: u16,
    /// `invalid_token`, `insufficient_scope`, `invalid_request`, `access_denied`, …
    pub error: &'static str,
    /// Safe to show.
    pub description: String,
    /// The `WWW-Authenticate` value, for 401 and insufficient scope.
    pub challenge: Option<String>,
}

/// Maps a deny to its HTTP answer: no token → 401 with a bare challenge; an invalid token
/// → 401 `invalid_token`; insufficient scope → 403 with the scopes that would do; an
/// invalid request → 400; any other deny → 403.
pub fn http_denial(
    realm: &str,
    reason: Reason,
    errors: &[String],
    required_scopes: &[String],
) -> HttpDenial {
    let describe = || errors.join("; ").replace(['"', '\\'], "'");
    match reason {
        Reason::MissingToken => HttpDenial {
            status: 401,
            error: "invalid_token",
            description: "a bearer token is required".into(),
            challenge: Some(www_authenticate(realm, None, "", None)),
        },
        Reason::InvalidToken => {
            let description = describe();
            HttpDenial {
                status: 401,
                error: "invalid_token",
                challenge: Some(www_authenticate(
                    realm,
                    Some("invalid_token"),
                    &description,
                    None,
                )),
                description,
            }
        }
        Reason::InsufficientScope => {
            let scope = required_scopes.join(" ");
            HttpDenial {
                status: 403,
                error: "insufficient_scope",
                description: format!("the token lacks a required scope (`{scope}` would do)"),
                challenge: Some(www_authenticate(
                    realm,
                    Some("insufficient_scope"),
                    "the token lacks a required scope",
                    Some(&scope),
                )),
            }
        }
        Reason::InvalidRequest => HttpDenial {
            status: 400,
            error: "invalid_request",
            description: describe(),
            challenge: None,
        },
        other => HttpDenial {
            status: 403,
            error: "access_denied",
            description: format!("denied by policy ({})", other.as_str_name()),
            challenge: None,
        },
    }
}

/// The RFC 6750 §3 `WWW-Authenticate` value: no `error` attribute when no token was sent
/// at all; the description is reduced to printable ASCII without quotes.
pub fn www_authenticate(
    realm: &str,
    error: Option<&str>,
    description: &str,
    scope: Option<&str>,
) -> String {
    let mut value = format!("Bearer realm=\"{realm}\"");
    if let Some(e) = error {
        value.push_str(&format!(", error=\"{e}\""));
        if !description.is_empty() {
            let d: String = description
                .chars()
                .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
                .take(200)
                .collect();
            value.push_str(&format!(", error_description=\"{d}\""));
        }
    }
    if let Some(s) = scope {
        value.push_str(&format!(", scope=\"{s}\""));
    }
    value
}

/// An RFC 6750 §3 challenge response.
fn challenge(
    config: &GatewayConfig,
    status: StatusCode,
    error: Option<&str>,
    description: &str,
    scope: Option<&str>,
) -> Response {
    let value = www_authenticate(&config.realm, error, description, scope);
    let mut response = (
        status,
        axum::Json(
            json!({ "error": error.unwrap_or("unauthorized"), "error_description": description }),
        ),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": status.canonical_reason().unwrap_or("error"), "error_description": message }))).into_response()
}

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1, including those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(h);
    }
}

/// Appends the client to `X-Forwarded-For` and `Forwarded` (RFC 7239).
fn append_forwarded(headers: &mut HeaderMap, peer: SocketAddr, tls: bool) {
    let ip = peer.ip().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    let node = if peer.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip
    };
    let proto = if tls { "https" } else { "http" };
    let mut element = format!("for={node};proto={proto}");
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        element.push_str(&format!(";host=\"{host}\""));
    }
    let forwarded = match headers.get("forwarded").and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {element}"),
        None => element,
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert("forwarded", v);
    }
}
