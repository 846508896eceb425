//! The token endpoint's rules (RFC 6749 §4.4 client credentials, RFC 9068 access tokens),
//! apart from HTTP: authenticate the client, decide the grant, mint the JWT. Errors are the
//! RFC 6749 §5.2 codes; their descriptions never contain secrets.
//!
//! A little over our usual size: client authentication (secret, RFC 7523 assertion, RFC 8705
//! certificate) and the grant share one cached client record and one error type, and read
//! best in one place.

use std::sync::Arc;

use serde_json::json;
use tracing::field::Empty;
use tracing::Instrument as _;

use super::clients::secret_matches;
pub use super::error::OAuthError;
use super::keys::KeyRing;
use crate::decision::issue::ISSUE_SCOPE;
use crate::decision::{client_uid, scope_uid, AuthzRequest, EntityRef, Pdp, Subject};
use crate::store::{ClientRecord, Store};
use crate::tls::PeerCertificate;
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
    /// A signed JWT (`private_key_jwt`, RFC 7523).
    Assertion {
        /// `client_id` given beside the assertion, if any.
        id: Option<String>,
        /// The JWT.
        assertion: String,
    },
    /// Only `client_id`: mutual TLS (RFC 8705 §2), by the certificate of the connection.
    Tls {
        /// `client_id`.
        id: String,
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
    /// RFC 8707 `resource` parameters, in order.
    pub resources: Vec<String>,
    /// The client's credentials.
    pub auth: ClientAuth,
    /// Where the request came from, and the risk signals a trusted proxy attached.
    pub origin: Origin,
}

/// The network facts of a request, as the HTTP layer saw them.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The TCP peer.
    pub peer: Option<std::net::IpAddr>,
    /// Every `X-Forwarded-For` value, in order ([`crate::http::forwarded_chain`]).
    pub forwarded_for: Option<String>,
    /// Every `X-Fraud-Score` value, in order ([`crate::http::fraud_scores`]).
    pub fraud_score: Option<String>,
    /// The client certificate of the connection, if one was presented.
    pub certificate: Option<PeerCertificate>,
}

impl Origin {
    /// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    /// untrusted address of `X-Forwarded-For` (read from the right).
    pub fn client_ip(&self, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
        let peer = self.peer?;
        Some(crate::http::client_ip(
            peer,
            self.forwarded_for.as_deref(),
            trusted,
        ))
    }

    /// The fraud score, believed only from a trusted proxy; an unparsable one is an error,
    /// never "absent".
    pub fn fraud_score(&self, trusted: &[ipnet::IpNet]) -> Result<Option<i64>, String> {
        match self.peer {
            Some(peer) => crate::http::fraud_score(peer, self.fraud_score.as_deref(), trusted),
            None => Ok(None),
        }
    }
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

/// Settings of the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The issuer identifier (`iss`).
    pub issuer: String,
    /// The `aud` of access tokens when the client names no `resource`.
    pub audience: String,
    /// Resource servers a client may name with `resource` (RFC 8707).
    pub resources: Vec<String>,
    /// Access token lifetime in seconds.
    pub ttl_seconds: u64,
    /// Proxies whose forwarding and risk headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether the HTTP listener asks for client certificates (RFC 8705 client
    /// authentication and certificate-bound tokens are offered).
    pub client_certificates: bool,
    /// Whether clients' `jwks_uri` host names may resolve to internal addresses.
    pub allow_private_client_urls: bool,
}

/// How long a client record read from the store serves secret authentication. Changes made
/// in this process take effect at once (see [`TokenService::forget_client`]); a client
/// disabled elsewhere is refused as soon as the once-a-second poll of disabled clients sees
/// it, whatever the cache holds; a secret rotated elsewhere works at once (a mismatch reads
/// the store again) and the old one stops within this time. Assertion and certificate
/// clients are always read afresh.
const CLIENT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Beyond this many cached clients, expired entries are dropped on the next insert.
const CLIENT_CACHE_PRUNE: usize = 10_000;

