//! Opaque access tokens introspected (RFC 7662) at an authorization server nobody here wrote
//! (authlib's components, in Python): active tokens decide like JWTs, inactive and revoked
//! ones do not, one call per token however many requests carry it, failures are `ERROR`
//! while cached answers keep serving, each client authentication method, and RFC 9701
//! signed answers.

use std::time::Duration;

use arbiter::grpc::proto::Reason;
use serde_json::json;

use crate::support::*;

const SECRET: &str = "arbiter-introspects-0123456789";

async fn arbiter_for(
    auth: &AuthServer,
    issuer_extra: &str,
    introspection_extra: &str,
) -> TestServer {
    let issuer = auth.issuer(issuer_extra, introspection_extra);
    TestServer::start_with(|c| c.issuers.push(issuer)).await
}

fn basic() -> String {
    format!("client_secret = {SECRET:?}\ndefault = true")
}

#[tokio::test]
async fn an_active_opaque_token_decides_with_its_scopes_and_an_unknown_one_is_invalid() {
    let auth = AuthServer::basic(SECRET);
    let mut server = arbiter_for(&auth, "", &basic()).await;
    let token = auth.client_token("read").await;
    assert!(!token.contains('.'), "an opaque token: {token}");

    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    let principal = r.principal.clone().unwrap();
    assert_eq!(principal.client_id, APP_CLIENT);
    assert_eq!(principal.issuer, AS_ISSUER);
    assert_eq!(principal.scopes, vec!["read".to_owned()]);
    assert!(
        r.cache_ttl_seconds > 0 && r.cache_ttl_seconds <= 60,
        "{r:?}"
    );
    // The scopes it was granted are the scopes it has: `read` alone cannot create.
    let r = server.authorize(&token, "POST", "/items", json!({})).await;
    assert_eq!(reason(&r), Reason::InsufficientScope, "{r:?}");
    // The HTTP front door (AuthZEN) takes it the same way, from the same cache.
    for (method, path, decision) in [("GET", "/item/{id}", true), ("POST", "/items", false)] {
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("http://{}/access/v1/evaluation", server.http_addr))
            .bearer_auth(&token)
            .json(&json!({ "action": { "name": method }, "resource": { "type": "route", "id": path } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["decision"], decision, "{method} {path}: {body}");
    }
    let calls = auth.introspections().await;
    assert_eq!(calls, 1, "the answer is cached for the next decisions");

    let r = server
        .authorize("unknown-to-the-issuer", "GET", "/item/1", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
    assert!(r.errors[0].contains("not active"), "{r:?}");
    // Repeated, the inactive answer is kept a while: no call per request.
    server
        .authorize("unknown-to-the-issuer", "GET", "/item/1", json!({}))
        .await;
    assert_eq!(auth.introspections().await, calls + 1);

    // A JWT naming an issuer Arbiter does not trust is refused as such, never sent to the
    // default introspection endpoint.
    let key = TestKey::es256("k");
    let jwt = key.sign(&json!({"iss": "https://elsewhere", "aud": AS_AUDIENCE, "exp": now() + 60}));
    let r = server.authorize(&jwt, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken);
    assert!(r.errors[0].contains("untrusted issuer"), "{r:?}");
    assert_eq!(auth.introspections().await, calls + 1);
}

#[tokio::test]
async fn an_answer_feeds_the_same_identity_audience_and_binding_rules_as_a_jwt() {
    let auth = AuthServer::basic(SECRET);
    let mut server = arbiter_for(&auth, "", &basic()).await;
    let write = "https://jans.io/oauth/config/fido2.write";

    // `sub` makes the principal a user, and `acr` reaches the policies as context.token.acr.
    let mfa = auth.user_token("alice", write, json!({"acr": "mfa"})).await;
    let r = server
        .authorize(&mfa, "PUT", "/fido/config", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    assert_eq!(r.principal.unwrap().entity, "User::\"alice\"");
    let password = auth.user_token("alice", write, json!({"acr": "pwd"})).await;
    let r = server
        .authorize(&password, "PUT", "/fido/config", json!({}))
        .await;
    assert_eq!(
        reason(&r),
        Reason::PolicyDeny,
        "the step-up forbid applies: {r:?}"
    );

    // An audience Arbiter does not accept is refused.
    let other = auth
        .user_token("alice", "read", json!({"aud": "https://other.example"}))
        .await;
    let r = server.authorize(&other, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken);
    assert!(r.errors[0].contains("audience"), "{r:?}");

    // RFC 8705: a token bound to a certificate needs that certificate.
    let bound = auth
        .user_token(
            "alice",
            "read",
            json!({"cnf": {"x5t#S256": "bound-thumbprint"}}),
        )
        .await;
    let r = server.authorize(&bound, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::InvalidToken);
    assert!(
        r.errors[0].contains("bound to a client certificate"),
        "{r:?}"
    );
    let mut with_cert = request(&bound, "GET", "/item/1", json!({}));
    with_cert.client_cert_sha256 = "bound-thumbprint".into();
    let r = server
        .client
        .authorize(with_cert)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");

    // A refresh token (or anything but a bearer access token) is not an access token.
    let refresh = auth
        .user_token("alice", "read", json!({"token_type": "refresh_token"}))
        .await;
    let r = server
        .authorize(&refresh, "GET", "/item/1", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
}

#[tokio::test]
async fn a_token_revoked_at_the_issuer_is_refused_once_the_cache_age_passes() {
    let auth = AuthServer::basic(SECRET);
    let mut server = arbiter_for(&auth, "", &format!("{}\nmax_cache_seconds = 1", basic())).await;
    let token = auth.client_token("read").await;
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    assert!(
        r.cache_ttl_seconds <= 1,
        "a gateway caches no longer: {r:?}"
    );

    auth.revoke(&token).await;
    let refused = eventually(Duration::from_secs(10), || {
        let mut client = server.client.clone();
        let token = token.clone();
        async move {
            let r = client
                .authorize(request(&token, "GET", "/item/1", json!({})))
                .await
                .unwrap()
                .into_inner();
            (reason(&r) == Reason::InvalidToken).then_some(r)
        }
    })
    .await
    .expect("refused within the cache age");
    assert!(refused.errors[0].contains("not active"), "{refused:?}");
    let _ = &mut server;
}

#[tokio::test]
async fn a_hundred_concurrent_requests_with_one_new_token_make_one_call() {
    let auth = AuthServer::basic(SECRET);
    let server = arbiter_for(&auth, "", &basic()).await;
    let token = auth.client_token("read").await;
    // Slow enough that every request arrives while the first call is in flight.
    auth.set_mode(json!({"delay": 0.5})).await;
    let before = auth.introspections().await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let mut client = server.client.clone();
        let token = token.clone();
        requests.spawn(async move {
            client
                .authorize(request(&token, "GET", "/item/1", json!({})))
                .await
                .unwrap()
                .into_inner()
        });
    }
    while let Some(r) = requests.join_next().await {
        assert_eq!(reason(&r.unwrap()), Reason::Allowed);
    }
    assert_eq!(auth.introspections().await, before + 1);
}

#[tokio::test]
async fn when_the_endpoint_fails_cached_tokens_decide_and_new_ones_are_errors() {
    let mut auth = AuthServer::basic(SECRET);
    let mut server = arbiter_for(&auth, "", &format!("{}\ntimeout_ms = 300", basic())).await;
    let cached = auth.client_token("read").await;
    let fresh = auth.client_token("read").await;
    let also_fresh = auth.client_token("read").await;
    let r = server.authorize(&cached, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    let before = scrape(&server).await;
    let count = |text: &str, outcome: &str| {
        sample(
            text,
            &format!("arbiter_introspection_requests_total{{issuer=\"{AS_ISSUER}\",outcome=\"{outcome}\"}}"),
        )
    };

    // Slow: past the timeout, a new token is denied with ERROR (fail closed).
    auth.set_mode(json!({"delay": 2.0})).await;
    let r = server.authorize(&fresh, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Error, "{r:?}");
    assert!(r.errors[0].contains("did not answer in time"), "{r:?}");
    assert!(!r.errors[0].contains(&fresh), "no token in the reason");

    // Down: the cached token still decides; a new one is ERROR, not INVALID_TOKEN.
    auth.stop();
    let r = server.authorize(&cached, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    let r = server
        .authorize(&also_fresh, "GET", "/item/1", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::Error, "{r:?}");
    assert!(r.errors[0].contains("unreachable"), "{r:?}");

    let after = scrape(&server).await;
    assert_eq!(count(&after, "timeout") - count(&before, "timeout"), 1.0);
    assert!(count(&after, "unreachable") - count(&before, "unreachable") >= 1.0);
    assert!(count(&after, "active") >= 1.0);
    assert!(after.contains("arbiter_introspection_duration_seconds_count"));
    assert!(!after.contains(&cached), "no token in the metrics");
}

#[tokio::test]
async fn arbiter_authenticates_with_each_method() {
    let server_ca = tls::Ca::new("as-ca");
    let client_ca = tls::Ca::new("arbiter-client-ca");
    let (cert_pem, key_pem) = server_ca.leaf(false, false);
    let (client_cert, client_key, _) = client_ca.client("arbiter-mtls", Vec::new());
    let assertion_key = rcgen::KeyPair::generate().unwrap();
    let clients = [
        (
            "arbiter-basic",
            ArbiterClient::secret("client_secret_basic", SECRET),
        ),
        (
            "arbiter-post",
            ArbiterClient::secret("client_secret_post", SECRET),
        ),
        (
            "arbiter-jwt",
            ArbiterClient {
                auth_method: "private_key_jwt",
                secret: None,
                public_key_pem: Some(assertion_key.public_key_pem()),
                subject_dn: None,
            },
        ),
        (
            "arbiter-mtls",
            ArbiterClient {
                auth_method: "tls_client_auth",
                secret: None,
                public_key_pem: None,
                subject_dn: Some("CN=arbiter-mtls".into()),
            },
        ),
    ];
    let auth = AuthServer::start(
        &clients,
        Some(AsTls {
            cert_pem,
            key_pem,
            client_ca_pem: client_ca.pem(),
            ca_pem: server_ca.pem(),
        }),
        "",
    );
    let ca = auth.write("ca.pem", &server_ca.pem());
    let key = auth.write("assertion.key", &assertion_key.serialize_pem());
    let cert = auth.write("client.pem", &client_cert);
    let cert_key = auth.write("client.key", &client_key);
    let wrong_secret =
        "auth_method = \"client_secret_basic\"\nclient_secret = \"not-the-secret-0123456789\"";
    let methods = [
        ("arbiter-basic", format!("auth_method = \"client_secret_basic\"\nclient_secret = {SECRET:?}"), Reason::Allowed),
        ("arbiter-post", format!("auth_method = \"client_secret_post\"\nclient_secret = {SECRET:?}"), Reason::Allowed),
        ("arbiter-jwt", format!("auth_method = \"private_key_jwt\"\nprivate_key_file = {key:?}\nassertion_alg = \"ES256\""), Reason::Allowed),
        ("arbiter-mtls", format!("auth_method = \"tls_client_auth\"\nclient_cert_file = {cert:?}\nclient_key_file = {cert_key:?}"), Reason::Allowed),
        // A wrong secret is the endpoint refusing Arbiter: ERROR, never INVALID_TOKEN.
        ("arbiter-basic", wrong_secret.to_owned(), Reason::Error),
    ];
    for (client_id, auth_lines, expected) in &methods {
        let toml = auth.issuer_toml_as(
            client_id,
            "",
            &format!("{auth_lines}\nca_file = {ca:?}\ndefault = true"),
        );
        let issuer = toml::from_str(&toml).unwrap();
        let mut server = TestServer::start_with(|c| c.issuers.push(issuer)).await;
        let token = auth.client_token("read").await;
        let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
        assert_eq!(reason(&r), *expected, "{client_id}: {r:?}");
        if *expected == Reason::Error {
            assert!(r.errors[0].contains("HTTP 401"), "{r:?}");
        }
    }
}

#[tokio::test]
async fn signed_answers_verify_with_the_issuers_keys_and_a_bad_signature_is_refused() {
    let auth = AuthServer::basic(SECRET);
    let jwks = format!("jwks_url = \"{}/jwks\"", auth.base);
    let mut server = arbiter_for(&auth, &jwks, &format!("{}\njwt_response = true", basic())).await;
    let token = auth.client_token("read").await;
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    assert_eq!(r.principal.unwrap().client_id, APP_CLIENT);

    auth.set_mode(json!({"signature": "bad"})).await;
    let other = auth.client_token("read").await;
    let r = server.authorize(&other, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Error, "{r:?}");
    assert!(r.errors[0].contains("invalid signature"), "{r:?}");
}

#[tokio::test]
async fn opaque_tokens_go_only_where_the_configuration_sends_them() {
    let auth = AuthServer::start(
        &[(
            ARBITER_CLIENT,
            ArbiterClient::secret("client_secret_basic", SECRET),
        )],
        None,
        "as1-",
    );
    let mut server = arbiter_for(
        &auth,
        "",
        &format!("client_secret = {SECRET:?}\ntoken_prefixes = [\"as1-\"]"),
    )
    .await;
    let token = auth.client_token("read").await;
    assert!(token.starts_with("as1-"));
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    // No prefix and no default issuer: not sent anywhere.
    let before = auth.introspections().await;
    let r = server
        .authorize("zz-opaque", "GET", "/item/1", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::InvalidToken);
    assert!(
        r.errors[0].contains("no issuer is configured to introspect"),
        "{r:?}"
    );
    assert_eq!(auth.introspections().await, before);
}

#[tokio::test]
async fn arbiters_own_introspection_endpoint_never_asks_another_server() {
    use arbiter::oauth::clients::{self, ClientSpec};
    let auth = AuthServer::basic(SECRET);
    let server = arbiter_for(&auth, "", &basic()).await;
    let token = auth.client_token("read").await;
    let store = server.store().await;
    let spec = ClientSpec {
        name: "resource server".into(),
        auth_method: "client_secret_basic".into(),
        ..Default::default()
    };
    let rs = clients::create(&store, &spec).await.unwrap();
    let before = auth.introspections().await;
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{}/introspect", server.http_addr))
        .basic_auth(&rs.record.client_id, rs.secret.as_deref())
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"active": false}),
        "not a token Arbiter issued"
    );
    assert_eq!(auth.introspections().await, before, "and nobody was asked");
}

#[test]
fn check_config_asks_each_endpoint_about_a_made_up_token() {
    let auth = AuthServer::basic(SECRET);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let run = |secret: &str| {
        let issuer = auth.issuer_toml("", &format!("client_secret = {secret:?}"));
        let config = format!(
            "policies = \"policies\"\ndata_dir = \"data\"\n[[issuers]]\n{}",
            issuer.replace("[introspection]", "[issuers.introspection]")
        );
        check_config(dir.path(), &config)
    };
    let (code, out) = run(SECRET);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("ok   introspection {AS_ISSUER}: endpoint answers")),
        "{out}"
    );
    let (code, out) = run("not-the-secret-0123456789");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("FAIL introspection {AS_ISSUER}")) && out.contains("HTTP 401"),
        "{out}"
    );
    assert!(!out.contains("not-the-secret"), "no secret in the report");
}
