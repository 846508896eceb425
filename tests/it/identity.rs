//! One caller identity: which principal a token names, per issuer, and what `entities.json`
//! may say about it. Through the real front door (gRPC `Authorize`) with tokens from a real
//! external identity provider (a JWKS over HTTP) beside the development issuer.

use arbiter::grpc::proto::Reason;
use serde_json::json;

use crate::support::*;

/// A token that names no client is an end user: the MFA step-up forbid, written for
/// `principal is User`, applies to it (it used to become `Client::"<sub>"` and slip past).
#[tokio::test]
async fn a_token_without_a_client_claim_is_a_user_and_the_mfa_forbids_apply() {
    let key = TestKey::es256("k1");
    let idp = TestIdp::start(&[&key]).await;
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    let write = "https://jans.io/oauth/config/fido2.write";
    let now = now();
    let claims = |extra: serde_json::Value| {
        let mut c = json!({
            "iss": idp.issuer, "aud": "api", "sub": "bob", "scope": write,
            "iat": now, "exp": now + 300,
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };

    let r = server
        .authorize(
            &key.sign(&claims(json!({}))),
            "PUT",
            "/fido/config",
            json!({}),
        )
        .await;
    assert_eq!(reason(&r), Reason::PolicyDeny, "{r:?}");
    assert_eq!(r.policy_ids, ["config-api-writes-need-mfa"]);
    let p = r.principal.unwrap();
    assert_eq!(
        (p.entity.as_str(), p.client_id.as_str()),
        ("User::\"bob\"", "")
    );

    // With MFA the same user may.
    let r = server
        .authorize(
            &key.sign(&claims(json!({"acr": "mfa"}))),
            "PUT",
            "/fido/config",
            json!({}),
        )
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");

    // `azp` names the client (Keycloak); the user is still the principal.
    let r = server
        .authorize(
            &key.sign(&claims(json!({"azp": "portal"}))),
            "PUT",
            "/fido/config",
            json!({}),
        )
        .await;
    assert_eq!(reason(&r), Reason::PolicyDeny);
    let p = r.principal.unwrap();
    assert_eq!(
        (p.entity.as_str(), p.client_id.as_str()),
        ("User::\"bob\"", "portal")
    );

    // A client acting for itself (sub = client) is a Client: the user forbid does not apply.
    let r = server
        .authorize(
            &key.sign(&claims(json!({"sub": "tool", "client_id": "tool"}))),
            "PUT",
            "/fido/config",
            json!({}),
        )
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    assert_eq!(r.principal.unwrap().entity, "Client::\"tool\"");

    // A token naming neither a client nor a user has no principal: invalid.
    let r = server
        .authorize(
            &key.sign(&claims(json!({"sub": ""}))),
            "GET",
            "/health",
            json!({}),
        )
        .await;
    assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
}

/// Which claims name the client and the user is configured per issuer.
#[tokio::test]
async fn claim_names_are_configured_per_issuer() {
    let key = TestKey::es256("k1");
    let idp = TestIdp::start(&[&key]).await;
    let mut issuer = idp.config();
    issuer.client_claims = vec!["appid".into()];
    issuer.user_claim = "oid".into();
    let mut server = TestServer::start_with(|c| c.issuers.push(issuer)).await;
    let now = now();
    let token = key.sign(&json!({
        "iss": idp.issuer, "aud": "api", "iat": now, "exp": now + 300, "scope": "read",
        "sub": "pairwise-xyz", "client_id": "not-this", "oid": "u-42", "appid": "app-7",
    }));
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    let p = r.principal.unwrap();
    assert_eq!(
        (p.entity.as_str(), p.client_id.as_str()),
        ("User::\"u-42\"", "app-7")
    );
}

/// `alice` of the development issuer is the HR employee `entities.json` describes (bound by
/// its `iss`); `alice` of another issuer is someone else, with only her own token's claims.
#[tokio::test]
async fn the_same_sub_from_two_issuers_gets_different_attributes() {
    let key = TestKey::es256("k1");
    let idp = TestIdp::start(&[&key]).await;
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    let health = "/hr/employees/17/health";
    let local = json!({ "employee": { "nationality": "NL", "work_country": "NL" } });

    let ours = server.token("hr-portal", Some("alice"), "hr.health.read");
    let r = server.authorize(&ours, "GET", health, local.clone()).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");

    let now = now();
    let theirs = |extra: serde_json::Value| {
        let mut c = json!({
            "iss": idp.issuer, "aud": "api", "sub": "alice", "azp": "hr-portal",
            "scope": "hr.health.read", "iat": now, "exp": now + 300,
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        key.sign(&c)
    };
    let r = server
        .authorize(&theirs(json!({})), "GET", health, local.clone())
        .await;
    assert_eq!(
        reason(&r),
        Reason::PolicyDeny,
        "another issuer's alice is not in HR: {r:?}"
    );
    assert_eq!(r.principal.unwrap().entity, "User::\"alice\"");

    // Her own token's claims are her attributes, and `iss` cannot be claimed away.
    let r = server
        .authorize(
            &theirs(json!({"department": "HR"})),
            "GET",
            health,
            local.clone(),
        )
        .await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
}

/// Policies can tell issuers and audiences apart: `context.token.iss` and `.aud`.
#[tokio::test]
async fn policies_read_the_tokens_issuer_and_audience() {
    let key = TestKey::es256("k1");
    let idp = TestIdp::start(&[&key]).await;
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    std::fs::write(
        server.policies().join("partners.cedar"),
        format!(
            "@id(\"partner-api-tokens-never-read\")\n\
             forbid (principal, action == Action::\"GET\", resource)\n\
             when {{ context has token && context.token.iss == {:?} &&\n\
                    context.token has aud && context.token.aud.contains(\"api\") }};\n",
            idp.issuer
        ),
    )
    .unwrap();
    let reloaded = server.reload().await;
    assert!(reloaded.errors.is_empty(), "{reloaded:?}");
    let now = now();
    let theirs = key.sign(&json!({
        "iss": idp.issuer, "aud": ["api", "other"], "sub": "svc", "client_id": "svc",
        "scope": "read", "iat": now, "exp": now + 300,
    }));
    let r = server.authorize(&theirs, "GET", "/item/7", json!({})).await;
    assert_eq!(reason(&r), Reason::PolicyDeny, "{r:?}");
    assert_eq!(r.policy_ids, ["partner-api-tokens-never-read"]);
    let ours = server.token("svc", None, "read");
    let r = server.authorize(&ours, "GET", "/item/7", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
}