/// The authorization server's token logic.
pub struct TokenService {
    store: Arc<dyn Store>,
    /// Client records by id, with when they were read (no misses are cached, so a client
    /// registered at another replica is found at once).
    clients: dashmap::DashMap<String, (Arc<ClientRecord>, std::time::Instant)>,
    keys: Arc<KeyRing>,
    verifier: Arc<Verifier>,
    pdp: Arc<Pdp>,
    settings: TokenSettings,
    remote_jwks: super::remote_jwks::RemoteJwks,
}

impl TokenService {
    /// A token service over a store, a key ring, and the PDP's verifier (which checks this
    /// server's tokens for introspection and learns of revocations at once).
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        verifier: Arc<Verifier>,
        pdp: Arc<Pdp>,
        settings: TokenSettings,
    ) -> Self {
        let remote_jwks = super::remote_jwks::RemoteJwks::new(settings.allow_private_client_urls);
        Self {
            store,
            clients: dashmap::DashMap::new(),
            keys,
            verifier,
            pdp,
            settings,
            remote_jwks,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The key ring.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// An enabled client by id: from the cache while fresh (unless `reread`), else from the
    /// store.
    async fn enabled_client(
        &self,
        id: &str,
        reread: bool,
    ) -> Result<Option<Arc<ClientRecord>>, OAuthError> {
        let cached = self
            .clients
            .get(id)
            .filter(|e| !reread && e.value().1.elapsed() < CLIENT_CACHE_TTL)
            .map(|e| e.value().0.clone());
        let client = match cached {
            Some(c) => Some(c),
            None => {
                let read = self.store.client(id);
                let read = read.instrument(tracing::debug_span!("store.client"));
                let read = read.await.map_err(|e| {
                    crate::telemetry::metrics::METRICS.store_error("client_lookup");
                    tracing::error!(error = %e, "client lookup failed");
                    OAuthError::new("server_error", "the client could not be looked up")
                })?;
                match read {
                    Some(c) => {
                        if self.clients.len() >= CLIENT_CACHE_PRUNE {
                            self.clients
                                .retain(|_, (_, at)| at.elapsed() < CLIENT_CACHE_TTL);
                        }
                        let c = Arc::new(c);
                        self.clients
                            .insert(id.to_owned(), (c.clone(), std::time::Instant::now()));
                        Some(c)
                    }
                    None => {
                        self.clients.remove(id);
                        None
                    }
                }
            }
        };
        Ok(client.filter(|c| {
            !c.disabled
                && !self
                    .verifier
                    .client_disabled(&self.settings.issuer, &c.client_id)
        }))
    }

    /// Drops a client's cached record, after this process changed it.
    pub fn forget_client(&self, client_id: &str) {
        self.clients.remove(client_id);
    }

    /// Authenticates a client by its registered method; `certificate` is the one on the
    /// connection, for mutual-TLS clients.
    pub async fn authenticate(
        &self,
        auth: &ClientAuth,
        certificate: Option<&PeerCertificate>,
    ) -> Result<Arc<ClientRecord>, OAuthError> {
        let used_basic = matches!(auth, ClientAuth::Basic { .. });
        let fail = |code: &'static str, description: &str| OAuthError {
            code,
            description: description.to_owned(),
            used_basic,
        };
        let (id, secret, method) = match auth {
            ClientAuth::Basic { id, secret } => (id, secret, "client_secret_basic"),
            ClientAuth::Post { id, secret } => (id, secret, "client_secret_post"),
            ClientAuth::Assertion { id, assertion } => {
                return self.authenticate_assertion(id.as_deref(), assertion).await
            }
            ClientAuth::Tls { id } => return self.authenticate_certificate(id, certificate).await,
            ClientAuth::None => {
                return Err(fail("invalid_client", "client authentication is required"))
            }
        };
        let matches = |c: &Arc<ClientRecord>| c.auth_method == method && secret_matches(c, secret);
        let cached = self
            .enabled_client(id, false)
            .await
            .map_err(|e| OAuthError { used_basic, ..e })?;
        if let Some(c) = cached.filter(matches) {
            return Ok(c);
        }
        // Not with the cached record: the secret may have been rotated elsewhere just now.
        self.enabled_client(id, true)
            .await
            .map_err(|e| OAuthError { used_basic, ..e })?
            .filter(matches)
            .ok_or_else(|| fail("invalid_client", "client authentication failed"))
    }

    /// RFC 8705 §2 client authentication by the connection's certificate.
    async fn authenticate_certificate(
        &self,
        id: &str,
        certificate: Option<&PeerCertificate>,
    ) -> Result<Arc<ClientRecord>, OAuthError> {
        let fail = |why: &str| {
            tracing::info!(client_id = %id, reason = %why, "mutual-TLS client authentication refused");
            OAuthError::new("invalid_client", "client authentication failed")
        };
        let client = self
            .enabled_client(id, true)
            .await?
            .ok_or_else(|| fail("unknown or disabled client"))?;
        let Some(certificate) = certificate else {
            return Err(if client.auth_method.ends_with("tls_client_auth") {
                fail("no client certificate on this connection")
            } else {
                // Only a client id, from a client of another method: it sent no credentials.
                OAuthError::new("invalid_client", "client authentication is required")
            });
        };
        let leaf = certificate.leaf().as_ref();
        match client.auth_method.as_str() {
            "tls_client_auth" => {
                if !certificate.chains_to_ca() {
                    return Err(fail("the certificate does not chain to the client CA"));
                }
                let Some((parameter, value)) = &client.tls_subject else {
                    return Err(fail("no registered certificate subject"));
                };
                if !super::mtls::subject_matches(leaf, parameter, value) {
                    return Err(fail("the certificate's subject is not the registered one"));
                }
            }
            "self_signed_tls_client_auth" => {
                let registered = match (&client.jwks, &client.jwks_uri) {
                    (Some(jwks), _) => super::mtls::is_registered(jwks, leaf),
                    (None, Some(uri)) => {
                        let jwks = self
                            .remote_jwks
                            .with_certificate(uri, leaf)
                            .await
                            .map_err(|e| fail(&format!("client JWKS at `{uri}`: {e}")))?;
                        super::mtls::is_registered(&jwks.document, leaf)
                    }
                    (None, None) => false,
                };
                if !registered {
                    return Err(fail("the certificate is not one the client registered"));
                }
            }
            _ => {
                return Err(OAuthError::new(
                    "invalid_client",
                    "client authentication is required",
                ))
            }
        }
        Ok(client)
    }

    /// RFC 7523 client authentication: the assertion is signed by a key of the client's
    /// registered JWKS, `iss` and `sub` are the client, `aud` is exactly this issuer
    /// (draft-ietf-oauth-rfc7523bis, after the 2025 audience-injection flaw), and each `jti` is
    /// accepted once.
    async fn authenticate_assertion(
        &self,
        id: Option<&str>,
        assertion: &str,
    ) -> Result<Arc<ClientRecord>, OAuthError> {
        let fail = |why: &str| {
            tracing::info!(reason = %why, "client assertion refused");
            OAuthError::new("invalid_client", "client authentication failed")
        };
        // Which client: `sub` (equal to `iss`), read before verification only to find its keys.
        let unverified = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(assertion)
            .map_err(|_| fail("malformed assertion"))?;
        let sub = unverified
            .claims
            .get("sub")
            .and_then(|v| v.as_str())
            .ok_or_else(|| fail("no sub"))?;
        if id.is_some_and(|id| id != sub) {
            return Err(fail("client_id does not match the assertion"));
        }
        let client = self
            .enabled_client(sub, true)
            .await?
            .filter(|c| c.auth_method == "private_key_jwt")
            .ok_or_else(|| fail("unknown, disabled or not a private_key_jwt client"))?;
        let kid = unverified.header.kid.as_deref();
        let keys = match (&client.jwks, &client.jwks_uri) {
            (Some(jwks), _) => Arc::new(
                crate::token::jwks::KeySet::from_jwks(jwks.to_string().as_bytes())
                    .map_err(|_| fail("unusable registered JWKS"))?
                    .0,
            ),
            (None, Some(uri)) => self
                .remote_jwks
                .keys(uri, kid)
                .await
                .map_err(|e| fail(&format!("client JWKS at `{uri}`: {e}")))?
                .keys
                .clone(),
            (None, None) => return Err(fail("no registered JWKS")),
        };
        let key = keys.find(kid).ok_or_else(|| fail("unknown kid"))?;
        if key.alg != unverified.header.alg {
            return Err(fail("algorithm does not match the key"));
        }
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.set_issuer(&[&client.client_id]);
        validation.sub = Some(client.client_id.clone());
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.validate_aud = false; // checked below: exactly the issuer identifier
        validation.leeway = 30;
        let verified =
            jsonwebtoken::decode::<serde_json::Value>(assertion, &key.decoding, &validation)
                .map_err(|e| fail(&format!("invalid assertion: {e}")))?;
        let claims = verified.claims;
        // A legacy client may still address the token endpoint URL; nobody else may.
        let token_endpoint = format!("{}/token", self.settings.issuer.trim_end_matches('/'));
        let acceptable = |aud: &str| {
            aud == self.settings.issuer || (client.legacy_audience && aud == token_endpoint)
        };
        let aud_ok = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => acceptable(a),
            Some(serde_json::Value::Array(list)) => {
                list.len() == 1 && list[0].as_str().is_some_and(acceptable)
            }
            _ => false,
        };
        if !aud_ok {
            return Err(fail(if client.legacy_audience {
                "aud is neither the issuer identifier nor the token endpoint"
            } else {
                "aud is not exactly the issuer identifier"
            }));
        }
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| fail("no exp"))?;
        let now = crate::clock::now_i64();
        if exp > now + 600 {
            return Err(fail("assertion lives longer than 10 minutes"));
        }
        let jti = claims
            .get("jti")
            .and_then(|v| v.as_str())
            .ok_or_else(|| fail("no jti"))?;
        let fresh = self
            .store
            .use_assertion(&client.client_id, jti, exp)
            .await
            .map_err(|_| OAuthError::new("server_error", "the assertion could not be recorded"))?;
        if !fresh {
            return Err(fail("assertion jti replayed"));
        }
        Ok(client)
    }

    /// RFC 7662: what an active token of this server says; `None` for anything else
    /// (invalid, expired, revoked, another issuer's), which answers `{"active": false}`.
    pub async fn introspect(
        &self,
        auth: &ClientAuth,
        certificate: Option<&PeerCertificate>,
        token: &str,
    ) -> Result<Option<serde_json::Value>, OAuthError> {
        self.authenticate(auth, certificate).await?;
        match self
            .verifier
            .verify_issued_by(token, &self.settings.issuer)
            .await
        {
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
                    "cnf",
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
    pub async fn revoke(
        &self,
        auth: &ClientAuth,
        certificate: Option<&PeerCertificate>,
        token: &str,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate(auth, certificate).await?;
        let Ok(t) = self
            .verifier
            .verify_issued_by(token, &self.settings.issuer)
            .await
        else {
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
        let metrics = &crate::telemetry::metrics::METRICS;
        match self.issue(req).await {
            Ok((response, client_id)) => {
                metrics.token_issued(&client_id, "client_credentials");
                Ok(response)
            }
            Err(e) => {
                metrics.token_error(e.code);
                Err(e)
            }
        }
    }

    async fn issue(&self, req: TokenRequest) -> Result<(TokenResponse, String), OAuthError> {
        let used_basic = matches!(req.auth, ClientAuth::Basic { .. });
        let fail = |code: &'static str, description: &str| OAuthError {
            code,
            description: description.to_owned(),
            used_basic,
        };
        let authenticating = tracing::debug_span!("client.authenticate", client.id = Empty);
        let client = self
            .authenticate(&req.auth, req.origin.certificate.as_ref())
            .instrument(authenticating.clone())
            .await?;
        authenticating.record("client.id", client.client_id.as_str());
        // RFC 8705 §3: a certificate-authenticated client's token is bound to the certificate.
        let bound_to = match client.auth_method.as_str() {
            "tls_client_auth" | "self_signed_tls_client_auth" => req
                .origin
                .certificate
                .as_ref()
                .map(|c| c.thumbprint().to_owned()),
            _ => None,
        };

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
        let audiences = super::resource::audiences(
            &req.resources,
            &client,
            &self.settings.audience,
            &self.settings.resources,
        )
        .map_err(|e| OAuthError { used_basic, ..e })?;
        // Each remaining scope is a policy decision in this request's context, once per
        // audience: a scope is granted only if every audience may receive it.
        let mut context = serde_json::Map::new();
        context.insert("grant_type".into(), json!("client_credentials"));
        context.insert("time".into(), json!(crate::clock::now()));
        if let Some(ip) = req.origin.client_ip(&self.settings.trusted_proxies) {
            context.insert("ip".into(), json!(ip.to_string()));
        }
        match req.origin.fraud_score(&self.settings.trusted_proxies) {
            Ok(Some(score)) => {
                context.insert("fraud_score".into(), json!(score));
            }
            Ok(None) => {}
            Err(m) => return Err(OAuthError::new("invalid_request", m)),
        }
        let principal = EntityRef {
            uid: client_uid(&client.client_id),
            properties: super::clients::policy_attributes(&client),
        };
        // Each scope is a decision through the one entry: its log line (which names the
        // scope, the audience in its context, and the decision) and its metrics are those of
        // every other decision. Once per audience: a scope is granted only if every audience
        // may receive it.
        let mut scopes: Vec<(&str, EntityRef)> = granted
            .into_iter()
            .map(|scope| {
                let resource = EntityRef {
                    uid: scope_uid(scope),
                    properties: serde_json::Map::new(),
                };
                (scope, resource)
            })
            .collect();
        for audience in &audiences {
            context.insert("audience".into(), json!(audience));
            scopes.retain(|(_, resource)| {
                self.pdp
                    .authorize_authenticated(AuthzRequest {
                        token: "",
                        subject: Some(Subject::Client {
                            issuer: &self.settings.issuer,
                            client: &principal,
                        }),
                        method: ISSUE_SCOPE,
                        path: "",
                        resource: Some(resource),
                        context: &context,
                        explain: false,
                        client_cert_sha256: "",
                    })
                    .verdict
                    .allowed
            });
        }
        let granted: Vec<&str> = scopes.into_iter().map(|(scope, _)| scope).collect();
        if granted.is_empty() {
            return Err(fail(
                "invalid_scope",
                "none of the requested scopes may be granted to this client",
            ));
        }
        let scope = granted.join(" ");
        let now = crate::clock::now();
        let mut claims = json!({
            "iss": self.settings.issuer,
            "sub": client.client_id,
            "client_id": client.client_id,
            "aud": match audiences.as_slice() {
                [one] => json!(one),
                many => json!(many),
            },
            "iat": now,
            "exp": now + self.settings.ttl_seconds,
            "jti": uuid::Uuid::now_v7().to_string(),
            "scope": scope,
        });
        if let Some(thumbprint) = bound_to {
            claims["cnf"] = json!({ "x5t#S256": thumbprint });
        }
        let keys = self.keys.current();
        let signed =
            tracing::debug_span!("token.sign", jti = %claims["jti"].as_str().unwrap_or(""))
                .in_scope(|| keys.active.sign_jwt("at+jwt", &claims));
        let access_token = signed.map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            fail("server_error", "the token could not be signed")
        })?;
        Ok((
            TokenResponse {
                access_token,
                token_type: "Bearer",
                expires_in: self.settings.ttl_seconds,
                scope,
            },
            client.client_id.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_status() {
        assert_eq!(OAuthError::new("invalid_client", "x").status(), 401);
        assert_eq!(OAuthError::new("invalid_scope", "x").status(), 400);
        assert_eq!(
            OAuthError::new("server_error", "the store is down").status(),
            500,
            "not the client's fault"
        );
    }
}
