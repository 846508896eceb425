//! One in-process decision with a cached token, for 100 to 100 000 generated route policies,
//! with an empty context and with the `ip` a gateway sends (target: median ≤ 5 µs at 100,
//! and 100 000 within 2× of 100); the same decision against Cedar's own
//! `Authorizer::is_authorized` over the same slice, request and entities (what Arbiter adds,
//! as a ratio that holds on any machine; printed as `overhead`), the cost of a first-time
//! token verification per algorithm, a cached introspected (opaque) token against a cached
//! JWT (target: the same cost), and policy queries over 10 000 policies (target:
//! milliseconds).
//!
//! `cargo bench --bench decision` (set `ARBITER_BENCH_MAX=10000` to skip the 100k set). On
//! mimalloc, as the `arbiter` binary is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use arbiter::decision::{verdict, Caller, Input};
use arbiter::policy::PolicySnapshot;
use arbiter::token::jwks::key_from_jwk;
use arbiter::token::{digest, Issuer, Verifier};
use arbiter::Config;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// The allocator the `arbiter` binary runs on (see `src/main.rs`), so the figures are the
/// server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

fn generate(dir: &Path, n: usize) {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::copy(
        bundled.join("schema.cedarschema"),
        dir.join("schema.cedarschema"),
    )
    .unwrap();
    std::fs::copy(bundled.join("guards.cedar"), dir.join("guards.cedar")).unwrap();
    let mut text = String::with_capacity(n * 200);
    for i in 0..n {
        let scope = ["read", "write", "admin", "fido"][i % 4];
        writeln!(
            text,
            "@id(\"route-{i}\")\n@scopes(\"{scope}\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/svc{i}/items/{{id}}\")\nwhen {{ context.scopes.contains(\"{scope}\") }};"
        )
        .unwrap();
    }
    std::fs::write(dir.join("routes.cedar"), text).unwrap();
}

struct Signer {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn signers() -> Vec<Signer> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    use base64::Engine;
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let ec = EncodingKey::from_ec_der(ec.to_pkcs8v1().unwrap().as_ref());
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8: Pkcs8V1Der = rsa.as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let rsa = EncodingKey::from_rsa_pem(
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n").as_bytes(),
    )
    .unwrap();
    let ed = Ed25519KeyPair::generate().unwrap();
    let ed_jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "EdDSA",
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ed.public_key().as_ref()),
    });
    let ed = EncodingKey::from_ed_der(ed.to_pkcs8v1().unwrap().as_ref());
    let jwk = |enc: &EncodingKey, alg: Algorithm| {
        let mut j = Jwk::from_encoding_key(enc, alg).unwrap();
        j.common.key_id = Some(format!("{alg:?}"));
        serde_json::to_value(j).unwrap()
    };
    vec![
        Signer {
            alg: Algorithm::RS256,
            jwk: jwk(&rsa, Algorithm::RS256),
            encoding: rsa,
        },
        Signer {
            alg: Algorithm::ES256,
            jwk: jwk(&ec, Algorithm::ES256),
            encoding: ec,
        },
        Signer {
            alg: Algorithm::EdDSA,
            jwk: ed_jwk,
            encoding: ed,
        },
    ]
}

fn token(s: &Signer, jti: u64) -> String {
    let now = arbiter::clock::now();
    let mut header = Header::new(s.alg);
    header.kid = Some(format!("{:?}", s.alg));
    let claims = json!({
        "iss": "https://bench.example", "aud": "api", "sub": "svc", "client_id": "svc",
        "scope": "read write", "iat": now, "exp": now + 3600, "jti": format!("{jti}"),
    });
    jsonwebtoken::encode(&header, &claims, &s.encoding).unwrap()
}

fn verifier(signers: &[Signer], cache: usize) -> Verifier {
    let keys = signers
        .iter()
        .map(|s| key_from_jwk(&serde_json::from_value(s.jwk.clone()).unwrap()).unwrap())
        .collect();
    let issuer = Issuer::with_static_keys("https://bench.example".into(), vec!["api".into()], keys);
    let config = Config {
        token_cache_capacity: cache,
        ..Config::default()
    };
    Verifier::new(&config, vec![issuer]).unwrap()
}

/// A runtime, the signers, a verifier caching 1 000 tokens, and a token it has already
/// verified (so each decision finds it in the cache, as a server's repeat caller does).
fn with_cached_token() -> (tokio::runtime::Runtime, Vec<Signer>, Verifier, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let signers = signers();
    let verifier = verifier(&signers, 1000);
    let cached_token = token(&signers[1], 1);
    runtime.block_on(verifier.verify(&cached_token)).unwrap();
    (runtime, signers, verifier, cached_token)
}

