//! Issue 14, defect 1: a client cannot undo its own disable. An RFC 7592 update reads the
//! client, then its body; a client that holds the body back while it is disabled (an admin's
//! `clients disable`, a revoked statement) used to write every column back — `disabled`
//! included — and come back to life. Updates never write `disabled` and apply only to a
//! client that is still enabled.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_client_holding_its_update_back_stays_disabled() {
    let server = TestServer::start_with(|c| c.oauth.open_registration = true).await;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let registered = register_openly(&base, "slow", "read").await;
    let id = registered["client_id"].as_str().unwrap().to_owned();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();
    let rat = registered["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The update starts: headers (and the registration access token) now, the body later.
    let body = json!({ "client_id": id, "client_name": "slow, renamed", "scope": "read" })
        .to_string()
        .into_bytes();
    let (first, rest) = body.split_at(10);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    tx.send(Ok(first.to_vec())).await.unwrap();
    let update = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/register/{id}");
        async move {
            http.put(url)
                .bearer_auth(rat)
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap(http_body_util::StreamBody::new(
                    tokio_stream::StreamExt::map(
                        tokio_stream::wrappers::ReceiverStream::new(rx),
                        |chunk: Result<Vec<u8>, std::io::Error>| {
                            chunk.map(|b| http_body::Frame::data(axum::body::Bytes::from(b)))
                        },
                    ),
                )))
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Meanwhile an administrator disables it (as `arbiter clients disable` does).
    let store = server.store().await;
    use arbiter::store::Store as _;
    assert!(store.set_client_disabled(&id, true).await.unwrap());

    // The body arrives: the update is refused and the client stays disabled.
    tx.send(Ok(rest.to_vec())).await.unwrap();
    drop(tx);
    let answer = update.await.unwrap();
    assert_eq!(answer.status(), 401, "{:?}", answer.text().await);
    let record = store.client(&id).await.unwrap().unwrap();
    assert!(record.disabled, "the update must not enable it again");
    assert_eq!(record.name, "slow", "nor change anything else");
    let (status, token) = client_credentials(&base, &id, &secret, "read", &[]).await;
    assert_eq!(status, 401, "{token}");
}
