//! Who may administer. Every control-plane call (`PolicyAdmin`) names what it needs —
//! reading (status, query, analyze, compare) or changing (reload) — and is admitted here:
//! a TLS client certificate chaining to `[admin] client_ca_file` (reads and changes), or a
//! bearer token from a trusted issuer carrying `[admin] read_scope` or `write_scope` (bound
//! tokens only with their certificate), or nobody at all where `[admin] authentication`
//! allows it (`auto`: only on a loopback listener).
//!
//! Uses the token verifier, the one bearer parser and the TLS chain check; knows nothing of
//! the transports that call it.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;

use crate::config::{AdminAuthentication, AdminConfig};
use crate::tls::TlsError;
use crate::token::Verifier;

/// What a control-plane call does to the live set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads it: status, queries, proofs.
    Read,
    /// Changes it: reload.
    Change,
}

/// An admitted administrator, as the log names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admin(pub String);

/// Why a call was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// No credentials, or credentials that do not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// Verified credentials without the needed scope.
    #[error("{0}")]
    PermissionDenied(String),
}

/// The credentials a call presents.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Credentials<'a> {
    /// The `authorization` values it sent (more than one is malformed).
    pub(crate) authorization: &'a [&'a str],
    /// Its TLS client certificate chain, leaf first.
    pub(crate) chain: Option<&'a [CertificateDer<'static>]>,
}

/// Admits administrators as `[admin]` says.
pub(crate) struct AdminAuth {
    mode: AdminAuthentication,
    read_scope: String,
    write_scope: String,
    ca: Option<Arc<dyn ClientCertVerifier>>,
    verifier: Arc<Verifier>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl AdminAuth {
    /// For the listener at `listener` that serves the control plane (`auto` decides by its
    /// address, and says so in the log when it lets anonymous callers in).
    pub(crate) fn new(
        config: &AdminConfig,
        listener: SocketAddr,
        verifier: Arc<Verifier>,
        serving: &'static str,
    ) -> Result<Self, TlsError> {
        let mode = match config.authentication {
            AdminAuthentication::Auto if listener.ip().is_loopback() => {
                tracing::warn!(addr = %listener, serving, "the control plane admits anonymous callers on this loopback listener ([admin] authentication = \"auto\"); set a token or certificate mode, or [admin] client_ca_file, where others share the machine");
                AdminAuthentication::None
            }
            AdminAuthentication::Auto => AdminAuthentication::TokenOrCertificate,
            other => other,
        };
        let ca = config
            .client_ca_file
            .as_deref()
            .map(crate::tls::ca_verifier)
            .transpose()?;
        Ok(Self {
            mode,
            read_scope: config.read_scope.clone(),
            write_scope: config.write_scope.clone(),
            ca,
            verifier,
        })
    }

    /// Admits a call that needs `access`, or says why not.
    pub(crate) async fn admit(
        &self,
        access: Access,
        credentials: Credentials<'_>,
    ) -> Result<Admin, Refusal> {
        let (token_ok, certificate_ok) = match self.mode {
            AdminAuthentication::None | AdminAuthentication::Auto => {
                return Ok(Admin("anonymous".to_owned()))
            }
            AdminAuthentication::Token => (true, false),
            AdminAuthentication::Certificate => (false, true),
            AdminAuthentication::TokenOrCertificate => (true, true),
        };
        let leaf = credentials.chain.and_then(|c| c.split_first());
        if certificate_ok {
            if let (Some((leaf, intermediates)), Some(ca)) = (leaf, &self.ca) {
                if ca
                    .verify_client_cert(leaf, intermediates, UnixTime::now())
                    .is_ok()
                {
                    return Ok(Admin(format!(
                        "certificate:{}",
                        crate::tls::thumbprint(leaf)
                    )));
                }
            }
        }
        if !token_ok {
            return Err(Refusal::Unauthenticated(
                "the control plane needs a TLS client certificate from the administrators' CA"
                    .into(),
            ));
        }
        let token = match credentials.authorization {
            [] => {
                return Err(Refusal::Unauthenticated(format!(
                    "the control plane needs an administrator: a bearer token with `{}` (or `{}` to read){}",
                    self.write_scope,
                    self.read_scope,
                    if certificate_ok && self.ca.is_some() {
                        ", or a client certificate from the administrators' CA"
                    } else {
                        ""
                    }
                )))
            }
            [one] => crate::http::bearer_value(one)
                .map_err(|e| Refusal::Unauthenticated(format!("authorization: {e}")))?,
            _ => {
                return Err(Refusal::Unauthenticated(
                    "authorization: more than one value".into(),
                ))
            }
        };
        let verified = self
            .verifier
            .verify(token)
            .await
            .map_err(|e| Refusal::Unauthenticated(format!("the administrator's token: {e}")))?;
        let presented = leaf.map(|(l, _)| crate::tls::thumbprint(l));
        verified
            .check_binding(presented.as_deref().unwrap_or(""))
            .map_err(|why| Refusal::Unauthenticated(format!("the administrator's token: {why}")))?;
        let allowed = verified.has_scope(&self.write_scope)
            || (access == Access::Read && verified.has_scope(&self.read_scope));
        if !allowed {
            let needed = match access {
                Access::Read => format!("`{}` or `{}`", self.read_scope, self.write_scope),
                Access::Change => format!("`{}`", self.write_scope),
            };
            return Err(Refusal::PermissionDenied(format!(
                "the administrator's token lacks the scope {needed}"
            )));
        }
        Ok(Admin(verified.log_name()))
    }
}
