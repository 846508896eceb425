//! Who may ask: the AuthZEN caller (the PEP) authenticates, unless the listener is loopback
//! and nothing says otherwise. A bearer token from any trusted issuer carrying the configured
//! scope (`[authzen] pep_scope`), or a TLS client certificate chaining to the client CA —
//! as `[authzen] pep_authentication` says. The metadata document stays public.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::PepAuthentication;
use crate::decision::Pdp;
use crate::http::ApiError;
use crate::tls::PeerCertificate;
use crate::wire::www_authenticate;

/// The realm of the challenges.
const REALM: &str = "arbiter";

/// How PEPs authenticate, resolved (`auto` decided by the listener's address).
#[derive(Clone)]
pub(crate) struct PepAuth {
    /// The mode; never `Auto`.
    pub(crate) mode: PepAuthentication,
    /// The scope a PEP's token must carry.
    pub(crate) scope: String,
    /// Verifies PEP tokens.
    pub(crate) pdp: Arc<Pdp>,
}

/// Middleware: lets the request through when its PEP is authenticated as configured.
pub(crate) async fn require_pep(
    State(auth): State<PepAuth>,
    request: Request,
    next: Next,
) -> Response {
    let certificate = request.extensions().get::<PeerCertificate>().cloned();
    match auth.check(request.headers(), certificate.as_ref()).await {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

impl PepAuth {
    async fn check(
        &self,
        headers: &HeaderMap,
        certificate: Option<&PeerCertificate>,
    ) -> Result<(), ApiError> {
        let (token_ok, certificate_ok) = match self.mode {
            PepAuthentication::None | PepAuthentication::Auto => return Ok(()),
            PepAuthentication::Token => (true, false),
            PepAuthentication::Certificate => (false, true),
            PepAuthentication::TokenOrCertificate => (true, true),
        };
        if certificate_ok && certificate.is_some_and(PeerCertificate::chains_to_ca) {
            return Ok(());
        }
        if !token_ok {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AuthZEN callers present a TLS client certificate from the configured CA",
            ));
        }
        let challenge = |code: &str, description: &str| {
            www_authenticate(REALM, Some(code), description, Some(&self.scope))
        };
        let token = crate::http::bearer_token(headers)
            .map_err(|e| ApiError::from(e).with_challenge(challenge(e.code(), "")))?;
        let Some(token) = token else {
            let description = "AuthZEN callers authenticate: a bearer token with the PEP scope";
            return Err(
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", description)
                    .with_challenge(www_authenticate(REALM, None, "", Some(&self.scope))),
            );
        };
        let verified = self.pdp.verifier().verify(token).await.map_err(|e| {
            let description = format!("the PEP's token: {e}");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                description.clone(),
            )
            .with_challenge(challenge("invalid_token", &description))
        })?;
        let presented = certificate.map_or("", PeerCertificate::thumbprint);
        if let Err(why) = verified.check_binding(presented) {
            let description = format!("the PEP's token: {why}");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                description.clone(),
            )
            .with_challenge(challenge("invalid_token", &description)));
        }
        if verified.scopes.contains(&self.scope) {
            return Ok(());
        }
        let description = format!("the PEP's token lacks the scope `{}`", self.scope);
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            description.clone(),
        )
        .with_challenge(challenge("insufficient_scope", &description)))
    }
}