fn bench_decisions(c: &mut Criterion) {
    // The server's subscriber with traces off (log lines at `info`, here to nowhere), so the
    // decision's spans cost what they cost in `arbiter serve`: a disabled-callsite check.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::sink)
        .try_init();
    let (runtime, signers, verifier, cached_token) = with_cached_token();

    let max: usize = std::env::var("ARBITER_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut group = c.benchmark_group("decision_cached_token");
    group.measurement_time(Duration::from_secs(5));
    // What a gateway sends: the caller's address (an `ip` extension value for Cedar, read by
    // the bundled `deny-risky-network` guard), and an empty context for comparison.
    let empty = Map::new();
    let Value::Object(with_ip) = json!({"ip": "192.0.2.1"}) else {
        unreachable!()
    };
    for n in [100usize, 1_000, 10_000, 100_000]
        .into_iter()
        .filter(|&n| n <= max)
    {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), n);
        let started = std::time::Instant::now();
        let snapshot = PolicySnapshot::load(dir.path()).unwrap();
        eprintln!("loaded {n} policies in {:?}", started.elapsed());
        // a route in the middle of the table, allowed (scope `read` or `write`)
        let path = format!("/svc{}/items/42", (n / 2) & !3);
        for (name, context) in [("empty", &empty), ("ip", &with_ip)] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    let verified = verifier.cached(&digest(&cached_token)).unwrap();
                    allowed_get(&snapshot, &path, context, &verified)
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("first_time_verification");
    let uncached = verifier_uncached(&signers);
    for s in &signers {
        let mut i = 0u64;
        let tokens: Vec<String> = (0..64).map(|j| token(s, 1000 + j)).collect();
        group.bench_function(format!("{:?}", s.alg), |b| {
            b.iter(|| {
                i += 1;
                runtime
                    .block_on(uncached.verify(&tokens[(i % 64) as usize]))
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bench_queries(c: &mut Criterion) {
    use arbiter::policy::query::{query, Query};
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 10_000);
    let snapshot = PolicySnapshot::load(dir.path()).unwrap();
    let started = std::time::Instant::now();
    snapshot.query_index();
    eprintln!(
        "query index over 10 000 policies built in {:?}",
        started.elapsed()
    );
    let mut group = c.benchmark_group("policy_query_10k");
    let cases = [
        (
            "scope_and_attribute",
            Query {
                scopes: vec!["admin".into()],
                attributes: vec!["context.scopes".into()],
                ..Query::default()
            },
            2_500,
        ),
        (
            "endpoint",
            Query {
                endpoints: vec!["GET /svc5000/items/1".into()],
                ..Query::default()
            },
            3,
        ),
        (
            "annotation_and_value",
            Query {
                annotations: vec!["tag=risk".into()],
                values: vec!["203.0.113.0/24".into()],
                ..Query::default()
            },
            1,
        ),
    ];
    for (name, q, expected) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let hits = query(&snapshot, &q).unwrap();
                assert_eq!(hits.len(), expected, "{name}");
                hits
            })
        });
    }
    group.finish();
}

/// A cached opaque token, introspected once at a stand-in for an external authorization
/// server (an axum route answering RFC 7662 JSON), against a cached JWT: both through
/// `Verifier::verify` (cache, revocation and disabled-client checks) and one decision.
fn bench_token_kinds(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let exp = arbiter::clock::now() + 3600;
    let answer = json!({
        "active": true, "iss": "https://as.bench", "aud": "api", "client_id": "svc",
        "sub": "svc", "scope": "read write", "exp": exp, "token_type": "Bearer",
    });
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move || {
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await });
    let mut config: Config = toml::from_str(&format!(
        "[[issuers]]\nissuer = \"https://as.bench\"\naudiences = [\"api\"]\n[issuers.introspection]\nendpoint = \"http://{addr}/introspect\"\nclient_id = \"arbiter\"\nclient_secret = \"bench\"\ndefault = true\n"
    ))
    .unwrap();
    config.token_cache_capacity = 1000;
    let signers = signers();
    let keys =
        vec![key_from_jwk(&serde_json::from_value(signers[1].jwk.clone()).unwrap()).unwrap()];
    let issuer = Issuer::with_static_keys("https://bench.example".into(), vec!["api".into()], keys);
    let verifier = Verifier::new(&config, vec![issuer]).unwrap();
    let jwt = token(&signers[1], 7);
    let opaque = "2YotnFZFEjr1zCsicMWpAA-bench-opaque-token";
    for t in [jwt.as_str(), opaque] {
        runtime.block_on(verifier.verify(t)).unwrap();
    }
    let snapshot =
        PolicySnapshot::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap();
    let context = Map::new();
    let mut group = c.benchmark_group("cached_token_decision");
    for (name, t) in [("jwt", jwt.as_str()), ("introspected", opaque)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let verified = runtime.block_on(verifier.verify(t)).unwrap();
                allowed_get(&snapshot, "/item/42", &context, &verified)
            })
        });
    }
    group.finish();
}

