//! Any request target the gateway can receive: the PDP refuses it, or decides on exactly the
//! path a WHATWG upstream serves.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Any text at all: never a panic.
    let _ = arbiter::policy::path::normalize(text);
    let target = format!("/{text}");
    if axum::http::uri::PathAndQuery::try_from(target.as_str()).is_err() {
        return;
    }
    if let Ok(decided) = arbiter::policy::path::normalize(&target) {
        let url = url::Url::parse(&format!("http://upstream.example{target}")).unwrap();
        let seen = percent_encoding::percent_decode_str(url.path()).decode_utf8().unwrap();
        assert_eq!(decided, seen, "{target:?}");
    }
});
