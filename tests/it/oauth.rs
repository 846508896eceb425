//! The paired authorization server over real HTTP: client credentials with secret auth,
//! RFC 6749 §5.2 errors, RFC 9068 tokens the PDP accepts, JWKS and metadata a stock client
//! and a stock JWT verifier use unmodified, key rotation, and a restart keeping everything.

use arbiter::grpc::proto::Reason;
use arbiter::oauth::clients;
use arbiter::store::Store;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn client_credentials_tokens_are_accepted_by_the_pdp() {
    let mut server = TestServer::start().await;
    let c = stored_client(&server, "read fido otp", "client_secret_basic").await;
    let resp = post_token(
        &server,
        &c,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read fido admin"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["scope"], "read fido",
        "admin is not allowed for this client and is dropped"
    );
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);

    let r = server.authorize(token, "POST", "/items", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    let p = r.principal.unwrap();
    assert_eq!(p.client_id, c.id);
    assert_eq!(p.issuer, format!("http://{}", server.http_addr));

    // No scope asked: the client's allowed scopes.
    let body: Value = post_token(&server, &c, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "read fido otp");
}

#[tokio::test]
async fn client_secret_post_and_the_errors_of_rfc_6749() {
    let server = TestServer::start().await;
    let post_client = stored_client(&server, "read", "client_secret_post").await;
    let basic_client = stored_client(&server, "read", "client_secret_basic").await;
    let http = reqwest::Client::new();

    let ok = http
        .post(http_url(&server, "/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &post_client.id),
            ("client_secret", &post_client.secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    async fn error_of(resp: reqwest::Response) -> (u16, Option<String>, String) {
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.unwrap();
        (
            status,
            challenge,
            body["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{status} {body}"))
                .to_string(),
        )
    }
    let wrong = StoredClient {
        id: basic_client.id.clone(),
        secret: "wrong".into(),
    };
    let (status, challenge, error) =
        error_of(post_token(&server, &wrong, &[("grant_type", "client_credentials")]).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(challenge.unwrap().starts_with("Basic"));

    let (status, _, error) =
        error_of(post_token(&server, &basic_client, &[("scope", "read")]).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    let (_, _, error) =
        error_of(post_token(&server, &basic_client, &[("grant_type", "password")]).await).await;
    assert_eq!(error, "unsupported_grant_type");
    let (_, _, error) = error_of(
        post_token(
            &server,
            &basic_client,
            &[("grant_type", "client_credentials"), ("scope", "admin")],
        )
        .await,
    )
    .await;
    assert_eq!(error, "invalid_scope");
    // Registered for Basic, so secret-in-body authentication fails.
    let (status, challenge, error) = error_of(
        http.post(http_url(&server, "/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &basic_client.id),
                ("client_secret", &basic_client.secret),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(
        challenge.is_none(),
        "no Basic challenge when Basic was not used"
    );
    // Repeated parameter, two auth methods, wrong content type, no auth at all.
    let repeated = http
        .post(http_url(&server, "/token"))
        .basic_auth(&basic_client.id, Some(&basic_client.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(repeated).await.2, "invalid_request");
    let both = http
        .post(http_url(&server, "/token"))
        .basic_auth(&basic_client.id, Some(&basic_client.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &basic_client.id),
            ("client_secret", &basic_client.secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(both).await.2, "invalid_request");
    let json_body = http
        .post(http_url(&server, "/token"))
        .basic_auth(&basic_client.id, Some(&basic_client.secret))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(json_body).await.2, "invalid_request");
    let anonymous = http
        .post(http_url(&server, "/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(anonymous).await.0, 401);
    let garbage = http
        .post(http_url(&server, "/token"))
        .header("authorization", "Basic !!!not-base64")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(garbage).await.2, "invalid_client");

    // An oversized body is an OAuth error too, never a 500.
    let big = http
        .post(http_url(&server, "/token"))
        .basic_auth(&basic_client.id, Some(&basic_client.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope={}",
            "a".repeat(64 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(big).await.2, "invalid_request");

    // A client disabled in the store by another process (the CLI, a replica) cannot
    // authenticate once the server's once-a-second look at disabled clients sees it.
    let store = server.store().await;
    store
        .set_client_disabled(&basic_client.id, true)
        .await
        .unwrap();
    let refused = eventually(std::time::Duration::from_secs(3), || async {
        let resp = post_token(
            &server,
            &basic_client,
            &[("grant_type", "client_credentials")],
        )
        .await;
        (resp.status() == 401).then_some(resp)
    })
    .await
    .expect("refused within a few seconds");
    assert_eq!(error_of(refused).await.2, "invalid_client");
}

#[tokio::test]
async fn a_stock_oauth_client_and_a_stock_jwt_verifier_interoperate() {
    use oauth2::basic::BasicClient;
    use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
    let server = TestServer::start().await;
    let c = stored_client(&server, "read fido", "client_secret_basic").await;

    let metadata: Value =
        reqwest::get(http_url(&server, "/.well-known/oauth-authorization-server"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(metadata["issuer"], format!("http://{}", server.http_addr));
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["client_credentials"])
    );
    let token_url = metadata["token_endpoint"].as_str().unwrap().to_string();

    let oauth = BasicClient::new(ClientId::new(c.id.clone()))
        .set_client_secret(ClientSecret::new(c.secret.clone()))
        .set_token_uri(TokenUrl::new(token_url).unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let granted = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .request_async(&http)
        .await
        .unwrap();
    let token = granted.access_token().secret().clone();
    assert_eq!(granted.scopes().unwrap()[0].as_str(), "read");

    // jsonwebtoken with nothing but the published JWKS.
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(metadata["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["arbiter"]);
    validation.set_issuer(&[metadata["issuer"].as_str().unwrap()]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    for claim in [
        "iss",
        "sub",
        "client_id",
        "aud",
        "exp",
        "iat",
        "jti",
        "scope",
    ] {
        assert!(data.claims.get(claim).is_some(), "RFC 9068 claim `{claim}`");
    }
    assert_eq!(data.claims["sub"], c.id.as_str());
}

#[tokio::test]
async fn introspection_and_revocation_seen_by_the_pdp_at_once() {
    let mut server = TestServer::start().await;
    let owner = stored_client(&server, "read", "client_secret_basic").await;
    let other = stored_client(&server, "read", "client_secret_basic").await;
    let body: Value = post_token(&server, &owner, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();

    // Cached by the PDP first.
    assert_eq!(
        reason(&server.authorize(&token, "GET", "/item/1", json!({})).await),
        Reason::Allowed
    );

    let info: Value = form(&server, "/introspect", &other, &[("token", &token)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], owner.id.as_str());
    assert_eq!(info["scope"], "read");
    let garbage: Value = form(&server, "/introspect", &other, &[("token", "not-a-token")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(garbage, json!({ "active": false }));
    let wrong = StoredClient {
        id: other.id.clone(),
        secret: "nope".into(),
    };
    assert_eq!(
        form(&server, "/introspect", &wrong, &[("token", &token)])
            .await
            .status(),
        401
    );

    // Only the client the token was issued to may revoke it.
    let refused = form(&server, "/revoke", &other, &[("token", &token)]).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(
        reason(&server.authorize(&token, "GET", "/item/1", json!({})).await),
        Reason::Allowed
    );

    let revoked_at = std::time::Instant::now();
    let done = form(
        &server,
        "/revoke",
        &owner,
        &[("token", &token), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(done.status(), 200);
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
    assert!(r.errors[0].contains("revoked"));
    assert!(revoked_at.elapsed() < std::time::Duration::from_secs(1));
    let info: Value = form(&server, "/introspect", &owner, &[("token", &token)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info, json!({ "active": false }));
    // Revoking garbage or twice is fine (RFC 7009 §2.2).
    assert_eq!(
        form(&server, "/revoke", &owner, &[("token", "garbage")])
            .await
            .status(),
        200
    );
    assert_eq!(
        form(&server, "/revoke", &owner, &[("token", &token)])
            .await
            .status(),
        200
    );

    // The revocation outlives a restart.
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let issuer = server.config.oauth.issuer.clone();
    drop(server);
    let mut again = TestServer::start_in(dir, |c| c.oauth.issuer = issuer).await;
    let r = again.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
    assert!(r.errors[0].contains("revoked"), "{r:?}");
}

#[tokio::test]
async fn scopes_are_trimmed_by_issue_scope_policies_in_context() {
    let trusted: ipnet::IpNet = "127.0.0.0/8".parse().unwrap();
    let server = TestServer::start_with(|c| c.oauth.trusted_proxies = vec![trusted]).await;
    let c = stored_client(&server, "read write payment", "client_secret_basic").await;
    let all = "read write payment";

    let (status, body) = granted(&server, &c, all, &[]).await;
    assert_eq!((status, body["scope"].as_str()), (200, Some(all)), "{body}");

    // A risky network (through a trusted proxy): no write scope.
    let (_, body) = granted(
        &server,
        &c,
        all,
        &[("x-forwarded-for", "198.51.100.9, 127.0.0.1")],
    )
    .await;
    assert_eq!(body["scope"], "read payment", "{body}");
    // Likely fraud: no payment scope.
    let (_, body) = granted(&server, &c, all, &[("x-fraud-score", "75")]).await;
    assert_eq!(body["scope"], "read write", "{body}");
    let (_, body) = granted(&server, &c, all, &[("x-fraud-score", "70")]).await;
    assert_eq!(body["scope"], all, "{body}");
    // Nothing left: invalid_scope.
    let (status, body) =
        granted(&server, &c, "write", &[("x-forwarded-for", "198.51.100.9")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );

    // Policies reload like any other: forbid `read` for this client and it is trimmed too.
    std::fs::write(
        server.policies().join("more-scopes.cedar"),
        format!(
            "@id(\"no-read-for-test-client\")\nforbid (principal == Client::{:?}, action == Action::\"IssueScope\", resource == Scope::\"read\");\n",
            c.id
        ),
    )
    .unwrap();
    let trimmed = eventually(std::time::Duration::from_secs(5), || async {
        let (_, body) = granted(&server, &c, all, &[]).await;
        (body["scope"] == "write payment").then_some(())
    })
    .await;
    assert!(trimmed.is_some(), "the new IssueScope policy applied");
}

#[tokio::test]
async fn risk_headers_from_untrusted_peers_are_ignored() {
    let server = TestServer::start().await; // no trusted proxies
    let c = stored_client(&server, "read write payment", "client_secret_basic").await;
    let (_, body) = granted(
        &server,
        &c,
        "read write payment",
        &[("x-forwarded-for", "198.51.100.9"), ("x-fraud-score", "99")],
    )
    .await;
    assert_eq!(body["scope"], "read write payment", "{body}");
}

#[tokio::test]
async fn private_key_jwt_with_exact_audience_and_no_replay() {
    let server = TestServer::start().await;
    let key = TestKey::es256("client-key-1");
    let rogue = TestKey::es256("client-key-1");
    let store = server.store().await;
    let spec = clients::ClientSpec {
        name: "jwt client".into(),
        scopes: vec!["read".into()],
        auth_method: "private_key_jwt".into(),
        jwks: Some(json!({ "keys": [key.jwk] })),
        ..Default::default()
    };
    let record = clients::create(&store, &spec).await.unwrap().record;
    let issuer = server.config.oauth.issuer.clone();
    let assertion = |aud: Value, jti: &str, signer: &TestKey| {
        let now = now();
        signer.sign(&json!({
            "iss": record.client_id, "sub": record.client_id, "aud": aud,
            "iat": now, "exp": now + 60, "jti": jti,
        }))
    };
    let send = |jwt: String| {
        let server_url = http_url(&server, "/token");
        async move { assertion_grant(&server_url, &jwt).await }
    };

    let good = assertion(json!(issuer), "a-1", &key);
    let (status, body) = send(good.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");
    let (status, body) = send(good).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a replayed jti is refused"
    );

    for (name, jwt) in [
        (
            "token endpoint URL as aud",
            assertion(json!(format!("{issuer}/token")), "a-2", &key),
        ),
        (
            "issuer among other audiences",
            assertion(json!([issuer, "https://elsewhere.example"]), "a-3", &key),
        ),
        (
            "signed by another key under the same kid",
            assertion(json!(issuer), "a-4", &rogue),
        ),
    ] {
        let (status, body) = send(jwt).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{name}: {body}"
        );
    }
    let (status, _) = send(assertion(json!([issuer]), "a-5", &key)).await;
    assert_eq!(
        status, 200,
        "a one-element aud array naming the issuer is exact"
    );
}

/// On a dual-stack listener (`[::]`) IPv4 clients arrive as `::ffff:a.b.c.d`; the HTTP edge
/// makes them IPv4 before anything reads them, so Cedar's `ip()` takes them and scopes are
/// decided (they were all refused: `invalid_scope`).
#[tokio::test]
async fn an_ipv4_client_of_a_dual_stack_listener_gets_its_token() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = TestServer::start_at(dir, "[::]:0", |_| {}).await;
    let c = stored_client(&server, "read write", "client_secret_basic").await;
    let resp = post_token(
        &server,
        &c,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
        ],
    )
    .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read write");
}

/// `X-Fraud-Score` from a trusted proxy must be a number: an unparsable one is an error,
/// never "absent" (which would skip every fraud rule).
#[tokio::test]
async fn an_unparsable_fraud_score_is_refused() {
    let server =
        TestServer::start_with(|c| c.oauth.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()])
            .await;
    let c = stored_client(&server, "read payment", "client_secret_basic").await;
    let both = "read payment";
    let (status, body) = granted(&server, &c, both, &[("x-fraud-score", "high")]).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    // A number works, and the rightmost of several values (what the proxy appended) counts.
    let (_, body) = granted(&server, &c, both, &[("x-fraud-score", "75")]).await;
    assert_eq!(body["scope"], "read", "payment is refused above 70: {body}");
    let proxied = [("x-fraud-score", "75"), ("x-fraud-score", "5")];
    let (_, body) = granted(&server, &c, both, &proxied).await;
    assert_eq!(body["scope"], both, "{body}");
}
