//! RFC 6750 §2.1: `Authorization: Bearer <b64token>`. The scheme is case-insensitive; the
//! token must be one b64token; a request carries at most one `Authorization` header.

use axum::http::{header, HeaderMap};

/// Why an `Authorization` header is not a usable bearer token. Every variant is an RFC 6750
/// `invalid_request` (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// Two or more `Authorization` headers.
    #[error("more than one `Authorization` header")]
    Repeated,
    /// Another scheme (`Basic …`), or no scheme at all.
    #[error("use `Authorization: Bearer <token>`")]
    NotBearer,
    /// `Bearer` with nothing, or something that is not one b64token, after it.
    #[error("the bearer token is empty or not a single RFC 6750 b64token")]
    Malformed,
}

impl BearerError {
    /// The RFC 6750 error code.
    pub fn code(self) -> &'static str {
        "invalid_request"
    }
}

/// The bearer token of a request: `None` without an `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    let text = value.to_str().map_err(|_| BearerError::NotBearer)?;
    bearer_value(text).map(Some)
}

/// The token of one `Authorization` value (for front doors that get headers as text, such
/// as Envoy's ext_authz, which joins repeated headers with a comma: that is malformed here).
pub fn bearer_value(value: &str) -> Result<&str, BearerError> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) =
        value
            .split_once([' ', '\t'])
            .ok_or(if value.eq_ignore_ascii_case("bearer") {
                BearerError::Malformed
            } else {
                BearerError::NotBearer
            })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::NotBearer);
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if is_b64token(token) {
        Ok(token)
    } else {
        Err(BearerError::Malformed)
    }
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_rfc_6750_header_values() {
        let cases: [(&str, Result<&str, BearerError>); 12] = [
            ("Bearer abc.def.ghi", Ok("abc.def.ghi")),
            ("bearer abc", Ok("abc")),
            ("BEARER abc", Ok("abc")),
            ("Bearer   abc", Ok("abc")),
            ("Bearer abc==", Ok("abc==")),
            ("Bearer a-b_c~d+e/f", Ok("a-b_c~d+e/f")),
            ("Bearer", Err(BearerError::Malformed)),
            ("Bearer ", Err(BearerError::Malformed)),
            ("Bearer a b", Err(BearerError::Malformed)),
            ("Bearer a,Bearer b", Err(BearerError::Malformed)),
            ("Basic dXNlcjpwYXNz", Err(BearerError::NotBearer)),
            ("abc", Err(BearerError::NotBearer)),
        ];
        for (value, expected) in cases {
            assert_eq!(bearer_value(value), expected, "{value:?}");
        }
    }

    #[test]
    fn one_authorization_header_at_most() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), Ok(None));
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        assert_eq!(bearer_token(&headers), Ok(Some("a")));
        headers.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer_token(&headers), Err(BearerError::Repeated));
    }
}
