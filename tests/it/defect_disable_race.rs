//! Issue 14, defect 1: a client cannot undo its own disable. An RFC 7592 update reads the
//! client, then its body; a client that holds the body back while it is disabled (an admin's
//! `clients disable`, a revoked statement) used to write every column back — `disabled`
//! included — and come back to life. Updates never write `disabled` and apply only to a
//! client that is still enabled. The same for the statement routes: they decide once the
//! body has arrived.

use serde_json::json;

use crate::support::*;

/// The rest of a held-back body, to send when the test says so.
type Rest = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// Sends `request` as JSON with only `first` of its body; the rest goes through the
/// returned sender (dropping it ends the body). The response once the server answers.
async fn send_held_back(
    request: reqwest::RequestBuilder,
    first: &[u8],
) -> (Rest, tokio::task::JoinHandle<reqwest::Response>) {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(Ok(first.to_vec())).await.unwrap();
    let body = http_body_util::StreamBody::new(tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        |chunk: Result<Vec<u8>, std::io::Error>| {
            chunk.map(|b| http_body::Frame::data(axum::body::Bytes::from(b)))
        },
    ));
    let sent = request
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap(body))
        .send();
    (tx, tokio::spawn(async move { sent.await.unwrap() }))
}

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
    let (tx, update) = send_held_back(
        http.put(format!("{base}/register/{id}")).bearer_auth(rat),
        first,
    )
    .await;
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

/// The statement routes decide once the body has arrived: a reviewer whose client is
/// disabled while its approval body is held back is refused, and the request stays pending.
/// The guard used to run on the headers alone, so the late body still approved.
#[tokio::test]
async fn a_reviewer_disabled_while_its_approval_arrives_approves_nothing() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let developer = bootstrap(&server, &http, "arbiter.ssa.request").await;
    let (reviewer, token) = bootstrap_client(&server, &http, "arbiter.ssa.review").await;
    let id = submit_request(&http, &developer, "x", &["read"]).await;

    let (tx, approval) = send_held_back(
        reqwest::Client::new()
            .post(format!("{}/ssa/review/requests/{id}/approve", http.base))
            .bearer_auth(token),
        b"{\"reason\":",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    use arbiter::store::Store as _;
    let store = server.store().await;
    assert!(store.set_client_disabled(&reviewer, true).await.unwrap());
    // The server follows disabled clients once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    tx.send(Ok(b"\"ok\"}".to_vec())).await.unwrap();
    drop(tx);
    let answer = approval.await.unwrap();
    assert_eq!(answer.status(), 401, "{:?}", answer.text().await);
    let (_, request) = http
        .call(
            "GET",
            &format!("/ssa/requests/{id}"),
            Some(&developer),
            None,
        )
        .await;
    assert_eq!(request["status"], "pending", "{request}");
}
