//! Software statements: a developer requests one, a reviewer approves (possibly with fewer
//! scopes and a validity) or denies it with a reason, Arbiter issues the signed statement,
//! and a reviewer can revoke it, which disables every client registered with it. Every step
//! is stored with an audit event in the same transaction. Who may do what is decided by
//! ordinary Cedar policies on the workflow's HTTP routes (see `http`).

pub mod api;
pub mod http;
pub mod statement;

use std::sync::Arc;

use crate::config::SsaConfig;
use crate::oauth::keys::KeyRing;
use crate::store::{AuditEvent, AuditFilter, SsaRequestRecord, StatementRecord, Store, StoreError};
use crate::token::Verifier;

/// Why a workflow step failed.
#[derive(Debug, thiserror::Error)]
pub enum SsaError {
    /// The input is invalid.
    #[error("{0}")]
    Invalid(String),
    /// No such request or statement (or not the caller's).
    #[error("{0} not found")]
    NotFound(String),
    /// The request was reviewed already, or the statement revoked already.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The statement could not be signed.
    #[error("the statement could not be signed")]
    Signing,
    /// The reviewer may not make this decision (separation of duties).
    #[error("{0}")]
    Forbidden(String),
}

/// The request `reviewer` may decide on: pending, and not their own (separation of
/// duties: whoever asked for a statement never decides on it).
fn reviewable(request: SsaRequestRecord, reviewer: &str) -> Result<SsaRequestRecord, SsaError> {
    if request.requester == reviewer {
        return Err(SsaError::Forbidden(format!(
            "`{reviewer}` requested `{}` and may not review it (separation of duties)",
            request.id
        )));
    }
    if request.status != "pending" {
        return Err(SsaError::Conflict(format!(
            "request `{}` is {}",
            request.id, request.status
        )));
    }
    Ok(request)
}

/// What a developer asks for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// Software name.
    pub software_name: String,
    /// Software version.
    #[serde(default)]
    pub software_version: Option<String>,
    /// What it does.
    pub description: String,
    /// How to reach its developers.
    pub contact: String,
    /// Organisation.
    #[serde(default)]
    pub org: Option<String>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Grant types asked for (default `client_credentials`).
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Why it needs them.
    pub justification: String,
    /// Its JWKS, for `private_key_jwt`.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Or its JWKS URI.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// A reviewer's approval.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The scopes approved: a subset of those asked for (all of them when absent).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// How long the statement is valid, in seconds (the configured default when absent).
    #[serde(default)]
    pub validity_seconds: Option<u64>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The workflow, over the store and the statement key.
pub struct SsaService {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    issuer: String,
    config: SsaConfig,
    verifier: Arc<Verifier>,
    statements: statement::StatementVerifier,
}

