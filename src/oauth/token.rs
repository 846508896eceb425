//! The token endpoint's rules (RFC 6749 §4.4 client credentials, RFC 9068 access tokens),
//! apart from HTTP: authenticate the client, decide the grant, mint the JWT. Errors are the
//! RFC 6749 §5.2 codes; their descriptions never contain secrets.

use std::sync::Arc;

use jsonwebtoken::{encode, Algorithm, Header};
use serde_json::json;

use super::clients::secret_matches;
use super::keys::KeyRing;
use crate::store::{ClientRecord, Store};
use crate::token::Verifier;

/// How the client authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic {
        /// `client_id`.
        id: String,
        /// `client_secret`.
        secret: String,
    },
    /// Form parameters (`client_secret_post`).
    Post {
        /// `client_id`.
        id: String,
        /// `client_secret`.
        secret: String,
    },
    /// No credentials.
    None,
}

/// A token request, as the HTTP layer parsed it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// The client's credentials.
    pub auth: ClientAuth,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until `exp`.
    pub expires_in: u64,
    /// What was actually granted.
    pub scope: String,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The error code.
    pub code: &'static str,
    /// Human-readable, safe to show.
    pub description: String,
    /// Whether the client tried HTTP Basic (a 401 then carries a `WWW-Authenticate` challenge).
    pub used_basic: bool,
}

impl OAuthError {
    /// An error with a code and description.
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            used_basic: false,
        }
    }

    /// The HTTP status RFC 6749 §5.2 gives the code.
    pub fn status(&self) -> u16 {
        if self.code == "invalid_client" {
            401
        } else {
            400
        }
    }
}

/// Settings of the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The issuer identifier (`iss`).
    pub issuer: String,
    /// The `aud` of access tokens.
    pub audience: String,
    /// Access token lifetime in seconds.
    pub ttl_seconds: u64,
}

/// The authorization server's token logic.
pub struct TokenService {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    verifier: Arc<Verifier>,
    settings: TokenSettings,
}

impl TokenService {
    /// A token service over a store, a key ring, and the PDP's verifier (which checks this
    /// server's tokens for introspection and learns of revocations at once).
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        verifier: Arc<Verifier>,
        settings: TokenSettings,
    ) -> Self {
        Self {
            store,
            keys,
            verifier,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The key ring.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// Authenticates a client by its registered secret method.
    pub async fn authenticate(&self, auth: &ClientAuth) -> Result<ClientRecord, OAuthError> {
        let used_basic = matches!(auth, ClientAuth::Basic { .. });
        let fail = |code: &'static str, description: &str| OAuthError {
            code,
            description: description.to_owned(),
            used_basic,
        };
        let (id, secret, method) = match auth {
            ClientAuth::Basic { id, secret } => (id, secret, "client_secret_basic"),
            ClientAuth::Post { id, secret } => (id, secret, "client_secret_post"),
            ClientAuth::None => {
                return Err(fail("invalid_client", "client authentication is required"))
            }
        };
        self.store
            .client(id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "client lookup failed");
                fail("server_error", "the client could not be looked up")
            })?
            .filter(|c| !c.disabled && c.auth_method == method && secret_matches(c, secret))
            .ok_or_else(|| fail("invalid_client", "client authentication failed"))
    }

    /// RFC 7662: what an active token of this server says; `None` for anything else
    /// (invalid, expired, revoked, another issuer's), which answers `{"active": false}`.
    pub async fn introspect(
        &self,
        auth: &ClientAuth,
        token: &str,
    ) -> Result<Option<serde_json::Value>, OAuthError> {
        self.authenticate(auth).await?;
        match self.verifier.verify(token).await {
            Ok(t) if t.issuer == self.settings.issuer => {
                let mut out = serde_json::Map::new();
                out.insert("active".into(), json!(true));
                out.insert("token_type".into(), json!("Bearer"));
                for claim in [
                    "scope",
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "jti",
                ] {
                    if let Some(v) = t.claims.get(claim) {
                        out.insert(claim.into(), v.clone());
                    }
                }
                Ok(Some(serde_json::Value::Object(out)))
            }
            _ => Ok(None),
        }
    }

    /// RFC 7009: revokes an access token this server issued to the calling client. Invalid
    /// or unknown tokens are not an error (the answer is the same, so nothing leaks).
    pub async fn revoke(&self, auth: &ClientAuth, token: &str) -> Result<(), OAuthError> {
        let client = self.authenticate(auth).await?;
        let Ok(t) = self.verifier.verify(token).await else {
            return Ok(());
        };
        if t.issuer != self.settings.issuer {
            return Ok(());
        }
        if t.client_id.as_deref() != Some(client.client_id.as_str()) {
            return Err(OAuthError {
                code: "unauthorized_client",
                description: "the token was not issued to this client".into(),
                used_basic: matches!(auth, ClientAuth::Basic { .. }),
            });
        }
        let Some(jti) = t.jti.as_deref() else {
            return Ok(());
        };
        self.store
            .revoke_token(&t.issuer, jti, i64::try_from(t.exp).unwrap_or(i64::MAX))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "revocation could not be stored");
                OAuthError::new("server_error", "the revocation could not be stored")
            })?;
        self.verifier.revoke(&t.issuer, jti, t.exp);
        tracing::info!(client_id = %client.client_id, jti = %jti, "token revoked");
        Ok(())
    }

    /// Handles one token request.
    pub async fn token(&self, req: TokenRequest) -> Result<TokenResponse, OAuthError> {
        let used_basic = matches!(req.auth, ClientAuth::Basic { .. });
        let fail = |code: &'static str, description: &str| OAuthError {
            code,
            description: description.to_owned(),
            used_basic,
        };
        let client = self.authenticate(&req.auth).await?;

        match req.grant_type.as_deref() {
            None => return Err(fail("invalid_request", "`grant_type` is required")),
            Some("client_credentials") => {}
            Some(_) => {
                return Err(fail(
                    "unsupported_grant_type",
                    "only `client_credentials` is supported",
                ))
            }
        }
        let requested: Vec<&str> = match &req.scope {
            Some(s) => s.split(' ').filter(|t| !t.is_empty()).collect(),
            None => client.allowed_scopes.iter().map(String::as_str).collect(),
        };
        let mut granted: Vec<&str> = Vec::new();
        for s in requested {
            if client.allowed_scopes.iter().any(|a| a == s) && !granted.contains(&s) {
                granted.push(s);
            }
        }
        if granted.is_empty() {
            return Err(fail(
                "invalid_scope",
                "none of the requested scopes may be granted to this client",
            ));
        }
        let scope = granted.join(" ");
        let now = crate::token::now();
        let claims = json!({
            "iss": self.settings.issuer,
            "sub": client.client_id,
            "client_id": client.client_id,
            "aud": self.settings.audience,
            "iat": now,
            "exp": now + self.settings.ttl_seconds,
            "jti": uuid::Uuid::now_v7().to_string(),
            "scope": scope,
        });
        let keys = self.keys.current();
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(keys.active.kid.clone());
        let access_token = encode(&header, &claims, &keys.active.encoding).map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            fail("server_error", "the token could not be signed")
        })?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.ttl_seconds,
            scope,
        })
    }
}
