//! The one JSON error body of every HTTP route: `{"error": …, "error_description": …}`
//! (RFC 6749 §5.2, RFC 6750 §3, RFC 7591 §3.2.2 share it), never cached, with a
//! `WWW-Authenticate` challenge when there is one.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The error code (`invalid_request`, `invalid_token`, `not_found`, …).
    pub code: Cow<'static, str>,
    /// Safe to show: never a secret, never a token.
    pub description: String,
    /// The `WWW-Authenticate` value, if any.
    pub challenge: Option<String>,
}

impl ApiError {
    /// An error without a challenge.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            description: description.into(),
            challenge: None,
        }
    }

    /// The same error with a `WWW-Authenticate` challenge.
    pub fn with_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.challenge = Some(challenge.into());
        self
    }

    /// A `400 invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
}

impl From<super::BearerError> for ApiError {
    fn from(e: super::BearerError) -> Self {
        Self::invalid_request(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.code, "error_description": self.description })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(v) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}
