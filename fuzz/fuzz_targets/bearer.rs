//! Any `Authorization` value: one RFC 6750 b64token, or an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(token) = arbiter::http::bearer_value(text) {
            let body = token.trim_end_matches('=');
            assert!(!body.is_empty());
            assert!(body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
        }
    }
});
