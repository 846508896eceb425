//! Minting development access tokens (RFC 9068 shape) with the development issuer's key.
//! For development and tests only: the token endpoint is where real tokens come from.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::keys::SigningKey;
use crate::clock::now;

/// What a development token should say.
#[derive(Debug, Clone, Default)]
pub struct DevTokenRequest {
    /// `client_id`.
    pub client_id: String,
    /// `sub`; the client id when absent (a client-credentials token).
    pub sub: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Lifetime.
    pub ttl: Duration,
    /// Extra claims merged into the payload (they never override the standard ones).
    pub extra: Map<String, Value>,
}

/// Signs a development token for `issuer` and `audience`.
pub fn mint(
    key: &SigningKey,
    issuer: &str,
    audience: &str,
    req: &DevTokenRequest,
) -> Result<String, super::keys::KeyError> {
    let iat = now();
    let mut claims = req.extra.clone();
    let standard = json!({
        "iss": issuer,
        "sub": req.sub.as_deref().unwrap_or(&req.client_id),
        "aud": audience,
        "client_id": req.client_id,
        "scope": req.scopes.join(" "),
        "iat": iat,
        "nbf": iat,
        "exp": iat + req.ttl.as_secs(),
        "jti": uuid::Uuid::now_v7().to_string(),
    });
    if let Value::Object(map) = standard {
        claims.extend(map);
    }
    key.sign_jwt("at+jwt", &claims)
}
