//! Issue 14, defect 4 (the ceiling half): a client that registers without a software
//! statement (open registration) can never be granted Arbiter's own scopes — it used to get
//! `arbiter.ssa.review` for the asking, and review statements with it — unless
//! `[oauth] open_registration_scopes` names them; a configured list is the whole ceiling.
//! The other half: self-asserted attributes are marked (`principal.self_asserted`).

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn open_registration_never_yields_arbiters_own_scopes() {
    let server = TestServer::start_with(|c| c.oauth.open_registration = true).await;
    let base = format!("http://{}", server.http_addr);
    let body = register_openly(
        &base,
        "anyone",
        "read arbiter.ssa.review arbiter.ssa.request",
    )
    .await;
    assert_eq!(body["scope"], "read", "{body}");
    let (id, secret) = (
        body["client_id"].as_str().unwrap(),
        body["client_secret"].as_str().unwrap(),
    );
    let (status, token) = client_credentials(&base, id, secret, "arbiter.ssa.review", &[]).await;
    assert_eq!(status, 400, "{token}");
    assert_eq!(token["error"], "invalid_scope");

    // Nor through an RFC 7592 update.
    let rat = body["registration_access_token"].as_str().unwrap();
    let updated: Value = reqwest::Client::new()
        .put(format!("{base}/register/{id}"))
        .bearer_auth(rat)
        .json(&json!({ "client_id": id, "client_name": "anyone", "scope": "read arbiter.ssa.review" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["scope"], "read", "{updated}");
}

#[tokio::test]
async fn a_configured_ceiling_is_the_whole_ceiling() {
    let server = TestServer::start_with(|c| {
        c.oauth.open_registration = true;
        c.oauth.open_registration_scopes = Some(vec!["read".into()]);
    })
    .await;
    let base = format!("http://{}", server.http_addr);
    let body = register_openly(&base, "anyone", "read write payment").await;
    assert_eq!(body["scope"], "read", "{body}");
}

/// Defect 4 (the other half): what a client says of itself at open registration
/// (`org_name`, `software_id`) reaches policies as `principal.self_asserted`, never as the
/// vouched-for `principal.org` — on the code before this change a self-registered client
/// claiming a bank's name got the bank's scopes.
#[tokio::test]
async fn self_asserted_attributes_are_told_apart() {
    let server = TestServer::start_with(|c| c.oauth.open_registration = true).await;
    std::fs::write(
        server.policies().join("bank.cedar"),
        r#"@id("payments-only-for-the-bank")
forbid (principal, action == Action::"IssueScope", resource == Scope::"payment")
unless { principal has org && principal.org == "Trusted Bank" };

@id("no-write-for-unvouched-clients")
forbid (principal, action == Action::"IssueScope", resource == Scope::"write")
when { principal has self_asserted };
"#,
    )
    .unwrap();
    let reloaded = server.reload().await;
    assert!(reloaded.errors.is_empty(), "{:?}", reloaded.errors);
    let base = format!("http://{}", server.http_addr);

    // A client that says it is the bank.
    let body = register_metadata(
        &base,
        json!({
            "client_name": "totally the bank", "org_name": "Trusted Bank",
            "software_id": "bank-app", "scope": "read write payment",
        }),
    )
    .await;
    let (id, secret) = (
        body["client_id"].as_str().unwrap(),
        body["client_secret"].as_str().unwrap(),
    );
    let (status, token) = client_credentials(&base, id, secret, "read write payment", &[]).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["scope"], "read", "{token}");

    // The bank, as an operator created it.
    let store = server.store().await;
    let bank = arbiter::oauth::clients::create(
        &store,
        &arbiter::oauth::clients::ClientSpec {
            name: "the bank".into(),
            scopes: vec!["read".into(), "write".into(), "payment".into()],
            auth_method: "client_secret_basic".into(),
            org: Some("Trusted Bank".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (status, token) = client_credentials(
        &base,
        &bank.record.client_id,
        bank.secret.as_deref().unwrap(),
        "read write payment",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["scope"], "read write payment", "{token}");
}
