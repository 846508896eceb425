//! External issuers over a real JWKS endpoint: every algorithm family, refresh on an unknown
//! `kid` with a cooldown, rotation, stale keys kept while the issuer is down, files, HMAC.

use std::time::Duration;

use arbiter::grpc::proto::Reason;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn tokens_of_every_algorithm_family_verify_by_kid() {
    let rsa = TestKey::rs256("rsa-1");
    let ec = TestKey::es256("ec-1");
    let ed = TestKey::eddsa("ed-1");
    let idp = TestIdp::start(&[&rsa, &ec, &ed]).await;
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    for key in [&rsa, &ec, &ed] {
        let token = key.sign(&idp.claims("svc", "read"));
        let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
        assert_eq!(reason(&r), Reason::Allowed, "{:?}: {r:?}", key.alg);
        assert_eq!(r.principal.unwrap().issuer, idp.issuer);
    }
    // A key bound to ES256 does not verify an RS256 header even with a matching kid.
    let mixed = rsa.sign_as("ec-1", &idp.claims("svc", "read"));
    let r = server.authorize(&mixed, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken);
    assert!(r.errors[0].contains("does not match"), "{r:?}");
}

#[tokio::test]
async fn unknown_kid_refreshes_once_per_cooldown_and_picks_up_rotation() {
    let old = TestKey::es256("2026-01");
    let new = TestKey::es256("2026-02");
    let idp = TestIdp::start(&[&old]).await;
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    let before = idp.fetches();
    assert!(before >= 1, "fetched at start");

    // The issuer rotates: the new kid is unknown to Arbiter until it refreshes.
    idp.publish(&[&old, &new]);
    let token = new.sign(&idp.claims("svc", "read"));
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(
        reason(&r),
        Reason::Allowed,
        "refreshed on unknown kid: {r:?}"
    );
    assert_eq!(idp.fetches(), before + 1);

    // A flood of bogus kids costs at most one more fetch within the cooldown (1 s here).
    for i in 0..50 {
        let bogus = new.sign_as(&format!("bogus-{i}"), &idp.claims("svc", "read"));
        let r = server.authorize(&bogus, "GET", "/item/1", json!({})).await;
        assert_eq!(reason(&r), Reason::InvalidToken);
    }
    assert!(
        idp.fetches() <= before + 2,
        "fetches: {}",
        idp.fetches() - before
    );
}

#[tokio::test]
async fn stale_keys_keep_serving_while_the_issuer_is_down() {
    let key = TestKey::es256("k1");
    let idp = TestIdp::start(&[&key]).await;
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    idp.state
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // An unknown kid triggers a refresh that fails...
    let bogus = key.sign_as("k2", &idp.claims("svc", "read"));
    let r = server.authorize(&bogus, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken);
    // ...and the known key still verifies fresh tokens.
    let mut claims = idp.claims("svc2", "read");
    claims["jti"] = json!("another");
    let r = server
        .authorize(&key.sign(&claims), "GET", "/item/1", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
}

#[tokio::test]
async fn jwks_file_and_hmac_issuers() {
    let key = TestKey::eddsa("file-key");
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [key.jwk] }).to_string()).unwrap();
    let secret = "an-hmac-secret-that-is-long-enough-0123456789";
    let file_issuer: arbiter::config::IssuerConfig = toml::from_str(&format!(
        "issuer = \"https://files.example\"\naudiences = [\"api\"]\njwks_file = {:?}\n",
        jwks
    ))
    .unwrap();
    let hmac_issuer: arbiter::config::IssuerConfig = toml::from_str(&format!(
        "issuer = \"https://hmac.example\"\naudiences = [\"api\"]\nhmac_secret = {secret:?}\n"
    ))
    .unwrap();
    let mut server = TestServer::start_with(|c| {
        c.issuers.push(file_issuer);
        c.issuers.push(hmac_issuer);
    })
    .await;
    let now = now();
    let claims = |iss: &str| json!({ "iss": iss, "aud": ["api", "other"], "sub": "svc", "scope": "read", "exp": now + 60 });
    let r = server
        .authorize(
            &key.sign(&claims("https://files.example")),
            "GET",
            "/item/1",
            json!({}),
        )
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");

    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("https://hmac.example"),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let r = server.authorize(&hs, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");

    // HMAC is refused for an issuer that was not configured with a secret.
    let hs_file = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("https://files.example"),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let r = server
        .authorize(&hs_file, "GET", "/item/1", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
}

#[tokio::test]
async fn issuer_down_at_start_does_not_block_start_and_recovers() {
    let key = TestKey::es256("late");
    let idp = TestIdp::start(&[&key]).await;
    idp.state
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    let token = key.sign(&idp.claims("svc", "read"));
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");

    idp.state
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // After the cooldown an unknown-kid request refreshes again and succeeds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
        if reason(&r) == Reason::Allowed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
