//! The paired authorization server's signing keys over real HTTP: a rotation keeps earlier
//! tokens valid, a restart keeps clients and keys, a scheduled rotation publishes ahead, and
//! a secret rotated elsewhere takes over at once.

use arbiter::grpc::proto::Reason;
use arbiter::oauth::clients;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_a_restart_keeps_clients_and_keys() {
    let mut server = TestServer::start().await;
    let c = stored_client(&server, "read", "client_secret_basic").await;
    let old: Value = post_token(&server, &c, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let old_token = old["access_token"].as_str().unwrap().to_string();
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();

    let new_kid = server.arbiter.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old_kid);
    let jwks: Value = reqwest::get(http_url(&server, "/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new_kid.as_str(), old_kid.as_str()],
        "new key first, old still published"
    );

    let fresh: Value = post_token(&server, &c, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let fresh_token = fresh["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        jsonwebtoken::decode_header(&fresh_token)
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    assert_eq!(
        reason(
            &server
                .authorize(&old_token, "GET", "/item/1", json!({}))
                .await
        ),
        Reason::Allowed
    );
    assert_eq!(
        reason(
            &server
                .authorize(&fresh_token, "GET", "/item/1", json!({}))
                .await
        ),
        Reason::Allowed
    );

    // Restart on the same data directory: the client and both keys are still there.
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    drop(server);
    let mut again = TestServer::start_in(dir, |_| {}).await;
    let jwks: Value = reqwest::get(http_url(&again, "/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], new_kid.as_str());
    let body: Value = post_token(&again, &c, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap(),
        new_kid
    );
    // The issuer moved to the new server's port, so the new token verifies there.
    assert_eq!(
        reason(&again.authorize(token, "GET", "/item/1", json!({})).await),
        Reason::Allowed
    );
}

#[tokio::test]
async fn scheduled_rotation_keeps_earlier_tokens_valid() {
    let mut server = TestServer::start_with(|c| c.oauth.key_rotation_seconds = Some(1)).await;
    let c = stored_client(&server, "read", "client_secret_basic").await;
    let first: Value = post_token(&server, &c, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let first_token = first["access_token"].as_str().unwrap().to_string();
    let first_kid = jsonwebtoken::decode_header(&first_token)
        .unwrap()
        .kid
        .unwrap();
    let rotated = eventually(std::time::Duration::from_secs(5), || async {
        let jwks: Value = reqwest::get(http_url(&server, "/jwks.json"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (jwks["keys"].as_array()?.len() >= 2 && jwks["keys"][0]["kid"] != first_kid.as_str())
            .then_some(())
    })
    .await;
    assert!(rotated.is_some(), "the key rotated on schedule");
    let next: Value = post_token(&server, &c, &[("grant_type", "client_credentials")])
        .await
        .json()
        .await
        .unwrap();
    let next_kid = jsonwebtoken::decode_header(next["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_ne!(next_kid, first_kid);
    assert_eq!(
        reason(
            &server
                .authorize(&first_token, "GET", "/item/1", json!({}))
                .await
        ),
        Reason::Allowed
    );
}

/// The token endpoint caches client records for a second: a secret rotated by another
/// process works at once, and the old one stops within about a second.
#[tokio::test]
async fn a_secret_rotated_elsewhere_takes_over_at_once() {
    let server = TestServer::start().await;
    let old = stored_client(&server, "read", "client_secret_basic").await;
    let grant = [("grant_type", "client_credentials")];
    assert_eq!(post_token(&server, &old, &grant).await.status(), 200);
    let store = server.store().await;
    let new = StoredClient {
        id: old.id.clone(),
        secret: clients::rotate_secret(&store, &old.id).await.unwrap(),
    };
    assert_eq!(
        post_token(&server, &new, &grant).await.status(),
        200,
        "the new secret works at once"
    );
    let stopped = eventually(std::time::Duration::from_secs(3), || async {
        (post_token(&server, &old, &grant).await.status() == 401).then_some(())
    })
    .await;
    assert!(stopped.is_some(), "the old secret still works");
}
