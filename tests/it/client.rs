//! `arbiter::client` against a real server: cache hit, miss, expiry, drop on a new policy
//! version, coalescing of identical requests, fail-closed (and opted-in fail-open) when the
//! server is down.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arbiter::client::{ArbiterClient, Check, ClientConfig};
use arbiter::grpc::proto::Reason;
use serde_json::Map;

use crate::support::*;

fn client(server: &TestServer) -> ArbiterClient {
    ArbiterClient::new(ClientConfig::new(format!("http://{}", server.addr))).unwrap()
}

#[tokio::test]
async fn hits_misses_expiry_and_version_drops() {
    let server = TestServer::start_with(|c| c.decision_cache_ttl_seconds = 1).await;
    let c = client(&server);
    let token = server.token("demo", None, "read");
    let empty = Map::new();
    let check = |path: &'static str| Check {
        token: &token,
        method: "GET",
        path,
        context: &empty,
        client_cert_sha256: "",
    };
    let first = c.check(check("/item/1")).await;
    assert!(first.allowed && !first.cached);
    let second = c.check(check("/item/1")).await;
    assert!(second.cached, "{second:?}");
    assert_eq!(second.decision_id, first.decision_id);
    assert_eq!(c.stats().rpcs.load(Ordering::Relaxed), 1);

    // A different context is another key.
    let mut ctx = Map::new();
    ctx.insert("fraud_score".into(), 95.into());
    let risky = c
        .check(Check {
            context: &ctx,
            client_cert_sha256: "",
            ..check("/item/1")
        })
        .await;
    assert!(!risky.allowed && !risky.cached);

    // The server's TTL (1 s here) bounds the cache.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = c.check(check("/item/1")).await;
    assert!(!third.cached);
    assert_ne!(third.decision_id, first.decision_id);

    // A new policy version, seen on any answer, drops every cached decision.
    assert!(c.check(check("/item/1")).await.cached);
    std::fs::write(
        server.policies().join("extra.cedar"),
        "@id(\"extra\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/extra\");\n",
    )
    .unwrap();
    let reloaded = server.reload().await;
    assert_ne!(reloaded.policy_version, first.policy_version);
    let other = c.check(check("/item/2")).await;
    assert_eq!(other.policy_version, reloaded.policy_version);
    assert_eq!(c.stats().version_drops.load(Ordering::Relaxed), 1);
    let after = c.check(check("/item/1")).await;
    assert!(!after.cached, "dropped with the old version");
    assert_eq!(after.policy_version, reloaded.policy_version);
}

#[tokio::test]
async fn identical_requests_on_a_miss_share_one_rpc() {
    let server = TestServer::start().await;
    let c = Arc::new(client(&server));
    let token = Arc::new(server.token("demo", None, "read"));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (c, token) = (c.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let empty = Map::new();
            c.check(Check {
                token: &token,
                method: "GET",
                path: "/item/9",
                context: &empty,
                client_cert_sha256: "",
            })
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let d = t.await.unwrap();
        assert!(d.allowed);
        ids.insert(d.decision_id);
    }
    assert_eq!(ids.len(), 1, "one decision for all");
    assert_eq!(c.stats().rpcs.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_unreachable_pdp_is_a_deny_unless_fail_open_was_chosen() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let empty = Map::new();
    let check = Check {
        token: "x",
        method: "GET",
        path: "/item/1",
        context: &empty,
        client_cert_sha256: "",
    };
    let closed = ArbiterClient::new(ClientConfig::new(format!("http://{addr}"))).unwrap();
    let started = std::time::Instant::now();
    let d = closed.check(check).await;
    assert!(!d.allowed && d.unavailable, "{d:?}");
    assert_eq!(d.reason, Reason::Error);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the deadline"
    );
    assert!(
        !closed.check(check).await.cached,
        "failures are never cached"
    );

    let mut config = ClientConfig::new(format!("http://{addr}"));
    config.fail_open = true;
    let open = ArbiterClient::new(config).unwrap();
    let d = open.check(check).await;
    assert!(d.allowed && d.unavailable, "{d:?}");
}
