//! Envoy's `envoy.service.auth.v3.Authorization/Check` on the same gRPC port, so Envoy and
//! Istio call Arbiter with no Arbiter code: the HTTP request Envoy describes (method, path,
//! headers with the bearer token, host), the source address (the context's `ip`) and the
//! route's `context_extensions` (merged into the context) are one `Authorize`. Allowed:
//! OK with the decision id and principal as upstream headers. Denied: 401/403 with the
//! RFC 6750 `WWW-Authenticate` challenge and a small JSON body.

use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse, HttpStatusCode};
use envoy_types::ext_authz::v3::{
    CheckRequestExt, CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use serde_json::{json, Map, Value};
use tonic::{Request, Response, Status};

use crate::decision::{AuthzRequest, Pdp};
use crate::gateway::{http_denial, DECISION_HEADER, PRINCIPAL_HEADER};

/// The ext_authz service over the decision point.
pub struct ExtAuthzService {
    pdp: Arc<Pdp>,
}

impl ExtAuthzService {
    /// A service deciding with `pdp`.
    pub fn new(pdp: Arc<Pdp>) -> Self {
        Self { pdp }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let request = request.into_inner();
        let http = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .ok_or_else(|| Status::invalid_argument("attributes.request.http is required"))?;
        let headers = request.get_client_headers();
        let header = |name: &str| headers.and_then(|h| h.get(name)).map(String::as_str);
        let token = header("authorization")
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, t)| t.trim());
        let mut context = Map::new();
        if let Some(ip) = request.get_client_address() {
            context.insert("ip".into(), json!(ip));
        }
        if !http.host.is_empty() {
            context.insert("host".into(), json!(http.host));
        }
        if let Some(extensions) = request.attributes.as_ref().map(|a| &a.context_extensions) {
            for (k, v) in extensions {
                let value = v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(v.as_str()));
                context.insert(k.clone(), value);
            }
        }
        let thumbprint = request
            .attributes
            .as_ref()
            .and_then(|a| a.source.as_ref())
            .and_then(|s| certificate_thumbprint(&s.certificate))
            .unwrap_or_default();
        let answer = self
            .pdp
            .authorize(AuthzRequest {
                token,
                method: &http.method,
                path: &http.path,
                context: &context,
                explain: false,
                client_cert_sha256: &thumbprint,
            })
            .await;
        let v = &answer.verdict;
        if v.allowed {
            let mut ok = OkHttpResponseBuilder::new();
            ok.add_header(DECISION_HEADER, answer.decision_id.as_str(), None, false);
            if let Some(p) = &answer.principal {
                ok.add_header(PRINCIPAL_HEADER, p.entity.as_str(), None, false);
            }
            let mut response = CheckResponse::with_status(Status::ok("allowed"));
            response.set_http_response(ok);
            return Ok(Response::new(response));
        }
        let answer_http = http_denial("arbiter", v.reason.into(), &v.errors, &v.required_scopes);
        let (status, http_status) = match answer_http.status {
            401 => (
                Status::unauthenticated(answer_http.error),
                HttpStatusCode::Unauthorized,
            ),
            400 => (
                Status::permission_denied(answer_http.error),
                HttpStatusCode::BadRequest,
            ),
            _ => (
                Status::permission_denied(answer_http.error),
                HttpStatusCode::Forbidden,
            ),
        };
        let challenge = answer_http.challenge;
        let mut denied = DeniedHttpResponseBuilder::new();
        denied.set_http_status(http_status);
        denied.add_header("content-type", "application/json", None, false);
        denied.add_header(DECISION_HEADER, answer.decision_id.as_str(), None, false);
        if let Some(c) = challenge {
            denied.add_header("www-authenticate", c, None, false);
        }
        denied.set_body(
            json!({
                "error": v.reason.as_str(),
                "decision_id": answer.decision_id,
                "required_scopes": v.required_scopes,
            })
            .to_string(),
        );
        let mut response = CheckResponse::with_status(status);
        response.set_http_response(denied);
        Ok(Response::new(response))
    }
}

/// RFC 8705 thumbprint (base64url SHA-256 of the DER) of the client certificate Envoy
/// reports in `source.certificate` (URL-encoded PEM, set when Envoy terminated mTLS).
pub fn certificate_thumbprint(url_encoded_pem: &str) -> Option<String> {
    use rustls_pki_types::pem::PemObject;
    if url_encoded_pem.is_empty() {
        return None;
    }
    let pem = percent_encoding::percent_decode_str(url_encoded_pem)
        .decode_utf8()
        .ok()?;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    Some(crate::tls::thumbprint(&der))
}
