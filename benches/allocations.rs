//! Heap allocations per decision, counted (issue 15): one decision with a cached token on
//! the bundled policies, with an empty context and with the `ip` a gateway sends, and on a
//! route whose policies read the token's claims, as
//! `decide` makes it (no answer, log line or wire encoding). A counting global allocator
//! (dhat's), so it lives apart from the timing benches.
//!
//! `cargo bench --bench allocations`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arbiter::decision::{verdict, Caller, Input};
use arbiter::policy::PolicySnapshot;
use arbiter::token::{digest, Verifier};
use arbiter::Config;
use serde_json::{json, Map, Value};

// dhat's counting allocator (the crate forbids `unsafe`, so not a hand-written one).
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SECRET: &str = "a-benchmark-secret-of-at-least-32-bytes";

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config: Config = toml::from_str(&format!(
        "[[issuers]]\nissuer = \"https://bench.example\"\naudiences = [\"arbiter\"]\nhmac_secret = \"{SECRET}\"\n"
    ))
    .unwrap();
    let verifier = Verifier::new(&config, Vec::new()).unwrap();
    let now = arbiter::clock::now();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({
            "iss": "https://bench.example", "aud": "arbiter", "sub": "demo", "client_id": "demo",
            "scope": "read https://jans.io/oauth/config/fido2.write", "iat": now, "exp": now + 3600, "jti": "bench-1",
        }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    runtime.block_on(verifier.verify(&token)).unwrap();
    let snapshot =
        PolicySnapshot::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .unwrap();
    let mut with_ip = Map::new();
    with_ip.insert("ip".into(), Value::from("192.0.2.1"));
    let cases = [
        ("GET", "/item/42", "empty context", Map::new()),
        ("GET", "/item/42", "ip in the context", with_ip),
        // The config API's MFA rule reads `context.token`: the claims record is used.
        ("PUT", "/fido/config", "empty context", Map::new()),
    ];
    for (method, path, name, context) in cases {
        let once = || {
            let verified = verifier.cached(&digest(&token)).unwrap();
            let input = Input {
                method,
                path,
                resource: None,
                context: &context,
                explain: false,
            };
            let verdict = verdict(&snapshot, &input, Caller::Token(&verified));
            assert!(verdict.allowed, "{verdict:?}");
        };
        // Warm: caches (extension values, route index) filled as in a running server.
        for _ in 0..100 {
            once();
        }
        let rounds = 1_000u64;
        let before = dhat::HeapStats::get().total_blocks;
        for _ in 0..rounds {
            once();
        }
        let per = (dhat::HeapStats::get().total_blocks - before) as f64 / rounds as f64;
        println!("{method} {path}, cached token, {name}: {per:.1} allocations per decision");
    }
}
