//! Software statements end to end over real HTTP: request → review → issue → register
//! (RFC 7591) → token → `Authorize`, the deny and revoke paths, statements that must be
//! refused, RFC 7592 management, the Cedar-guarded workflow endpoints, and the audit trail.

use arbiter::grpc::proto::Reason;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::*;

async fn register(http: &Http, body: Value) -> (u16, Value) {
    http.call("POST", "/register", None, Some(body)).await
}

#[tokio::test]
async fn request_review_issue_register_token_authorize_and_revoke() {
    let mut server = TestServer::start().await;
    let http = Http::new(&server);
    let developer = bootstrap(&server, &http, "arbiter.ssa.request").await;
    let reviewer = bootstrap(&server, &http, "arbiter.ssa.review").await;

    // The workflow endpoints are guarded by the policies.
    let (status, body) = http
        .call(
            "POST",
            "/ssa/requests",
            None,
            Some(new_request("x", &["read"])),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    let (status, body) = http
        .call("GET", "/ssa/review/requests", Some(&developer), None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );

    let (status, request) = http
        .call(
            "POST",
            "/ssa/requests",
            Some(&developer),
            Some(new_request("ledger-sync", &["read", "write", "payment"])),
        )
        .await;
    assert_eq!(status, 201, "{request}");
    assert_eq!(request["status"], "pending");
    let id = request["id"].as_str().unwrap().to_owned();

    let (status, body) = http
        .call(
            "POST",
            &format!("/ssa/review/requests/{id}/approve"),
            Some(&developer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "a requester cannot approve: {body}");
    let (status, pending) = http
        .call(
            "GET",
            "/ssa/review/requests?status=pending",
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(pending
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == id.as_str()));

    let (status, body) = http
        .call(
            "POST",
            &format!("/ssa/review/requests/{id}/approve"),
            Some(&reviewer),
            Some(json!({ "scopes": ["read", "admin"] })),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "only narrowing: {body}"
    );
    let (status, approved) = http
        .call("POST", &format!("/ssa/review/requests/{id}/approve"), Some(&reviewer),
            Some(json!({ "scopes": ["read"], "validity_seconds": 3600, "reason": "read-only is enough" })))
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    let (status, again) = http
        .call(
            "POST",
            &format!("/ssa/review/requests/{id}/approve"),
            Some(&reviewer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "{again}");

    // The requester sees the outcome and the statement.
    let (status, mine) = http
        .call(
            "GET",
            &format!("/ssa/requests/{id}"),
            Some(&developer),
            None,
        )
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["reason"], "read-only is enough");
    let statement = mine["software_statement"].as_str().unwrap().to_owned();
    let jti = mine["statement_jti"].as_str().unwrap().to_owned();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&statement)
        .unwrap()
        .claims;
    assert_eq!(claims["authorization"]["allowed_scopes"], json!(["read"]));
    assert_eq!(claims["software_name"], "ledger-sync");
    assert_eq!(claims["software_version"], "1.2");
    assert_eq!(claims["org_name"], "Example Corp");
    assert_eq!(claims["iss"], server.config.oauth.issuer.as_str());
    let (_, metadata) = http
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await;
    assert_eq!(
        metadata["registration_endpoint"],
        format!("{}/register", server.config.oauth.issuer)
    );
    // A stock verifier checks it against the published statement keys.
    let (_, ssa_jwks) = http.call("GET", "/ssa/jwks.json", None, None).await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(ssa_jwks).unwrap();
    let header = jsonwebtoken::decode_header(&statement).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(
        &statement,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();

    // Register with it: the statement wins, and the scopes are narrowed to it.
    let (status, registered) = register(
        &http,
        json!({
            "software_statement": statement,
            "client_name": "Ledger Sync",
            "scope": "read write",
            "software_name": "something else",
        }),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["scope"], "read");
    assert_eq!(
        registered["software_name"], "ledger-sync",
        "statement claims take precedence"
    );
    assert_eq!(registered["client_name"], "Ledger Sync");
    assert_eq!(registered["grant_types"], json!(["client_credentials"]));
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();
    let rat = registered["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        registered["registration_client_uri"],
        format!("{}/register/{client_id}", server.config.oauth.issuer)
    );
    let (status, replay) = register(&http, json!({ "software_statement": statement })).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_software_statement")),
        "{replay}"
    );

    // Token and decision: within the statement's scopes only.
    let (status, granted) = http.token(&client_id, &secret, "read write").await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["scope"], "read");
    let token = granted["access_token"].as_str().unwrap().to_owned();
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    let r = server.authorize(&token, "POST", "/items", json!({})).await;
    assert_eq!(reason(&r), Reason::InsufficientScope, "{r:?}");

    // RFC 7592: read, and an update that cannot widen the scopes.
    let (status, read) = http
        .call("GET", &format!("/register/{client_id}"), Some(&rat), None)
        .await;
    assert_eq!(status, 200, "{read}");
    assert!(read.get("client_secret").is_none());
    let (status, updated) = http
        .call("PUT", &format!("/register/{client_id}"), Some(&rat),
            Some(json!({ "client_id": client_id, "client_name": "Ledger Sync 2", "scope": "read write payment" })))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["scope"], "read");
    assert_eq!(updated["client_name"], "Ledger Sync 2");
    let (status, _) = http
        .call(
            "GET",
            &format!("/register/{client_id}"),
            Some("wrong"),
            None,
        )
        .await;
    assert_eq!(status, 401);

    // Revoke: the client is disabled and its token is refused at once.
    let (status, body) = http
        .call(
            "POST",
            &format!("/ssa/review/statements/{jti}/revoke"),
            Some(&reviewer),
            Some(json!({ "reason": "" })),
        )
        .await;
    assert_eq!(status, 400, "a revocation needs a reason: {body}");
    let (status, revoked) = http
        .call(
            "POST",
            &format!("/ssa/review/statements/{jti}/revoke"),
            Some(&reviewer),
            Some(json!({ "reason": "vendor breach" })),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["disabled_clients"], json!([client_id]));
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
    let (status, body) = http.token(&client_id, &secret, "read").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = register(&http, json!({ "software_statement": statement })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unapproved_software_statement")),
        "{body}"
    );

    // The audit trail, by request, statement and client.
    let (status, by_request) = http
        .call(
            "GET",
            &format!("/ssa/review/audit?request_id={id}"),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let actions = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        actions(&by_request),
        ["ssa.request", "ssa.approve", "ssa.revoke"]
    );
    assert_eq!(by_request[1]["reason"], "read-only is enough");
    assert!(by_request[1]["actor"]
        .as_str()
        .unwrap()
        .starts_with("Client::"));
    let (_, by_statement) = http
        .call(
            "GET",
            &format!("/ssa/review/audit?statement_jti={jti}"),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(
        actions(&by_statement),
        [
            "ssa.approve",
            "client.register",
            "client.update",
            "ssa.revoke"
        ]
    );
    let (_, by_client) = http
        .call(
            "GET",
            &format!("/ssa/review/audit?client_id={client_id}"),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(actions(&by_client), ["client.register", "client.update"]);
    let (status, _) = http
        .call("GET", "/ssa/review/audit", Some(&developer), None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn denied_requests_carry_the_reason_and_stay_private() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let developer = bootstrap(&server, &http, "arbiter.ssa.request").await;
    let other = bootstrap(&server, &http, "arbiter.ssa.request").await;
    let reviewer = bootstrap(&server, &http, "arbiter.ssa.review").await;
    let (_, request) = http
        .call(
            "POST",
            "/ssa/requests",
            Some(&developer),
            Some(new_request("scraper", &["read"])),
        )
        .await;
    let id = request["id"].as_str().unwrap();
    let (status, _) = http
        .call("GET", &format!("/ssa/requests/{id}"), Some(&other), None)
        .await;
    assert_eq!(status, 404, "another requester cannot see it");
    let (status, body) = http
        .call(
            "POST",
            &format!("/ssa/review/requests/{id}/deny"),
            Some(&reviewer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 400, "a denial needs a reason: {body}");
    let (status, _) = http
        .call(
            "POST",
            &format!("/ssa/review/requests/{id}/deny"),
            Some(&reviewer),
            Some(json!({ "reason": "no business need" })),
        )
        .await;
    assert_eq!(status, 200);
    let (_, mine) = http
        .call("GET", "/ssa/requests", Some(&developer), None)
        .await;
    assert_eq!(mine[0]["status"], "denied");
    assert_eq!(mine[0]["reason"], "no business need");
    assert!(mine[0].get("software_statement").is_none());
    let (_, theirs) = http.call("GET", "/ssa/requests", Some(&other), None).await;
    assert_eq!(theirs, json!([]));
    let (status, _) = http
        .call(
            "POST",
            &format!("/ssa/review/requests/{id}/approve"),
            Some(&reviewer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "a denied request cannot be approved later");
}

#[tokio::test]
async fn bad_statements_are_refused_with_the_right_error() {
    let regulator = TestKey::es256("regulator-1");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let jwks_file = dir.path().join("regulator.json");
    std::fs::write(&jwks_file, json!({ "keys": [regulator.jwk] }).to_string()).unwrap();
    let server = TestServer::start_in(dir, |c| {
        c.ssa.trusted_issuers = vec![arbiter::config::StatementIssuerConfig {
            issuer: "https://regulator.example".into(),
            jwks_url: None,
            jwks_file: Some(jwks_file.clone()),
        }];
    })
    .await;
    let http = Http::new(&server);
    let now = now() as i64;
    let claims = |iss: &str, jti: &str, exp: i64| {
        json!({
            "iss": iss, "iat": now, "exp": exp, "jti": jti, "software_id": "sw-1",
            "software_name": "fintech app", "grant_types": ["client_credentials"],
            "authorization": { "allowed_scopes": ["read"] },
        })
    };
    // A trusted external issuer's statement registers.
    let good = regulator.sign(&claims("https://regulator.example", "reg-1", now + 600));
    let (status, body) = register(&http, json!({ "software_statement": good })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["scope"], "read");
    let (status, body) = register(&http, json!({ "software_statement": good })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_software_statement")),
        "replayed jti: {body}"
    );

    let own_issuer = server.config.oauth.issuer.clone();
    let own_key = &server.arbiter.ssa().unwrap().keys().current().active;
    let forger = TestKey::es256(&own_key.kid);
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let cases = [
        (
            "forged: our iss and kid, another key",
            forger.sign(&claims(&own_issuer, "f-1", now + 600)),
            "invalid_software_statement",
        ),
        (
            "expired",
            own_key
                .sign_jwt("JWT", &claims(&own_issuer, "e-1", now - 3600))
                .unwrap(),
            "invalid_software_statement",
        ),
        (
            "untrusted issuer",
            TestKey::es256("x").sign(&claims("https://rogue.example", "u-1", now + 600)),
            "unapproved_software_statement",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none"})),
                b64(&claims(&own_issuer, "n-1", now + 600))
            ),
            "invalid_software_statement",
        ),
        (
            "our key, never issued here",
            own_key
                .sign_jwt("JWT", &claims(&own_issuer, "x-1", now + 600))
                .unwrap(),
            "unapproved_software_statement",
        ),
        (
            "not a JWT",
            "garbage".to_owned(),
            "invalid_software_statement",
        ),
    ];
    for (name, jwt, code) in cases {
        let (status, body) = register(&http, json!({ "software_statement": jwt })).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(code)),
            "{name}: {body}"
        );
    }
    let (status, body) = register(&http, json!({ "client_name": "no statement" })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_software_statement")),
        "closed registration: {body}"
    );
    let (status, body) = register(&http, json!({
        "software_statement": regulator.sign(&claims("https://regulator.example", "reg-2", now + 600)),
        "grant_types": ["authorization_code"],
    })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (201, None),
        "statement grant types win over the request's: {body}"
    );
    let (status, body) = register(&http, json!({
        "software_statement": regulator.sign(&claims("https://regulator.example", "reg-3", now + 600)),
        "redirect_uris": ["http://evil.example/cb"],
    })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_redirect_uri")),
        "{body}"
    );
}

#[tokio::test]
async fn open_registration_is_configuration() {
    let server = TestServer::start_with(|c| c.oauth.open_registration = true).await;
    let http = Http::new(&server);
    let (status, body) = register(&http, json!({ "client_name": "open", "scope": "read" })).await;
    assert_eq!(status, 201, "{body}");
    let (status, token) = http
        .token(
            body["client_id"].as_str().unwrap(),
            body["client_secret"].as_str().unwrap(),
            "read",
        )
        .await;
    assert_eq!(status, 200, "{token}");
    // Deleting it (RFC 7592) refuses its tokens at once.
    let rat = body["registration_access_token"].as_str().unwrap();
    let (status, _) = http
        .call(
            "DELETE",
            &format!("/register/{}", body["client_id"].as_str().unwrap()),
            Some(rat),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let mut server = server;
    let r = server
        .authorize(
            token["access_token"].as_str().unwrap(),
            "GET",
            "/item/1",
            json!({}),
        )
        .await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
}

#[tokio::test]
async fn a_statement_with_a_jwks_uri_registers_a_private_key_jwt_client() {
    let regulator = TestKey::es256("regulator-1");
    let client_key = TestKey::es256("app-key-1");
    let idp = TestIdp::start(&[&client_key]).await;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let jwks_file = dir.path().join("regulator.json");
    std::fs::write(&jwks_file, json!({ "keys": [regulator.jwk] }).to_string()).unwrap();
    let server = TestServer::start_in(dir, |c| {
        c.ssa.trusted_issuers = vec![arbiter::config::StatementIssuerConfig {
            issuer: "https://regulator.example".into(),
            jwks_url: None,
            jwks_file: Some(jwks_file.clone()),
        }];
    })
    .await;
    let http = Http::new(&server);
    let now = now() as i64;
    let statement = regulator.sign(&json!({
        "iss": "https://regulator.example", "iat": now, "exp": now + 600, "jti": "reg-uri-1",
        "software_id": "sw-uri", "software_name": "keyed app",
        "jwks_uri": idp.jwks_url, "authorization": { "allowed_scopes": ["read"] },
    }));
    let (status, registered) = register(&http, json!({ "software_statement": statement })).await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["token_endpoint_auth_method"], "private_key_jwt");
    assert!(registered.get("client_secret").is_none());
    let client_id = registered["client_id"].as_str().unwrap();
    let issuer = server.config.oauth.issuer.clone();
    let assertion = client_key.sign(&json!({
        "iss": client_id, "sub": client_id, "aud": issuer,
        "iat": now, "exp": now + 60, "jti": "assert-1",
    }));
    let (status, body) = assertion_grant(&format!("{}/token", http.base), &assertion).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");
    assert_eq!(
        idp.fetches(),
        1,
        "the client's keys were fetched from its jwks_uri once"
    );
}
