//! The token endpoint's options over real HTTP: the signing algorithm (ES256, EdDSA, RS256)
//! checked by a stock JWT verifier and by the PDP, rotation from the CLI picked up by a
//! running server, RFC 8707 resources with per-audience scope decisions, and the legacy
//! audience of old `private_key_jwt` clients.

use std::time::Duration;

use arbiter::grpc::proto::Reason;
use arbiter::oauth::clients::{self, ClientSpec};
use serde_json::{json, Value};

use crate::support::*;

async fn create(server: &TestServer, spec: ClientSpec) -> clients::CreatedClient {
    let store = server.store().await;
    clients::create(&store, &spec).await.unwrap()
}

fn secret_client(scopes: &str) -> ClientSpec {
    ClientSpec {
        name: "options test".into(),
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        auth_method: "client_secret_basic".into(),
        ..Default::default()
    }
}

/// A token request with HTTP Basic and extra form fields; (status, body).
async fn request_token(
    server: &TestServer,
    c: &clients::CreatedClient,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(fields);
    let resp = reqwest::Client::new()
        .post(format!("http://{}/token", server.http_addr))
        .basic_auth(&c.record.client_id, c.secret.as_deref())
        .form(&form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn jwks(server: &TestServer) -> jsonwebtoken::jwk::JwkSet {
    reqwest::get(format!("http://{}/jwks.json", server.http_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn every_signing_algorithm_is_verified_by_a_stock_verifier_and_the_pdp() {
    for (name, alg) in [
        ("ES256", jsonwebtoken::Algorithm::ES256),
        ("EdDSA", jsonwebtoken::Algorithm::EdDSA),
        ("RS256", jsonwebtoken::Algorithm::RS256),
    ] {
        let mut server =
            TestServer::start_with(|c| c.oauth.signing_alg = name.parse().unwrap()).await;
        let c = create(&server, secret_client("read")).await;
        let (status, body) = request_token(&server, &c, &[]).await;
        assert_eq!(status, 200, "{name}: {body}");
        let token = body["access_token"].as_str().unwrap().to_owned();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, alg, "{name}");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));

        let set = jwks(&server).await;
        let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
        assert_eq!(
            jwk.common.key_algorithm.map(|a| format!("{a:?}")),
            Some(name.to_owned())
        );
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_audience(&["arbiter"]);
        validation.set_issuer(&[&server.config.oauth.issuer]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["client_id"], c.record.client_id.as_str());

        let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
        assert_eq!(reason(&r), Reason::Allowed, "{name}: {r:?}");
    }
}

#[tokio::test]
async fn changing_the_algorithm_rotates_and_keeps_earlier_tokens_valid() {
    let issuer = "https://as.arbiter.test";
    let mut server = TestServer::start_with(|c| c.oauth.issuer = issuer.into()).await;
    let c = create(&server, secret_client("read")).await;
    let (_, body) = request_token(&server, &c, &[]).await;
    let es_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&es_token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );

    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    drop(server);
    let mut again = TestServer::start_in(dir, |c| {
        c.oauth.issuer = issuer.into();
        c.oauth.signing_alg = arbiter::config::SigningAlg::EdDSA;
    })
    .await;
    let (_, body) = request_token(&again, &c, &[]).await;
    let ed_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&ed_token).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    assert_eq!(
        jwks(&again).await.keys.len(),
        2,
        "the ES256 key is still published"
    );
    for token in [&es_token, &ed_token] {
        let r = again.authorize(token, "GET", "/item/1", json!({})).await;
        assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    }
}

#[tokio::test]
async fn a_rotation_from_the_cli_reaches_the_running_server() {
    let mut server = TestServer::start().await;
    let c = create(&server, secret_client("read")).await;
    let (_, body) = request_token(&server, &c, &[]).await;
    let old_token = body["access_token"].as_str().unwrap().to_owned();

    let rotated = run_json(
        std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
            .args(["keys", "rotate", "--alg", "RS256", "--json", "--data-dir"])
            .arg(server.dir.path().join("data")),
    );
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_eq!(rotated["alg"], "RS256");

    let limit = Duration::from_secs(arbiter::KEY_REFRESH_SECONDS + 5);
    let new_token = eventually(limit, || async {
        let (_, body) = request_token(&server, &c, &[]).await;
        let token = body["access_token"].as_str()?.to_owned();
        (kid(&token) == new_kid).then_some(token)
    })
    .await
    .expect("the running server signs with the key the CLI made");
    for token in [&old_token, &new_token] {
        let r = server.authorize(token, "GET", "/item/1", json!({})).await;
        assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["keys", "list", "--json", "--data-dir"])
        .arg(server.dir.path().join("data"))
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["purpose"] == "access_token")
        .map(|k| (k["alg"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("RS256", "active"), ("ES256", "published")]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("private"));
}

