//! How a deny answers over HTTP: status, error code, description and RFC 6750 challenge.

use super::proto::Reason;

/// How a deny answers over HTTP (RFC 6750 §3): the status, the error code, a description
/// safe to show, and the `WWW-Authenticate` challenge when there is one. Shared by the
/// gateway, Envoy ext_authz and the workflow routes, so they answer alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDenial {
    /// 400, 401 or 403.
    pub status: u16,
    /// `invalid_token`, `insufficient_scope`, `invalid_request`, `access_denied`, …
    pub error: &'static str,
    /// Safe to show.
    pub description: String,
    /// The `WWW-Authenticate` value, for 401 and insufficient scope.
    pub challenge: Option<String>,
}

/// Maps a deny to its HTTP answer: no token → 401 with a bare challenge; an invalid token
/// → 401 `invalid_token`; insufficient scope → 403 with the scopes that would do; an
/// invalid request → 400; any other deny → 403.
pub fn http_denial(
    realm: &str,
    reason: Reason,
    errors: &[String],
    required_scopes: &[String],
) -> HttpDenial {
    let describe = || errors.join("; ").replace(['"', '\\'], "'");
    match reason {
        Reason::MissingToken => HttpDenial {
            status: 401,
            error: "invalid_token",
            description: "a bearer token is required".into(),
            challenge: Some(www_authenticate(realm, None, "", None)),
        },
        Reason::InvalidToken => {
            let description = describe();
            HttpDenial {
                status: 401,
                error: "invalid_token",
                challenge: Some(www_authenticate(
                    realm,
                    Some("invalid_token"),
                    &description,
                    None,
                )),
                description,
            }
        }
        Reason::InsufficientScope => {
            let scope = required_scopes.join(" ");
            HttpDenial {
                status: 403,
                error: "insufficient_scope",
                description: format!("the token lacks a required scope (`{scope}` would do)"),
                challenge: Some(www_authenticate(
                    realm,
                    Some("insufficient_scope"),
                    "the token lacks a required scope",
                    Some(&scope),
                )),
            }
        }
        Reason::InvalidRequest => HttpDenial {
            status: 400,
            error: "invalid_request",
            description: describe(),
            challenge: None,
        },
        other => HttpDenial {
            status: 403,
            error: "access_denied",
            description: format!("denied by policy ({})", other.as_str_name()),
            challenge: None,
        },
    }
}

/// The answer a determining forbid shaped with `@deny_status` and `@deny_message` (a `404`
/// hides that the resource exists): that status and message, or the status's reason phrase
/// when the message is empty, with no challenge and nothing that names a policy. `None`
/// when the status is not an HTTP status (the loader admits only 400–599).
pub fn shaped_denial(status: u16, message: &str) -> Option<HttpDenial> {
    let code = axum::http::StatusCode::from_u16(status).ok()?;
    let description = if message.is_empty() {
        code.canonical_reason().unwrap_or("denied").to_owned()
    } else {
        message.to_owned()
    };
    Some(HttpDenial {
        status,
        error: "access_denied",
        description,
        challenge: None,
    })
}

/// The RFC 6750 §3 `WWW-Authenticate` value: no `error` attribute when no token was sent
/// at all; the description is reduced to printable ASCII without quotes.
pub fn www_authenticate(
    realm: &str,
    error: Option<&str>,
    description: &str,
    scope: Option<&str>,
) -> String {
    let mut value = format!("Bearer realm=\"{realm}\"");
    if let Some(e) = error {
        value.push_str(&format!(", error=\"{e}\""));
        if !description.is_empty() {
            let d: String = description
                .chars()
                .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
                .take(200)
                .collect();
            value.push_str(&format!(", error_description=\"{d}\""));
        }
    }
    if let Some(s) = scope {
        value.push_str(&format!(", scope=\"{s}\""));
    }
    value
}
