//! Issue 14, defect 8 (the size half): a JWKS response without a length (chunked) is read
//! only up to the bound, then refused — it used to be read whole for as long as the request
//! could last.

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