#[tokio::test]
async fn resource_indicators_address_tokens_and_scopes_are_decided_per_audience() {
    let ledger = "https://ledger.example/";
    let payments = "https://payments.example/api";
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    std::fs::write(
        dir.path().join("policies/ledger.cedar"),
        format!(
            r#"@id("no-write-scope-for-the-ledger")
forbid (principal, action == Action::"IssueScope", resource == Scope::"write")
when {{ context has audience && context.audience == "{ledger}" }};
"#
        ),
    )
    .unwrap();
    let mut server = TestServer::start_in(dir, |c| {
        c.oauth.resources = vec![ledger.into(), payments.into()];
    })
    .await;
    let c = create(
        &server,
        ClientSpec {
            resources: vec![ledger.into(), payments.into()],
            ..secret_client("read write")
        },
    )
    .await;
    let only_default = create(&server, secret_client("read write")).await;

    let claims = |token: &str| {
        jsonwebtoken::dangerous::insecure_decode::<Value>(token)
            .unwrap()
            .claims
    };
    // No resource: the default audience, every scope.
    let (status, body) = request_token(&server, &c, &[("scope", "read write")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "arbiter"
    );
    assert_eq!(body["scope"], "read write");

    // One resource: it is the audience, and the ledger's policy drops `write`.
    let (status, body) = request_token(
        &server,
        &c,
        &[("scope", "read write"), ("resource", ledger)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&token)["aud"], ledger);
    assert_eq!(body["scope"], "read");
    // The PDP accepts the configured resources as audiences of this issuer.
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");

    // Two resources (the parameter may repeat): both audiences; a scope needs both.
    let (status, body) = request_token(
        &server,
        &c,
        &[
            ("scope", "read write"),
            ("resource", payments),
            ("resource", ledger),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        json!([payments, ledger])
    );
    assert_eq!(body["scope"], "read");
    let (_, body) = request_token(
        &server,
        &c,
        &[("scope", "read write"), ("resource", payments)],
    )
    .await;
    assert_eq!(body["scope"], "read write");

    for (who, fields, why) in [
        (
            &c,
            vec![("resource", "https://unknown.example/")],
            "unknown to the server",
        ),
        (
            &only_default,
            vec![("resource", ledger)],
            "not registered with the client",
        ),
        (&c, vec![("resource", "/relative")], "not absolute"),
        (
            &c,
            vec![("resource", "https://ledger.example/#frag")],
            "has a fragment",
        ),
    ] {
        let (status, body) = request_token(&server, who, &fields).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_target")),
            "{why}: {body}"
        );
    }
    // The default audience here is not a URI, so it cannot be named as a resource.
    let (status, body) = request_token(&server, &only_default, &[("resource", "arbiter")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target")),
        "{body}"
    );
}

#[tokio::test]
async fn only_legacy_clients_may_address_the_token_endpoint() {
    let server = TestServer::start().await;
    let issuer = server.config.oauth.issuer.clone();
    let token_endpoint = format!("{issuer}/token");
    let key = TestKey::es256("legacy-key");
    let make = |legacy: bool| ClientSpec {
        name: "jwt client".into(),
        scopes: vec!["read".into()],
        auth_method: "private_key_jwt".into(),
        jwks: Some(json!({ "keys": [key.jwk] })),
        legacy_audience: legacy,
        ..Default::default()
    };
    let modern = create(&server, make(false)).await.record.client_id;
    let legacy = create(&server, make(true)).await.record.client_id;
    let send = |client_id: &str, aud: &str, jti: &str| {
        let now = now();
        let jwt = key.sign(&json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "iat": now, "exp": now + 60, "jti": jti,
        }));
        let url = token_endpoint.clone();
        async move { assertion_grant(&url, &jwt).await.0 }
    };
    assert_eq!(send(&modern, &token_endpoint, "m-1").await, 401);
    assert_eq!(send(&modern, &issuer, "m-2").await, 200);
    assert_eq!(send(&legacy, &token_endpoint, "l-1").await, 200);
    assert_eq!(send(&legacy, &issuer, "l-2").await, 200);
    assert_eq!(
        send(&legacy, "https://elsewhere.example/token", "l-3").await,
        401,
        "legacy widens the audience to the token endpoint only"
    );
}
