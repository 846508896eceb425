//! `[issuers.introspection]`: an issuer whose access tokens are opaque (reference tokens),
//! asked about each one at its RFC 7662 introspection endpoint, how Arbiter authenticates
//! there, how long answers are kept, and which opaque tokens are the issuer's.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::SigningAlg;

/// How Arbiter authenticates to an introspection endpoint (RFC 7662 §2.1 requires some).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrospectionAuth {
    /// `client_id` and secret in an HTTP Basic header (RFC 6749 §2.3.1), the default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with Arbiter's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A client certificate in the TLS handshake (RFC 8705 §2), with `client_id` in the body.
    TlsClientAuth,
}

impl IntrospectionAuth {
    /// The name used in configuration and in the OAuth registries.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
        }
    }
}

/// An issuer's introspection endpoint and how its answers are used.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The RFC 7662 endpoint: `https://…`, or `http://` to a loopback address only (the
    /// request carries the token and Arbiter's credentials).
    pub endpoint: String,
    /// Arbiter's client id at the issuer.
    pub client_id: String,
    /// How Arbiter authenticates: `client_secret_basic` (default), `client_secret_post`,
    /// `private_key_jwt` or `tls_client_auth`.
    #[serde(default)]
    pub auth_method: IntrospectionAuth,
    /// The client secret (`client_secret_basic`, `client_secret_post`).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// A file holding the client secret (trailing whitespace ignored), instead of
    /// `client_secret`.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// PKCS#8 PEM private key signing the client assertion (`private_key_jwt`).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Algorithm of that key: `ES256` (default), `EdDSA` or `RS256`.
    #[serde(default)]
    pub assertion_alg: SigningAlg,
    /// `kid` of the assertion's header; default the key's RFC 7638 thumbprint.
    #[serde(default)]
    pub assertion_key_id: Option<String>,
    /// `aud` of the assertion; default the endpoint URL.
    #[serde(default)]
    pub assertion_audience: Option<String>,
    /// Client certificate chain, PEM (`tls_client_auth`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its private key, PEM (`tls_client_auth`).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted for the endpoint's TLS certificate, besides the
    /// public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Ask for the signed JWT response of RFC 9701 and accept nothing else; it is verified
    /// with the issuer's keys (`jwks_url` or `jwks_file`).
    #[serde(default)]
    pub jwt_response: bool,
    /// Milliseconds an introspection call may take (connecting included); past it the
    /// request is denied with `ERROR`.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Longest an active answer is kept, in seconds (it is never kept past the token's
    /// `exp`): the bound on how long a token revoked at the issuer is still accepted.
    /// 0 asks the issuer on every request.
    #[serde(default = "default_max_cache")]
    pub max_cache_seconds: u64,
    /// How long an inactive (or unacceptable) answer is kept, in seconds, so a client
    /// repeating a dead token does not cost an introspection call per request.
    #[serde(default = "default_inactive_cache")]
    pub inactive_cache_seconds: u64,
    /// Opaque tokens starting with one of these are this issuer's (the longest matching
    /// prefix of any issuer wins).
    #[serde(default)]
    pub token_prefixes: Vec<String>,
    /// Opaque tokens that match no issuer's prefix are this issuer's (at most one issuer).
    #[serde(default)]
    pub default: bool,
}

fn default_timeout_ms() -> u64 {
    2_000
}
fn default_max_cache() -> u64 {
    300
}
fn default_inactive_cache() -> u64 {
    10
}

impl IntrospectionConfig {
    /// Why this section cannot work, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        let endpoint = match url::Url::parse(&self.endpoint) {
            Ok(u) => u,
            Err(_) => return Some(format!("`endpoint` `{}` is not a URL", self.endpoint)),
        };
        let loopback = match endpoint.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        };
        match endpoint.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Some(
                    "`endpoint` must be https (http only to a loopback address): the request carries the token and Arbiter's credentials".into(),
                )
            }
        }
        if self.client_id.is_empty() {
            return Some("`client_id` is empty".into());
        }
        let secret = self.client_secret.is_some() || self.client_secret_file.is_some();
        let key = self.private_key_file.is_some();
        let cert = self.client_cert_file.is_some() || self.client_key_file.is_some();
        let method = self.auth_method.name();
        let (needs, unused) = match self.auth_method {
            IntrospectionAuth::ClientSecretBasic | IntrospectionAuth::ClientSecretPost => (
                (self.client_secret.is_some() != self.client_secret_file.is_some())
                    .then_some(())
                    .ok_or("exactly one of `client_secret` or `client_secret_file`"),
                key || cert,
            ),
            IntrospectionAuth::PrivateKeyJwt => (
                key.then_some(()).ok_or("`private_key_file`"),
                secret || cert,
            ),
            IntrospectionAuth::TlsClientAuth => (
                (self.client_cert_file.is_some() && self.client_key_file.is_some())
                    .then_some(())
                    .ok_or("`client_cert_file` and `client_key_file`"),
                secret || key,
            ),
        };
        if let Err(needed) = needs {
            return Some(format!("auth_method `{method}` needs {needed}"));
        }
        if unused {
            return Some(format!(
                "auth_method `{method}` does not use the other methods' secrets, keys or certificates: remove them"
            ));
        }
        if self.auth_method == IntrospectionAuth::TlsClientAuth && endpoint.scheme() != "https" {
            return Some("auth_method `tls_client_auth` needs an https `endpoint`".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Some("`timeout_ms` must be 1 to 60000".into());
        }
        if self.token_prefixes.iter().any(String::is_empty) {
            return Some("`token_prefixes` has an empty prefix".into());
        }
        None
    }
}

impl fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("client_secret_file", &self.client_secret_file)
            .field("private_key_file", &self.private_key_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("jwt_response", &self.jwt_response)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_cache_seconds", &self.max_cache_seconds)
            .field("inactive_cache_seconds", &self.inactive_cache_seconds)
            .field("token_prefixes", &self.token_prefixes)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}