impl SsaService {
    /// A workflow issuing statements as `issuer` with `keys`; `verifier` learns at once of
    /// clients disabled by a revocation.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        issuer: String,
        config: SsaConfig,
        verifier: Arc<Verifier>,
        leeway: u64,
    ) -> Self {
        let statements = statement::StatementVerifier::new(
            issuer.clone(),
            keys.clone(),
            &config.trusted_issuers,
            store.clone(),
            leeway,
        );
        Self {
            store,
            keys,
            issuer,
            config,
            verifier,
            statements,
        }
    }

    /// Verifies statements presented at registration.
    pub fn statements(&self) -> &statement::StatementVerifier {
        &self.statements
    }

    /// The statement signing keys (published at `/ssa/jwks.json`).
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// Stores a new request from `requester` (a Cedar principal).
    pub async fn submit(
        &self,
        requester: &str,
        new: NewRequest,
    ) -> Result<SsaRequestRecord, SsaError> {
        let required = [
            ("software_name", &new.software_name),
            ("description", &new.description),
            ("contact", &new.contact),
            ("justification", &new.justification),
        ];
        for (name, value) in required {
            if value.trim().is_empty() {
                return Err(SsaError::Invalid(format!("`{name}` is required")));
            }
        }
        let scopes = check_scopes(&new.scopes)?;
        if scopes.is_empty() {
            return Err(SsaError::Invalid(
                "`scopes` must name at least one scope".into(),
            ));
        }
        let grant_types = if new.grant_types.is_empty() {
            vec!["client_credentials".to_owned()]
        } else {
            new.grant_types.clone()
        };
        if new.jwks.is_some() && new.jwks_uri.is_some() {
            return Err(SsaError::Invalid(
                "give `jwks` or `jwks_uri`, not both".into(),
            ));
        }
        if let Some(jwks) = &new.jwks {
            let (keys, skipped) =
                crate::token::jwks::KeySet::from_jwks(jwks.to_string().as_bytes())
                    .map_err(|e| SsaError::Invalid(format!("`jwks`: {e}")))?;
            if keys.is_empty() {
                return Err(SsaError::Invalid(format!(
                    "`jwks` has no usable signing key ({})",
                    skipped.join("; ")
                )));
            }
        }
        if let Some(uri) = &new.jwks_uri {
            crate::oauth::clients::check_client_url(uri).map_err(SsaError::Invalid)?;
        }
        let now = now();
        let record = SsaRequestRecord {
            id: uuid::Uuid::now_v7().to_string(),
            requester: requester.to_owned(),
            status: "pending".into(),
            software_name: new.software_name.trim().to_owned(),
            software_version: new.software_version,
            description: new.description,
            contact: new.contact,
            org: new.org,
            requested_scopes: scopes,
            grant_types,
            justification: new.justification,
            jwks: new.jwks,
            jwks_uri: new.jwks_uri,
            reviewer: None,
            reason: None,
            approved_scopes: Vec::new(),
            statement_jti: None,
            created_at: now,
            decided_at: None,
        };
        let mut audit = AuditEvent::new(requester, "ssa.request");
        audit.request_id = Some(record.id.clone());
        audit.detail = serde_json::json!({ "requested_scopes": record.requested_scopes });
        self.store.create_ssa_request(&record, &audit).await?;
        tracing::info!(request_id = %record.id, requester = %requester, "software statement requested");
        Ok(record)
    }

    /// One request; `owner` restricts it to the requester's own.
    pub async fn request(
        &self,
        id: &str,
        owner: Option<&str>,
    ) -> Result<SsaRequestRecord, SsaError> {
        self.store
            .ssa_request(id)
            .await?
            .filter(|r| owner.is_none_or(|o| r.requester == o))
            .ok_or_else(|| SsaError::NotFound(format!("request `{id}`")))
    }

    /// Requests, newest first.
    pub async fn requests(
        &self,
        status: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<SsaRequestRecord>, SsaError> {
        Ok(self.store.ssa_requests(status, owner).await?)
    }

    /// The issued statement of a request, if any.
    pub async fn statement(&self, jti: &str) -> Result<Option<StatementRecord>, SsaError> {
        Ok(self.store.statement(jti).await?)
    }

    /// The scopes an approval grants: those it names (only ever a narrowing of the
    /// request's) or, when it names none, all requested; never none.
    pub fn approved_scopes(
        request: &SsaRequestRecord,
        approval: &Approval,
    ) -> Result<Vec<String>, SsaError> {
        let approved = match &approval.scopes {
            Some(scopes) => {
                let scopes = check_scopes(scopes)?;
                if let Some(extra) = scopes
                    .iter()
                    .find(|s| !request.requested_scopes.contains(s))
                {
                    return Err(SsaError::Invalid(format!(
                        "`{extra}` was not requested; a reviewer may only narrow the scopes"
                    )));
                }
                scopes
            }
            None => request.requested_scopes.clone(),
        };
        if approved.is_empty() {
            return Err(SsaError::Invalid(
                "approve at least one scope, or deny the request".into(),
            ));
        }
        Ok(approved)
    }

    /// Approves a pending request and issues its statement.
    pub async fn approve(
        &self,
        reviewer: &str,
        id: &str,
        approval: Approval,
    ) -> Result<(SsaRequestRecord, StatementRecord), SsaError> {
        let mut request = reviewable(self.request(id, None).await?, reviewer)?;
        let approved = Self::approved_scopes(&request, &approval)?;
        let validity = approval
            .validity_seconds
            .unwrap_or(self.config.default_validity_seconds);
        if validity == 0 || validity > self.config.max_validity_seconds {
            return Err(SsaError::Invalid(format!(
                "validity must be between 1 and {} seconds",
                self.config.max_validity_seconds
            )));
        }
        let now = now();
        let jti = uuid::Uuid::now_v7().to_string();
        let software_id = uuid::Uuid::now_v7().to_string();
        let expires_at = now.saturating_add(i64::try_from(validity).unwrap_or(i64::MAX));
        request.status = "approved".into();
        request.reviewer = Some(reviewer.to_owned());
        request.reason = approval.reason.clone();
        request.approved_scopes = approved;
        request.statement_jti = Some(jti.clone());
        request.decided_at = Some(now);
        let claims = statement::statement_claims(
            &self.issuer,
            &request,
            &software_id,
            &jti,
            now,
            expires_at,
        );
        let jwt = self
            .keys
            .current()
            .active
            .sign_jwt("JWT", &claims)
            .map_err(|e| {
                tracing::error!(error = %e, "statement signing failed");
                SsaError::Signing
            })?;
        let statement = StatementRecord {
            jti: jti.clone(),
            issuer: self.issuer.clone(),
            request_id: request.id.clone(),
            software_id,
            allowed_scopes: request.approved_scopes.clone(),
            issued_at: now,
            expires_at,
            jwt,
            revoked_at: None,
        };
        let mut audit = AuditEvent::new(reviewer, "ssa.approve");
        audit.request_id = Some(request.id.clone());
        audit.statement_jti = Some(jti.clone());
        audit.reason = approval.reason;
        audit.detail = serde_json::json!({
            "requested_scopes": request.requested_scopes,
            "approved_scopes": request.approved_scopes,
            "expires_at": expires_at,
        });
        if !self
            .store
            .decide_ssa_request(&request, Some(&statement), &audit)
            .await?
        {
            return Err(SsaError::Conflict(format!(
                "request `{id}` was reviewed meanwhile"
            )));
        }
        tracing::info!(request_id = %id, jti = %jti, reviewer = %reviewer, "software statement issued");
        Ok((request, statement))
    }

    /// Denies a pending request with a reason the requester will see.
    pub async fn deny(
        &self,
        reviewer: &str,
        id: &str,
        reason: &str,
    ) -> Result<SsaRequestRecord, SsaError> {
        if reason.trim().is_empty() {
            return Err(SsaError::Invalid("a denial needs a `reason`".into()));
        }
        let mut request = reviewable(self.request(id, None).await?, reviewer)?;
        request.status = "denied".into();
        request.reviewer = Some(reviewer.to_owned());
        request.reason = Some(reason.to_owned());
        request.decided_at = Some(now());
        let mut audit = AuditEvent::new(reviewer, "ssa.deny");
        audit.request_id = Some(request.id.clone());
        audit.reason = Some(reason.to_owned());
        if !self
            .store
            .decide_ssa_request(&request, None, &audit)
            .await?
        {
            return Err(SsaError::Conflict(format!(
                "request `{id}` was reviewed meanwhile"
            )));
        }
        tracing::info!(request_id = %id, reviewer = %reviewer, "software statement request denied");
        Ok(request)
    }

    /// Revokes a statement Arbiter issued: every client registered with it is disabled and
    /// its tokens are refused by the PDP from now on. Returns the disabled client ids.
    pub async fn revoke(
        &self,
        reviewer: &str,
        jti: &str,
        reason: &str,
        token_issuer: &str,
    ) -> Result<Vec<String>, SsaError> {
        if reason.trim().is_empty() {
            return Err(SsaError::Invalid("a revocation needs a `reason`".into()));
        }
        let statement = self
            .store
            .statement(jti)
            .await?
            .ok_or_else(|| SsaError::NotFound(format!("statement `{jti}`")))?;
        let mut audit = AuditEvent::new(reviewer, "ssa.revoke");
        audit.request_id = Some(statement.request_id.clone());
        audit.statement_jti = Some(jti.to_owned());
        audit.reason = Some(reason.to_owned());
        let clients = self
            .store
            .revoke_statement(&self.issuer, jti, &audit)
            .await?
            .ok_or_else(|| SsaError::Conflict(format!("statement `{jti}` is revoked already")))?;
        self.verifier.disable_clients(token_issuer, &clients);
        tracing::info!(jti = %jti, reviewer = %reviewer, clients = ?clients, "software statement revoked");
        Ok(clients)
    }

    /// The audit trail matching `filter`.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, SsaError> {
        Ok(self.store.audit_events(filter).await?)
    }
}

fn check_scopes(scopes: &[String]) -> Result<Vec<String>, SsaError> {
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if s.is_empty()
            || s.chars()
                .any(|c| !matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
        {
            return Err(SsaError::Invalid(format!("`{s}` is not a valid scope")));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

fn now() -> i64 {
    crate::clock::now_i64()
}
