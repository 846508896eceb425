//! Issue 14, defect 8 (the size half): a JWKS response without a length (chunked) is read
//! only up to the bound, then refused — it used to be read whole for as long as the request
//! could last. Defect 8 (the other half): a client's failing `jwks_uri` is asked once per
//! interval, by one request while the others wait — it used to be fetched again by every
//! `/token` request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn an_endless_chunked_jwks_is_cut_at_the_bound() {
    // A JWKS endpoint that never stops sending.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let endless = axum::routing::get(|| async {
            let chunks = tokio_stream::iter(std::iter::repeat_with(|| {
                Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])
            }));
            axum::body::Body::from_stream(chunks)
        });
        axum::serve(listener, axum::Router::new().route("/jwks", endless)).await
    });
    let data = tempfile::tempdir().unwrap();
    let mut config = arbiter::Config::for_test(bundled_policies(), data.path());
    config.issuers.push(
        toml::from_str(&format!(
            "issuer = \"https://endless.example\"\naudiences = [\"api\"]\njwks_url = \"http://{addr}/jwks\"\n"
        ))
        .unwrap(),
    );
    let started = Instant::now();
    let report = arbiter::server::check_config(&config).await;
    let issuer = report
        .items
        .iter()
        .find(|i| i.what.contains("endless"))
        .expect("the issuer was checked");
    assert!(!issuer.ok);
    assert!(issuer.detail.contains("larger than"), "{}", issuer.detail);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut at the bound, not at the timeout"
    );
}

#[tokio::test]
async fn a_failing_client_jwks_uri_is_asked_once_per_interval_not_per_request() {
    // A client's jwks_uri that fails, counting how often it is asked.
    let asked = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = asked.clone();
    tokio::spawn(async move {
        let failing = axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            }
        });
        axum::serve(listener, axum::Router::new().route("/jwks", failing)).await
    });
    let server = TestServer::start().await;
    let store = server.store().await;
    let spec = arbiter::oauth::clients::ClientSpec {
        name: "keys elsewhere".into(),
        scopes: vec!["read".into()],
        auth_method: "private_key_jwt".into(),
        jwks_uri: Some(format!("http://{addr}/jwks")),
        ..Default::default()
    };
    let record = arbiter::oauth::clients::create(&store, &spec)
        .await
        .unwrap()
        .record;
    let key = TestKey::es256("k1");
    let issuer = server.config.oauth.issuer.clone();
    let token_url = format!("http://{}/token", server.http_addr);
    let attempt = |n: usize| {
        let now = now();
        let assertion = key.sign(&serde_json::json!({
            "iss": record.client_id, "sub": record.client_id, "aud": issuer,
            "iat": now, "exp": now + 60, "jti": format!("a-{n}"),
        }));
        let token_url = token_url.clone();
        async move { assertion_grant(&token_url, &assertion).await.0 }
    };
    // Twenty at once (they share one fetch), then twenty more one by one (they reuse its
    // failure).
    let mut together = tokio::task::JoinSet::new();
    for n in 0..20 {
        together.spawn(attempt(n));
    }
    let at_once: Vec<u16> = together.join_all().await;
    let mut one_by_one = Vec::new();
    for n in 20..40 {
        one_by_one.push(attempt(n).await);
    }
    assert!(
        at_once.iter().chain(&one_by_one).all(|s| *s == 401),
        "{at_once:?} {one_by_one:?}"
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "one fetch for forty requests"
    );
}