/// One decision of `GET path` with a verified token, which the policies allow.
fn allowed_get(
    snapshot: &PolicySnapshot,
    path: &str,
    context: &Map<String, Value>,
    verified: &arbiter::token::VerifiedToken,
) -> arbiter::decision::Verdict {
    let input = Input {
        method: "GET",
        path,
        resource: None,
        context,
        explain: false,
    };
    let v = verdict(snapshot, &input, Caller::Token(verified));
    assert!(v.allowed);
    v
}

fn verifier_uncached(signers: &[Signer]) -> Verifier {
    verifier(signers, 0)
}

/// Arbiter's decision against the floor under it: Cedar's `Authorizer::is_authorized` over the
/// same route slice with the request and entities Arbiter builds for it (principal, action,
/// endpoint, the `scopes` and `ip` the slice reads), built once outside the loop. Both are
/// timed by criterion, and again here, interleaved in one run, for the ratio.
fn bench_overhead(c: &mut Criterion) {
    use cedar_policy::{Authorizer, Context, Decision, EntityUid, Request};
    let (_, _, verifier, cached_token) = with_cached_token();
    let Value::Object(with_ip) = json!({"ip": "192.0.2.1"}) else {
        unreachable!()
    };
    let n = 100;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), n);
    let snapshot = PolicySnapshot::load(dir.path()).unwrap();
    let path = format!("/svc{}/items/42", (n / 2) & !3);
    let endpoint = snapshot
        .routes
        .by_template(&format!("/svc{}/items/{{id}}", (n / 2) & !3))
        .unwrap();
    let action: EntityUid = r#"Action::"GET""#.parse().unwrap();
    let context = Context::from_json_value(
        json!({
            "scopes": ["read", "write"],
            "ip": {"__extn": {"fn": "ip", "arg": "192.0.2.1"}},
        }),
        Some((&snapshot.schema, &action)),
    )
    .unwrap();
    let request = Request::new(
        r#"Client::"svc""#.parse().unwrap(),
        action,
        endpoint.uid.clone(),
        context,
        Some(&snapshot.schema),
    )
    .unwrap();
    let authorizer = Authorizer::new();
    let arbiter = || {
        let verified = verifier.cached(&digest(&cached_token)).unwrap();
        allowed_get(&snapshot, &path, &with_ip, &verified)
    };
    let cedar = || {
        let response = authorizer.is_authorized(&request, &endpoint.policies, &snapshot.entities);
        assert_eq!(response.decision(), Decision::Allow);
        response
    };

    let mut group = c.benchmark_group("decision_vs_cedar");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("arbiter_ip", n), |b| b.iter(arbiter));
    group.bench_function(BenchmarkId::new("cedar_is_authorized", n), |b| {
        b.iter(cedar)
    });
    group.finish();

    // The ratio from one interleaved run: the median of 15 rounds of 20 000 each.
    let time = |f: &dyn Fn()| {
        let started = std::time::Instant::now();
        for _ in 0..20_000 {
            f();
        }
        started.elapsed().as_nanos() as f64 / 20_000.0
    };
    let (mut a, mut r) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        a.push(time(&|| {
            std::hint::black_box(arbiter());
        }));
        r.push(time(&|| {
            std::hint::black_box(cedar());
        }));
    }
    a.sort_by(f64::total_cmp);
    r.sort_by(f64::total_cmp);
    let (a, r) = (a[7], r[7]);
    eprintln!(
        "overhead at {n} policies, ip in the context: arbiter {:.2} µs, cedar is_authorized {:.2} µs, ratio {:.2}",
        a / 1000.0,
        r / 1000.0,
        a / r
    );
}

criterion_group!(
    benches,
    bench_decisions,
    bench_overhead,
    bench_token_kinds,
    bench_queries
);
criterion_main!(benches);
