//! The error every OAuth endpoint answers with (RFC 6749 §5.2), shared by the token
//! endpoint and the checks it calls; imports nothing of `oauth`.

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

    /// The HTTP status RFC 6749 §5.2 gives the code; `server_error` (the store or signing
    /// failed: not the client's fault) is a 500, as in RFC 6749 §4.1.2.1.
    pub fn status(&self) -> u16 {
        match self.code {
            "invalid_client" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }
}
