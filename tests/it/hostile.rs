//! Hostile tokens, paths and contexts: each is a deny with the right reason, and the server
//! keeps serving afterwards.

use arbiter::grpc::proto::Reason;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::*;

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn hostile_tokens_are_invalid_and_the_server_survives() {
    let good = TestKey::rs256("good");
    let rogue = TestKey::rs256("rogue");
    let idp = TestIdp::start(&[&good]).await;
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    let claims = idp.claims("svc", "read");
    let now = now();

    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("good".into());
    let hs_with_public_key = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &EncodingKey::from_secret(&good.public_der),
    )
    .unwrap();
    let valid = good.sign(&claims);
    let mut cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims)
            ),
        ),
        (
            "alg none with kid",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": "good"})),
                b64(&claims)
            ),
        ),
        (
            "HS256 signed with the issuer's public key",
            hs_with_public_key,
        ),
        ("unknown kid", good.sign_as("nobody-has-this-kid", &claims)),
        (
            "valid signature by another key under a known kid",
            rogue.sign_as("good", &claims),
        ),
        (
            "wrong issuer",
            good.sign(&with(&claims, "iss", json!("https://evil.example"))),
        ),
        (
            "wrong audience",
            good.sign(&with(&claims, "aud", json!("other-api"))),
        ),
        (
            "expired",
            good.sign(&with(
                &with(&claims, "exp", json!(now - 3600)),
                "iat",
                json!(now - 7200),
            )),
        ),
        (
            "not yet valid",
            good.sign(&with(&claims, "nbf", json!(now + 3600))),
        ),
        ("no exp", good.sign(&claims_without_value(&claims, "exp"))),
        ("truncated", valid[..valid.len() - 10].to_string()),
        (
            "signature stripped",
            valid[..valid.rfind('.').unwrap() + 1].to_string(),
        ),
        ("payload swapped", {
            let parts: Vec<&str> = valid.split('.').collect();
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&with(&claims, "scope", json!("read write admin"))),
                parts[2]
            )
        }),
        (
            "random bytes",
            "q8Zf0Wb1kP3x9-not-a-jwt-\u{1F600}".to_string(),
        ),
        ("two parts", "abc.def".to_string()),
        ("four parts", format!("{valid}.extra")),
        ("dev issuer token with wrong audience", {
            let mut c = server.config.dev_issuer.clone();
            c.audience = "someone-else".into();
            arbiter::token::mint::mint(&server.dev_key, &c.issuer, &c.audience, &Default::default())
                .unwrap()
        }),
    ];
    cases.push((
        "header not JSON",
        format!(
            "{}.{}.sig",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{oops"),
            b64(&claims)
        ),
    ));

    for (name, token) in &cases {
        let r = server.authorize(token, "GET", "/item/1", json!({})).await;
        assert_eq!(reason(&r), Reason::InvalidToken, "{name}: {r:?}");
        assert!(!allowed(&r), "{name}");
        assert!(!r.errors.is_empty(), "{name}: a reason is given");
        for e in &r.errors {
            assert!(
                !e.contains(token.as_str()),
                "{name}: the token never appears in errors"
            );
        }
    }

    // A 1 MiB token is an invalid request, not a crash.
    let huge = "a".repeat(1024 * 1024);
    let r = server.authorize(&huge, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidRequest, "{r:?}");

    // And the server still serves: the valid token works, by every algorithm family too.
    let r = server.authorize(&valid, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
}

fn with(claims: &Value, key: &str, value: Value) -> Value {
    let mut c = claims.clone();
    c[key] = value;
    c
}

fn claims_without(claims: &Value, key: &str) -> serde_json::Map<String, Value> {
    let mut c = claims.as_object().unwrap().clone();
    c.remove(key);
    c
}

fn claims_without_value(claims: &Value, key: &str) -> Value {
    Value::Object(claims_without(claims, key))
}

#[tokio::test]
async fn hostile_paths_are_invalid_requests() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    for path in [
        "/item/../fido/config",
        "/item/%2e%2e/fido/config",
        "/item/%2E%2E",
        "/item/./1",
        "/item%2F1",
        "/item/1%00",
        "/item/\u{0}",
        "/item/%ff%fe",
        "/item/%zz",
        // WHATWG parsers read `\` as `/`: this would be /fido/config upstream.
        "/item/1\\..\\..\\fido\\config",
        "/item/1%5c..%5c..%5cfido%5cconfig",
        "item/1",
        "",
    ] {
        let r = server.authorize(&token, "GET", path, json!({})).await;
        assert_eq!(reason(&r), Reason::InvalidRequest, "{path:?}: {r:?}");
    }
    let long = format!("/item/{}", "a".repeat(5000));
    let r = server.authorize(&token, "GET", &long, json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidRequest);

    // The query string is ignored and percent-decoding happens once.
    let r = server
        .authorize(&token, "GET", "/item/1?debug=true&admin=1", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    let r = server
        .authorize(&token, "GET", "/item/a%20b", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    let r = server
        .authorize(&token, "GET", "/item/%252e%252e", json!({}))
        .await;
    assert_eq!(
        reason(&r),
        Reason::Allowed,
        "double-encoded dots are a literal segment: {r:?}"
    );
    let r = server.authorize(&token, "GET", "/item%2f", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidRequest);
}

#[tokio::test]
async fn hostile_contexts_are_invalid_requests() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let mut deep = json!("bottom");
    for _ in 0..10 {
        deep = json!({ "x": deep });
    }
    let big = json!({ "blob": "x".repeat(70 * 1024) });
    let many_keys: serde_json::Map<String, Value> =
        (0..5000).map(|i| (format!("key{i}"), json!(i))).collect();
    for (name, ctx) in [
        ("too deep", json!({ "nested": deep })),
        ("too large", big),
        ("too many keys", Value::Object(many_keys)),
        ("reserved token", json!({ "token": { "iss": "me" } })),
        ("reserved params", json!({ "params": { "id": "1" } })),
        ("fraud score not whole", json!({ "fraud_score": 1.5 })),
        (
            "employee missing a field",
            json!({ "employee": { "nationality": "NL" } }),
        ),
    ] {
        let r = server.authorize(&token, "GET", "/item/1", ctx).await;
        assert_eq!(reason(&r), Reason::InvalidRequest, "{name}: {r:?}");
        assert!(!r.errors.is_empty(), "{name}");
    }
    let r = server
        .authorize(&token, "GET", "/item/1", json!({ "fraud_score": 10 }))
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "still serving: {r:?}");
}
