//! The vocabulary other subsystems read from the configuration (listeners, client
//! certificates, signing algorithms, URL rules), defined here so `config` imports no
//! subsystem: they import it.

use std::fmt;

use serde::Deserialize;

/// What a listener asks of clients' certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCerts {
    /// No certificate is asked for.
    None,
    /// A certificate is asked for but not required, and the handshake accepts any whose
    /// owner proves possession of its key; what it is worth is decided per request (RFC
    /// 8705 client authentication at `/token`: chained to the client CA for
    /// `tls_client_auth`, registered by the client for `self_signed_tls_client_auth`).
    Optional,
    /// A certificate chaining to the client CA is required (mTLS).
    Required,
}

/// Which listener a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The gRPC API.
    Grpc,
    /// The HTTP endpoints (OAuth, AuthZEN, metrics, workflow).
    Http,
}

/// A database URL fit for messages and logs: the password replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Whether `uri` can be a resource indicator: an absolute URI without a fragment.
pub fn check_resource_uri(uri: &str) -> Result<(), &'static str> {
    match url::Url::parse(uri) {
        Ok(_) if uri.contains('#') => Err("must not have a fragment"),
        Ok(parsed) if parsed.cannot_be_a_base() && parsed.scheme() != "urn" => {
            Err("is not an absolute URI")
        }
        Ok(_) => Ok(()),
        Err(_) => Err("is not an absolute URI"),
    }
}

/// An algorithm Arbiter signs with. `none` and HMAC can never be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256 (the default).
    #[default]
    ES256,
    /// Ed25519.
    EdDSA,
    /// RSA PKCS#1 v1.5 with SHA-256 (2048-bit keys), for interoperability.
    RS256,
}

impl SigningAlg {
    /// Every algorithm, in order of preference.
    pub const ALL: [Self; 3] = [Self::ES256, Self::EdDSA, Self::RS256];

    /// The JOSE name (`ES256`, `EdDSA`, `RS256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
        }
    }
}

impl std::str::FromStr for SigningAlg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("unsupported signing algorithm `{s}` (use ES256, EdDSA or RS256)")
            })
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
