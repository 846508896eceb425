//! Envoy's `envoy.service.auth.v3.Authorization/Check` on the same gRPC port, so Envoy and
//! Istio call Arbiter with no Arbiter code: the HTTP request Envoy describes (method, path,
//! headers with the bearer token, host), the source address (the context's `ip`) and the
//! route's `context_extensions` (merged into the context) are one `Authorize`. Allowed:
//! OK with the decision id, the principal and the decision's output headers for the
//! upstream (each replacing the client's copies), and every other `x-arbiter-*` header and
//! output header the client sent removed. Denied: 401/403 with the RFC 6750
//! `WWW-Authenticate` challenge and a small JSON body, or the status and message the
//! determining forbid's `@deny_status`/`@deny_message` give. Output metadata goes to
//! `dynamic_metadata` either way.

use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, HeaderAppendAction, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckRequestExt, CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value as ProtoValue};
use serde_json::{json, Map, Value};
use tonic::{Request, Response, Status};

use crate::decision::{AuthzRequest, Pdp};
use crate::http::bearer_value;
use crate::wire::{
    http_denial, is_arbiter_header, shaped_denial, DECISION_HEADER, PRINCIPAL_HEADER,
};

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
        let (token, malformed) = match header("authorization").map(bearer_value) {
            None => ("", None),
            Some(Ok(token)) => (token, None),
            Some(Err(e)) => ("", Some(e)),
        };
        let mut context = Map::new();
        if let Some(ip) = request.get_client_address() {
            // Envoy on a dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`.
            let ip = ip
                .parse::<std::net::IpAddr>()
                .map_or_else(|_| ip.clone(), |a| a.to_canonical().to_string());
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
        let req = AuthzRequest {
            subject: None,
            resource: None,
            token,
            method: &http.method,
            path: &http.path,
            context: &context,
            explain: false,
            client_cert_sha256: &thumbprint,
        };
        let answer = match malformed {
            // The header was there but is no bearer token: never decided as anonymous.
            Some(e) => self.pdp.refuse(req, e.to_string()),
            None => self.pdp.authorize(req).await,
        };
        let v = &answer.verdict;
        let outputs = &v.outputs;
        let metadata = (!outputs.metadata.is_empty()).then(|| Struct {
            fields: outputs
                .metadata
                .iter()
                .map(|(k, v)| {
                    let value = ProtoValue {
                        kind: Some(Kind::StringValue(v.clone())),
                    };
                    (k.clone(), value)
                })
                .collect(),
        });
        // Every header Arbiter sets replaces the client's copies rather than joining them.
        let replace = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
        if v.allowed {
            let mut ok = OkHttpResponseBuilder::new();
            ok.add_header(DECISION_HEADER, answer.decision_id.as_str(), replace, false);
            if let Some(p) = &answer.principal {
                ok.add_header(PRINCIPAL_HEADER, p.entity.as_str(), replace, false);
            }
            for (name, value) in &outputs.headers {
                ok.add_header(name.as_str(), value.as_str(), replace, true);
            }
            for name in &outputs.remove_headers {
                ok.remove_header(name.as_str());
            }
            // A client's own `x-arbiter-*` headers never reach the upstream.
            for name in headers.into_iter().flat_map(|h| h.keys()) {
                let ours = name.eq_ignore_ascii_case(DECISION_HEADER)
                    || (answer.principal.is_some() && name.eq_ignore_ascii_case(PRINCIPAL_HEADER));
                if is_arbiter_header(name) && !ours {
                    ok.remove_header(name.as_str());
                }
            }
            let mut response = CheckResponse::with_status(Status::ok("allowed"));
            response.set_http_response(ok);
            response.set_dynamic_metadata(metadata);
            return Ok(Response::new(response));
        }
        let shaped = outputs.deny_status.and_then(|status| {
            shaped_denial(status, outputs.deny_message.as_deref().unwrap_or(""))
        });
        if let Some(answer_http) = shaped {
            // The determining forbid chose how the deny looks: its status and message.
            let mut denied = DeniedHttpResponseBuilder::new();
            denied.set_http_status(
                HttpStatusCode::try_from(i32::from(answer_http.status))
                    .unwrap_or(HttpStatusCode::Forbidden),
            );
            denied.add_header("content-type", "text/plain; charset=utf-8", None, false);
            denied.add_header(DECISION_HEADER, answer.decision_id.as_str(), None, false);
            denied.set_body(answer_http.description);
            let mut response = CheckResponse::with_status(Status::permission_denied("denied"));
            response.set_http_response(denied);
            response.set_dynamic_metadata(metadata);
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
        response.set_dynamic_metadata(metadata);
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
