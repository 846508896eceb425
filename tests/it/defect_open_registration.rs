//! Issue 14, defect 4 (the ceiling half): a client that registers without a software
//! statement (open registration) can never be granted Arbiter's own scopes — it used to get
//! `arbiter.ssa.review` for the asking, and review statements with it — unless
//! `[oauth] open_registration_scopes` names them; a configured list is the whole ceiling.

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
