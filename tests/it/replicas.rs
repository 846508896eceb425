//! Two Arbiter replicas sharing one PostgreSQL database behave as one service: a client
//! registered through one gets tokens from the other, a revocation or deletion at one is
//! enforced by the other within seconds, and key rotation is coordinated (one winner, the
//! same JWKS everywhere, a new key published before it signs).

use std::time::Duration;

use arbiter::grpc::proto::Reason;
use arbiter::store::{SqlStore, Store, KEY_PURPOSE_ACCESS_TOKEN};
use serde_json::{json, Value};

use crate::support::*;

const ISSUER: &str = "https://arbiter.replicas.test";

async fn replica(url: &str) -> TestServer {
    let url = url.to_owned();
    TestServer::start_with(move |c| {
        c.store.url = Some(url);
        c.oauth.issuer = ISSUER.into();
        c.oauth.open_registration = true;
        c.oauth.key_publish_ahead_seconds = Some(3);
    })
    .await
}

fn http(server: &TestServer, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().request(method, format!("http://{}{path}", server.http_addr))
}

async fn jwks_kids(server: &TestServer) -> Vec<String> {
    let jwks: Value = http(server, reqwest::Method::GET, "/jwks.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The HTTP base URL of a replica.
fn base(server: &TestServer) -> String {
    format!("http://{}", server.http_addr)
}

/// A client registered (RFC 7591, open registration) at the replica behind `base`.
struct Registered {
    id: String,
    secret: String,
    body: Value,
}

async fn register(base: &str, name: &str) -> Registered {
    let body = register_openly(base, name, "read").await;
    Registered {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().unwrap().to_owned(),
        body,
    }
}

/// A `read` token for `client` from the replica behind `base`.
async fn token(base: &str, client: &Registered) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Revokes `token` (RFC 7009) at the replica behind `base`.
async fn revoke(base: &str, client: &Registered, token: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Whether the server behind `client` answers `INVALID_TOKEN` for `token` within `limit`
/// seconds.
async fn refused_within_seconds(client: &Authorizer, token: &str, limit: u64) -> bool {
    eventually(Duration::from_secs(limit), || {
        let mut client = client.clone();
        let ask = request(token, "GET", "/item/1", json!({}));
        async move {
            let r = client.authorize(ask).await.ok()?.into_inner();
            (reason(&r) == Reason::InvalidToken).then_some(())
        }
    })
    .await
    .is_some()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn two_replicas_sharing_postgres_are_one_service() {
    let Some(url) = postgres_database("replicas").await else {
        return;
    };
    // Started together on an empty database: they race to create the schema and the first
    // key, and agree.
    let (mut a, mut b) = tokio::join!(replica(&url), replica(&url));
    let kids = jwks_kids(&a).await;
    assert_eq!(kids.len(), 1, "one first key, not one per replica");
    assert_eq!(jwks_kids(&b).await, kids);

    // Registered through A (RFC 7591), served by B.
    let client = register(&base(&a), "replicated").await;
    let from_b = token(&base(&b), &client).await;
    let r = a.authorize(&from_b, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "A trusts B's token: {r:?}");

    // Revoked at A (RFC 7009): B refuses it within a few seconds.
    revoke(&base(&a), &client, &from_b).await;
    assert!(
        refused_within_seconds(&b.client, &from_b, 5).await,
        "B still allows a token revoked at A"
    );

    // Key rotation asked of both at once: one rotates, the other adopts its key.
    let from_a_before = token(&base(&a), &client).await;
    let (ka, kb) = tokio::join!(
        a.arbiter.rotate_signing_key(),
        b.arbiter.rotate_signing_key()
    );
    let (ka, kb) = (ka.unwrap(), kb.unwrap());
    assert_eq!(ka, kb, "both replicas name the same new key");
    let store = SqlStore::connect(&url, 1).await.unwrap();
    let keys = store.signing_keys(KEY_PURPOSE_ACCESS_TOKEN).await.unwrap();
    assert_eq!(keys.len(), 2, "one rotation, not two: {keys:?}");
    assert_eq!(keys[0].kid, ka);
    // Published at once everywhere, used for signing only after the publish-ahead time.
    assert_eq!(jwks_kids(&a).await, [ka.clone(), kids[0].clone()]);
    assert_eq!(jwks_kids(&b).await, [ka.clone(), kids[0].clone()]);
    let during = token(&base(&a), &client).await;
    assert_eq!(
        kid(&during),
        kids[0],
        "the old key signs while the new one propagates"
    );
    let after = eventually(Duration::from_secs(15), || async {
        let both = [
            token(&base(&a), &client).await,
            token(&base(&b), &client).await,
        ];
        both.iter().all(|t| kid(t) == ka).then_some(both)
    })
    .await
    .expect("both replicas sign with the new key after the publish-ahead time");
    for t in after.iter().chain([&from_a_before, &during]) {
        for server in [&mut a, &mut b] {
            let r = server.authorize(t, "GET", "/item/1", json!({})).await;
            assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
        }
    }

    // Deleted at B (RFC 7592): A refuses its tokens within a few seconds, and new ones.
    let rat = client.body["registration_access_token"].as_str().unwrap();
    let deleted = http(
        &b,
        reqwest::Method::DELETE,
        &format!("/register/{}", client.id),
    )
    .bearer_auth(rat)
    .send()
    .await
    .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(
        refused_within_seconds(&a.client, &after[0], 5).await,
        "A still allows a deleted client's token"
    );
    let resp = http(&a, reqwest::Method::POST, "/token")
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// The same as two `arbiter serve` processes: registered at one, served by the other, a
/// revocation at one refused by the other.
#[tokio::test]
async fn two_serve_processes_on_one_database() {
    let Some(url) = postgres_database("processes").await else {
        return;
    };
    let config = format!(
        "watch_policies = false\npolicies = \"policies\"\ndata_dir = \"data\"\n\
         [store]\nurl = \"{url}\"\n[oauth]\nissuer = \"{ISSUER}\"\nopen_registration = true\n"
    );
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [&dir_a, &dir_b] {
        copy_dir(&bundled_policies(), &d.path().join("policies"));
    }
    let a = crate::support::ServeProcess::start(dir_a.path(), &config);
    let b = crate::support::ServeProcess::start(dir_b.path(), &config);
    let client = register(&a.http, "two processes").await;
    let token = token(&b.http, &client).await;
    let mut at_a = connect_url(&a.addr).await;
    let r = at_a
        .authorize(request(&token, "GET", "/item/1", json!({})))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason(&r), Reason::Allowed, "A trusts B's token: {r:?}");
    revoke(&a.http, &client, &token).await;
    assert!(
        refused_within_seconds(&connect_url(&b.addr).await, &token, 5).await,
        "process B still allows a token revoked at process A"
    );
}

type Authorizer =
    arbiter::grpc::proto::authorizer_client::AuthorizerClient<tonic::transport::Channel>;

async fn connect_url(url: &str) -> Authorizer {
    Authorizer::connect(url.to_owned()).await.unwrap()
}

/// With its database gone, a replica goes on deciding from memory; the token endpoint says
/// `server_error` (500) and the store failures are counted in `/metrics`.
#[tokio::test]
async fn decisions_go_on_while_the_database_is_gone() {
    let Some(url) = postgres_database("outage").await else {
        return;
    };
    let mut server = replica(&url).await;
    let client = register(&base(&server), "outage").await;
    let access = token(&base(&server), &client).await;

    drop_postgres_database(&url).await;
    let r = server.authorize(&access, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "decided from memory: {r:?}");
    let denied = server
        .authorize(&access, "DELETE", "/item/1", json!({}))
        .await;
    assert_ne!(reason(&denied), Reason::Allowed, "and denials stay denials");

    // Past the client cache's second, the token endpoint needs the store.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = http(&server, reqwest::Method::POST, "/token")
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "server_error", "{body}");

    let counted = eventually(Duration::from_secs(5), || async {
        let text = http(&server, reqwest::Method::GET, "/metrics")
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (text.contains("arbiter_store_errors_total{operation=\"client_lookup\"}")
            && text.contains("arbiter_store_errors_total{operation=\"disabled_clients\"}"))
        .then_some(())
    })
    .await;
    assert!(counted.is_some(), "store failures are counted by operation");
}
