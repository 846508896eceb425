//! Issue 14, defect 7: bounded caches evict in O(1) instead of scanning, and made-up paths
//! cannot fill a gateway's cache. On the code before this change, a full token cache stopped
//! caching new tokens (after scanning all of it on every miss), and every `no_route` answer
//! took a place in the client library's cache.

use std::sync::atomic::Ordering;

use arbiter::client::{ArbiterClient, Check, ClientConfig};
use arbiter::grpc::proto::Reason;
use serde_json::Map;

use crate::support::*;

#[tokio::test]
async fn a_full_token_cache_evicts_instead_of_refusing_new_tokens() {
    let server = TestServer::start_with(|c| c.token_cache_capacity = 64).await;
    let verifier = server.arbiter.pdp().verifier().clone();
    let mut tokens = Vec::new();
    for n in 0..300 {
        let token = server.token(&format!("client-{n}"), None, "read");
        verifier.verify(&token).await.expect("a valid token");
        tokens.push(token);
    }
    assert!(
        verifier.cache_len() <= 64,
        "bounded: {}",
        verifier.cache_len()
    );
    let newest = tokens.last().unwrap();
    assert!(
        verifier.cached(&arbiter::token::digest(newest)).is_some(),
        "the newest token has a place, the cache being full notwithstanding"
    );
}

#[tokio::test]
async fn made_up_paths_take_no_place_in_a_gateways_cache() {
    let server = TestServer::start().await;
    let client = ArbiterClient::new(ClientConfig::new(format!("http://{}", server.addr))).unwrap();
    let empty = Map::new();
    for n in 0..50 {
        let path = format!("/made-up/{n}");
        let decision = client
            .check(Check {
                token: "",
                method: "GET",
                path: &path,
                context: &empty,
                client_cert_sha256: "",
            })
            .await;
        assert_eq!(decision.reason, Reason::NoRoute);
        assert!(!decision.allowed);
    }
    assert_eq!(client.cached(), 0, "no_route answers are not cached");
    assert_eq!(client.stats().rpcs.load(Ordering::Relaxed), 50);
}
