//! Signing in to the workbench with OpenID Connect: the authorization code flow with PKCE
//! (S256) at the configured provider. The provider's metadata comes from its discovery
//! document; the ID token is verified by the decision point's own verifier (the provider
//! is an `[[issuers]]` entry like any other), then its nonce, audience and `azp` are checked
//! here.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::config::ConsoleConfig;
use crate::token::{VerifiedToken, Verifier};

/// What the provider's discovery document says of the endpoints the flow uses.
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

/// The OpenID provider and this console's registration at it.
pub(crate) struct Provider {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    redirect_url: String,
    scopes: String,
    http: reqwest::Client,
    metadata: OnceCell<Metadata>,
    verifier: Arc<Verifier>,
}

/// Why a sign-in failed (shown to the person; never a token or a secret).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignInError {
    /// The provider could not be asked, or answered something unusable.
    #[error("the OpenID provider: {0}")]
    Provider(String),
    /// The ID token is not one this console may accept.
    #[error("the ID token: {0}")]
    IdToken(String),
}

impl Provider {
    /// The provider of `config` (which has an issuer), sending people back to
    /// `redirect_url`; ID tokens verified by `verifier`.
    pub(crate) fn new(
        config: &ConsoleConfig,
        issuer: &str,
        redirect_url: String,
        verifier: Arc<Verifier>,
    ) -> Self {
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(config.scopes.iter().filter(|s| *s != "openid").cloned());
        Self {
            issuer: issuer.to_owned(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_url,
            scopes: scopes.join(" "),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("arbiter/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            metadata: OnceCell::new(),
            verifier,
        }
    }

    /// The discovery document, fetched once (a failure is tried again at the next sign-in).
    async fn metadata(&self) -> Result<&Metadata, SignInError> {
        self.metadata
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                let meta: Metadata = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| SignInError::Provider(format!("discovery: {}", e.without_url())))?
                    .json()
                    .await
                    .map_err(|e| {
                        SignInError::Provider(format!("discovery: {}", e.without_url()))
                    })?;
                // OpenID Connect Discovery §4.3: the document is the issuer's own.
                if meta.issuer != self.issuer {
                    return Err(SignInError::Provider(format!(
                        "discovery names issuer `{}`, not `{}`",
                        meta.issuer, self.issuer
                    )));
                }
                Ok(meta)
            })
            .await
    }

    /// Where to send the browser to sign in: the authorization request with `state`, `nonce`
    /// and the S256 challenge of `verifier`.
    pub(crate) async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, SignInError> {
        let meta = self.metadata().await?;
        let mut url = url::Url::parse(&meta.authorization_endpoint)
            .map_err(|e| SignInError::Provider(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_url)
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &super::session::challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Redeems `code` with the PKCE `verifier`, and verifies the ID token it gets (its
    /// signature, issuer, audience, expiry as the verifier does; its nonce, audience and
    /// `azp` for this console). The ID token and what it verified to.
    pub(crate) async fn redeem(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<(String, Arc<VerifiedToken>), SignInError> {
        let meta = self.metadata().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_url.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = self.http.post(&meta.token_endpoint);
        match &self.client_secret {
            Some(secret) => request = request.basic_auth(&self.client_id, Some(secret)),
            None => form.push(("client_id", self.client_id.as_str())),
        }
        let response =
            request.form(&form).send().await.map_err(|e| {
                SignInError::Provider(format!("token endpoint: {}", e.without_url()))
            })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| SignInError::Provider(format!("token endpoint: {}", e.without_url())))?;
        if !status.is_success() {
            let error = body.get("error").and_then(Value::as_str).unwrap_or("?");
            return Err(SignInError::Provider(format!(
                "token endpoint answered {status}: {}",
                crate::telemetry::printable(&error.chars().take(128).collect::<String>())
            )));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| SignInError::Provider("no `id_token` in the token response".into()))?
            .to_owned();
        let verified = self
            .verifier
            .verify_issued_by(&id_token, &self.issuer)
            .await
            .map_err(|e| SignInError::IdToken(e.to_string()))?;
        self.check_id_token(&verified.claims, nonce)?;
        Ok((id_token, verified))
    }

    /// OpenID Connect Core §3.1.3.7: the audience names this client, `azp` (if any) is
    /// this client, and the nonce is the one this sign-in sent.
    fn check_id_token(
        &self,
        claims: &serde_json::Map<String, Value>,
        nonce: &str,
    ) -> Result<(), SignInError> {
        let audience_names_us = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.client_id,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(&self.client_id)),
            _ => false,
        };
        if !audience_names_us {
            return Err(SignInError::IdToken(format!(
                "`aud` does not name `{}`",
                self.client_id
            )));
        }
        if let Some(azp) = claims.get("azp") {
            if azp.as_str() != Some(&self.client_id) {
                return Err(SignInError::IdToken("`azp` is another client".into()));
            }
        }
        let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if aws_lc_rs::constant_time::verify_slices_are_equal(sent.as_bytes(), nonce.as_bytes())
            .is_err()
        {
            return Err(SignInError::IdToken(
                "its `nonce` is not this sign-in's".into(),
            ));
        }
        Ok(())
    }
}
