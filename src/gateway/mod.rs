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
use tracing::Instrument as _;

use crate::client::{ArbiterClient, Check, ClientConfig, Decision};
use crate::config::{HttpLimits, TlsConfig};
use crate::http::{bearer_token as read_bearer, remove_arbiter_headers, ApiError};
use crate::tls::{Listener, PeerCertificate, ReloadingTls};
mod settings;

pub use crate::wire::{
    http_denial, shaped_denial, www_authenticate, HttpDenial, DECISION_HEADER, PRINCIPAL_HEADER,
};
pub use settings::GatewaySettings;

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
    // A request may take the client's time to send its body, then the upstream's to answer.
    let mut limits = HttpLimits::default();
    limits.request_timeout_seconds += state.config.upstream_timeout.as_secs();
    let app = axum::Router::new().fallback(handle).with_state(state);
    crate::http::serve(listener, app, tls, limits, shutdown).await?;
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
    remove_arbiter_headers(&mut parts.headers);
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
    if let Err(name) = apply_output_headers(&mut parts.headers, &decision.outputs) {
        tracing::warn!(header = %name, "the PDP's output header is not a valid header; denying");
        return plain(
            StatusCode::BAD_GATEWAY,
            "the policy decision point answered an invalid header for the upstream",
        );
    }
    let mut target = gw.upstream.clone().into_parts();
    let base = gw.upstream.path().trim_end_matches('/');
    // A stripped credential leaves no copy in the query string either.
    let forwarded_target = if gw.config.pass_authorization {
        std::borrow::Cow::Borrowed(path_and_query.as_str())
    } else {
        without_query_token(&path_and_query)
    };
    target.path_and_query = format!("{base}{forwarded_target}").parse().ok();
    let Ok(uri) = Uri::from_parts(target) else {
        return plain(StatusCode::BAD_REQUEST, "invalid request target");
    };
    parts.uri = uri;
    let body = Body::new(http_body_util::Limited::new(body, gw.config.max_body_bytes));
    let forwarding = tracing::debug_span!(
        "upstream",
        otel.name = %format_args!("{} upstream", parts.method),
        otel.kind = "client",
        http.response.status_code = tracing::field::Empty,
    );
    // The upstream continues the trace from this span (a caller's `traceparent` is
    // replaced); with traces off the caller's passes through untouched.
    crate::telemetry::propagation::inject_headers(&forwarding, &mut parts.headers);
    let upstream_request = Request::from_parts(parts, body);
    let answered = tokio::time::timeout(
        gw.config.upstream_timeout,
        gw.http.request(upstream_request),
    )
    .instrument(forwarding.clone())
    .await;
    if let Ok(Ok(response)) = &answered {
        forwarding.record("http.response.status_code", response.status().as_u16());
    }
    match answered {
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

/// A request target without its `access_token` query parameters (RFC 6750 §2.3), every other
/// parameter kept byte for byte; the `?` goes when nothing is left.
fn without_query_token(path_and_query: &str) -> std::borrow::Cow<'_, str> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return std::borrow::Cow::Borrowed(path_and_query);
    };
    let is_token = |pair: &&str| {
        let key = pair.split('=').next().unwrap_or_default();
        form_urlencoded::parse(key.as_bytes()).any(|(k, _)| k == "access_token")
    };
    if !query.split('&').any(|p| is_token(&p)) {
        return std::borrow::Cow::Borrowed(path_and_query);
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !is_token(p))
        .collect();
    std::borrow::Cow::Owned(if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    })
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
    let in_header = match read_bearer(headers) {
        Ok(token) => token.map(str::to_owned),
        Err(e) => {
            return Err(Box::new(challenge(
                config,
                StatusCode::BAD_REQUEST,
                Some(e.code()),
                &e.to_string(),
                None,
            )))
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
    let shaped = u16::try_from(d.outputs.deny_status)
        .ok()
        .and_then(|status| shaped_denial(status, &d.outputs.deny_message));
    if let Some(answer) = shaped {
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
        let mut response = plain(status, &answer.description);
        if let Ok(v) = HeaderValue::from_str(&d.decision_id) {
            response.headers_mut().insert(DECISION_HEADER, v);
        }
        return response;
    }
    let answer = http_denial(&config.realm, d.reason, &d.errors, &d.required_scopes);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = match answer.challenge {
        Some(value) => ApiError::new(status, answer.error, answer.description)
            .with_challenge(value)
            .into_response(),
        None => plain(status, &answer.description),
    };
    if let Ok(v) = HeaderValue::from_str(&d.decision_id) {
        response.headers_mut().insert(DECISION_HEADER, v);
    }
    response
}

/// An RFC 6750 §3 challenge response.
fn challenge(
    config: &GatewayConfig,
    status: StatusCode,
    error: Option<&'static str>,
    description: &str,
    scope: Option<&str>,
) -> Response {
    let value = www_authenticate(&config.realm, error, description, scope);
    ApiError::new(status, error.unwrap_or("unauthorized"), description)
        .with_challenge(value)
        .into_response()
}

fn plain(status: StatusCode, message: &str) -> Response {
    ApiError::new(
        status,
        status.canonical_reason().unwrap_or("error"),
        message,
    )
    .into_response()
}

/// The headers the determining policies set for the upstream, replacing every copy the client
/// sent, and without the client's copies of those the endpoint's policies could have set.
/// A name or value that is not valid HTTP (the PDP checks both; another PDP may not) is an
/// error: the request never goes up without a header its policies promised.
fn apply_output_headers(
    headers: &mut HeaderMap,
    outputs: &crate::wire::proto::DecisionOutputs,
) -> Result<(), String> {
    for name in &outputs.remove_headers {
        headers.remove(name.as_str());
    }
    for (name, value) in &outputs.headers {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(name.clone());
        };
        headers.insert(n, v);
    }
    Ok(())
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
    let xff = match crate::http::forwarded_chain(headers) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_token_is_cut_and_the_rest_kept() {
        assert_eq!(
            without_query_token("/item/7?access_token=eyJ.x.y"),
            "/item/7"
        );
        assert_eq!(
            without_query_token("/item/7?a=1&access_token=t&b=%20&acc%65ss_token=u"),
            "/item/7?a=1&b=%20"
        );
        assert_eq!(without_query_token("/item/7?x=1"), "/item/7?x=1");
        assert_eq!(without_query_token("/item/7"), "/item/7");
    }
}
