//! Software statements as JWTs: issuing Arbiter's own (signed with the dedicated statement
//! key) and verifying any presented at registration, Arbiter's or a trusted external
//! issuer's (e.g. a regulator's, by its JWKS). The algorithm comes from the key, never from
//! the statement; `none` and HMAC never verify.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{decode, decode_header, Validation};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{IssuerConfig, StatementIssuerConfig};
use crate::oauth::keys::KeyRing;
use crate::store::{SsaRequestRecord, Store};
use crate::token::issuer::Issuer;
use crate::token::jwks::KeySet;

/// Why a presented statement is refused, as RFC 7591 §3.2.2 codes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// `invalid_software_statement`: malformed, badly signed, expired, or used before.
    #[error("invalid_software_statement: {0}")]
    Invalid(String),
    /// `unapproved_software_statement`: well formed but not approved here (untrusted
    /// issuer, revoked).
    #[error("unapproved_software_statement: {0}")]
    Unapproved(String),
    /// The store failed while checking it.
    #[error("the software statement could not be checked")]
    Store,
}

impl StatementError {
    /// The RFC 7591 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_software_statement",
            Self::Unapproved(_) => "unapproved_software_statement",
            Self::Store => "server_error",
        }
    }
}

/// What a verified statement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStatement {
    /// `iss`.
    pub issuer: String,
    /// `jti`.
    pub jti: String,
    /// `exp`.
    pub exp: i64,
    /// `software_id`.
    pub software_id: String,
    /// `authorization.allowed_scopes`: the most the software may ever be granted.
    pub allowed_scopes: Vec<String>,
    /// Every claim; those that are client metadata override the registration request's.
    pub claims: Map<String, Value>,
}

/// The claims of a statement for an approved request.
pub fn statement_claims(
    issuer: &str,
    request: &SsaRequestRecord,
    software_id: &str,
    jti: &str,
    issued_at: i64,
    expires_at: i64,
) -> Value {
    let mut claims = json!({
        "iss": issuer,
        "iat": issued_at,
        "exp": expires_at,
        "jti": jti,
        "software_id": software_id,
        "software_name": request.software_name,
        "grant_types": request.grant_types,
        "contacts": [request.contact],
        "authorization": { "allowed_scopes": request.approved_scopes },
    });
    if let Value::Object(map) = &mut claims {
        if let Some(v) = &request.software_version {
            map.insert("software_version".into(), json!(v));
        }
        if let Some(v) = &request.org {
            map.insert("org_name".into(), json!(v));
        }
        if let Some(v) = &request.jwks {
            map.insert("jwks".into(), v.clone());
        }
        if let Some(v) = &request.jwks_uri {
            map.insert("jwks_uri".into(), json!(v));
        }
    }
    claims
}

/// Verifies presented statements against Arbiter's statement keys and the trusted issuers.
pub struct StatementVerifier {
    own_issuer: String,
    own_keys: Arc<KeyRing>,
    external: HashMap<String, Arc<Issuer>>,
    store: Arc<dyn Store>,
    leeway: u64,
}

impl StatementVerifier {
    /// A verifier trusting Arbiter's own statements and those of `trusted`.
    pub fn new(
        own_issuer: String,
        own_keys: Arc<KeyRing>,
        trusted: &[StatementIssuerConfig],
        store: Arc<dyn Store>,
        leeway: u64,
    ) -> Self {
        let external = trusted
            .iter()
            .map(|t| {
                let config = IssuerConfig {
                    issuer: t.issuer.clone(),
                    audiences: Vec::new(),
                    jwks_url: t.jwks_url.clone(),
                    jwks_file: t.jwks_file.clone(),
                    hmac_secret: None,
                    required_typ: None,
                    jwks_refresh_cooldown_seconds: 30,
                    jwks_min_refresh_seconds: 60,
                    jwks_max_refresh_seconds: 3600,
                    client_claims: Vec::new(),
                    user_claim: String::new(),
                    introspection: None,
                };
                (t.issuer.clone(), Arc::new(Issuer::from_config(&config)))
            })
            .collect();
        Self {
            own_issuer,
            own_keys,
            external,
            store,
            leeway,
        }
    }

    /// Starts the external issuers' JWKS refreshers and waits (up to `first_fetch`) for
    /// their first fetch.
    pub async fn start(&self, shutdown: &CancellationToken, first_fetch: Duration) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("arbiter/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        for issuer in self.external.values() {
            tokio::spawn(issuer.clone().run_refresher(http.clone(), shutdown.clone()));
        }
        for issuer in self.external.values() {
            issuer.wait_first_attempt(first_fetch).await;
        }
    }

    /// Verifies a statement: trusted issuer, signature by a key of that issuer (algorithm
    /// bound to the key), `exp`, the claims registration needs, and, for Arbiter's own,
    /// that it was issued here and is not revoked.
    pub async fn verify(&self, jwt: &str) -> Result<VerifiedStatement, StatementError> {
        let invalid = |m: &str| StatementError::Invalid(m.to_owned());
        let header = decode_header(jwt)
            .map_err(|_| invalid("not a signed JWT with a supported algorithm"))?;
        let unverified = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(jwt)
            .map_err(|_| invalid("malformed claims"))?;
        let iss = unverified
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no `iss`"))?
            .to_owned();
        let own = iss == self.own_issuer;
        let keys = if own {
            Arc::new(KeySet::from_keys(self.own_keys.verification_keys()))
        } else {
            let issuer = self.external.get(&iss).ok_or_else(|| {
                StatementError::Unapproved(format!("`{iss}` is not a trusted statement issuer"))
            })?;
            let mut keys = issuer.keys();
            let kid = header.kid.as_deref();
            if keys.find(kid).is_none() && kid.is_some() && issuer.refresh_on_demand().await {
                keys = issuer.keys();
            }
            keys
        };
        let key = keys
            .find(header.kid.as_deref())
            .ok_or_else(|| invalid("signed by an unknown key"))?;
        if key.alg != header.alg {
            return Err(invalid("algorithm does not match the key"));
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&iss]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let claims = decode::<Map<String, Value>>(jwt, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("expired"),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid("bad signature"),
                _ => StatementError::Invalid(format!("rejected: {e}")),
            })?
            .claims;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| StatementError::Invalid(format!("no `{name}`")))
        };
        let jti = text("jti")?;
        let software_id = text("software_id")?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let allowed_scopes = claims
            .get("authorization")
            .and_then(|a| a.get("allowed_scopes"))
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("no `authorization.allowed_scopes`"))?
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("`authorization.allowed_scopes` must be strings"))?;
        if own {
            let record = self
                .store
                .statement(&jti)
                .await
                .map_err(|_| StatementError::Store)?
                .ok_or_else(|| StatementError::Unapproved("not issued here".into()))?;
            if record.revoked_at.is_some() {
                return Err(StatementError::Unapproved("revoked".into()));
            }
        }
        Ok(VerifiedStatement {
            issuer: iss,
            jti,
            exp,
            software_id,
            allowed_scopes,
            claims,
        })
    }
}
