//! `arbiter.v1.Authorizer`: protobuf in, [`Pdp`] decision, protobuf out. A deny is a normal
//! response; gRPC errors are kept for misuse of the transport (an oversized batch).

use std::sync::Arc;

use serde_json::Map;
use tonic::{Request, Response, Status};

use super::proto::{
    self, policy_explanation, AuthorizeBatchRequest, AuthorizeBatchResponse, AuthorizeRequest,
    AuthorizeResponse,
};
use crate::decision::{Answer, AuthzRequest, Outcome, Pdp, Reason, Verdict};
use crate::wire::struct_to_json;

/// Largest batch accepted.
pub(crate) const MAX_BATCH: usize = 100;

/// Serves `Authorize` and `AuthorizeBatch`.
pub struct AuthorizerService {
    pdp: Arc<Pdp>,
}

impl AuthorizerService {
    /// A service over a decision point.
    pub fn new(pdp: Arc<Pdp>) -> Self {
        Self { pdp }
    }

    async fn one(&self, req: &AuthorizeRequest) -> AuthorizeResponse {
        let context = match req.context.as_ref().map(struct_to_json) {
            Some(Ok(map)) => map,
            Some(Err(m)) => {
                let snapshot = self.pdp.policies().load();
                return to_proto(Answer {
                    verdict: Verdict::deny(Reason::InvalidRequest, m),
                    policy_version: snapshot.version.clone(),
                    policy_revision: snapshot.revision.clone(),
                    decision_id: uuid::Uuid::now_v7().to_string(),
                    principal: None,
                    cache_ttl_seconds: 0,
                });
            }
            None => Map::new(),
        };
        let answer = self
            .pdp
            .authorize(AuthzRequest {
                subject: None,
                resource: None,
                token: &req.token,
                method: &req.method,
                path: &req.path,
                context: &context,
                explain: req.explain,
                client_cert_sha256: &req.client_cert_sha256,
            })
            .await;
        to_proto(answer)
    }
}

#[tonic::async_trait]
impl proto::authorizer_server::Authorizer for AuthorizerService {
    async fn authorize(
        &self,
        request: Request<AuthorizeRequest>,
    ) -> Result<Response<AuthorizeResponse>, Status> {
        Ok(Response::new(self.one(request.get_ref()).await))
    }

    async fn authorize_batch(
        &self,
        request: Request<AuthorizeBatchRequest>,
    ) -> Result<Response<AuthorizeBatchResponse>, Status> {
        let batch = request.into_inner();
        if batch.requests.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "a batch holds at most {MAX_BATCH} requests, got {}",
                batch.requests.len()
            )));
        }
        let mut responses = Vec::with_capacity(batch.requests.len());
        for req in &batch.requests {
            responses.push(self.one(req).await);
        }
        Ok(Response::new(AuthorizeBatchResponse { responses }))
    }
}

fn to_proto(a: Answer) -> AuthorizeResponse {
    let v = a.verdict;
    AuthorizeResponse {
        decision: if v.allowed {
            proto::Decision::Allow
        } else {
            proto::Decision::Deny
        } as i32,
        reason: reason(v.reason) as i32,
        policy_ids: v.policy_ids,
        errors: v.errors,
        required_scopes: v.required_scopes,
        policy_version: a.policy_version,
        policy_revision: a.policy_revision,
        decision_id: a.decision_id,
        principal: a.principal.map(|p| proto::Principal {
            entity: p.entity,
            client_id: p.client_id,
            sub: p.sub,
            scopes: p.scopes,
            issuer: p.issuer,
            jti: p.jti,
        }),
        cache_ttl_seconds: a.cache_ttl_seconds,
        explanation: v
            .explanation
            .into_iter()
            .map(|e| proto::PolicyExplanation {
                policy_id: e.policy_id,
                effect: match e.effect {
                    cedar_policy::Effect::Permit => policy_explanation::Effect::Permit,
                    cedar_policy::Effect::Forbid => policy_explanation::Effect::Forbid,
                } as i32,
                outcome: match e.outcome {
                    Outcome::Satisfied => policy_explanation::Outcome::Satisfied,
                    Outcome::NotSatisfied => policy_explanation::Outcome::NotSatisfied,
                    Outcome::Error => policy_explanation::Outcome::Error,
                } as i32,
                file: e.file,
                line: e.line,
                scopes: e.scopes.unwrap_or_default(),
                missing_scopes: e.missing_scopes,
                scope_matched: e.scope_matched,
                failed_condition: e.failed_condition.unwrap_or_default(),
                error: e.error.unwrap_or_default(),
                outputs: e.outputs.into_iter().collect(),
            })
            .collect(),
        outputs: (!v.outputs.is_empty()).then(|| {
            let o = v.outputs;
            proto::DecisionOutputs {
                headers: o.headers,
                remove_headers: o.remove_headers,
                metadata: o.metadata,
                deny_status: o.deny_status.map_or(0, u32::from),
                deny_message: o.deny_message.unwrap_or_default(),
            }
        }),
    }
}

impl From<Reason> for proto::Reason {
    fn from(r: Reason) -> Self {
        reason(r)
    }
}

fn reason(r: Reason) -> proto::Reason {
    match r {
        Reason::Allowed => proto::Reason::Allowed,
        Reason::InvalidToken => proto::Reason::InvalidToken,
        Reason::NoRoute => proto::Reason::NoRoute,
        Reason::InsufficientScope => proto::Reason::InsufficientScope,
        Reason::PolicyDeny => proto::Reason::PolicyDeny,
        Reason::InvalidRequest => proto::Reason::InvalidRequest,
        Reason::Error => proto::Reason::Error,
        Reason::MissingToken => proto::Reason::MissingToken,
    }
}
