//! Any `/token` body (and `Authorization` value): a request or an OAuth error; never a panic.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (authorization, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Ok(v) = HeaderValue::from_bytes(authorization) {
        if !authorization.is_empty() {
            headers.insert(header::AUTHORIZATION, v);
        }
    }
    let _ = arbiter::oauth::http::parse_token_request(&headers, body);
});
