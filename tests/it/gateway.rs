//! `arbiter gateway` between a real client and a real upstream, asking a real Arbiter: the
//! RFC 6750 answers, forwarded headers, streamed bodies, and an unreachable upstream or PDP.

use std::time::Duration;

use arbiter::gateway::{GatewayConfig, DECISION_HEADER, PRINCIPAL_HEADER};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::upstream::{gateway, upstream};
use crate::support::*;

#[tokio::test]
async fn answers_and_forwards_per_rfc_6750() {
    let server = TestServer::start().await;
    let (up, _up_stop) = upstream().await;
    let mut config = GatewayConfig::new(format!("http://{up}"), format!("http://{}", server.addr));
    config.max_body_bytes = 64 * 1024 * 1024;
    config
        .context_headers
        .push(("x-fraud-score".parse().unwrap(), "fraud_score".into()));
    let (gw, _stop) = gateway(config).await;
    let http = reqwest::Client::new();
    let read = server.token("demo", None, "read");

    // Allowed: forwarded with the decision, the principal and the client address.
    let resp = http
        .get(format!("{gw}/item/7?x=1"))
        .bearer_auth(&read)
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "must not pass")
        .header(PRINCIPAL_HEADER, "Client::\"forged\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["uri"], "/item/7?x=1");
    let h = &seen["headers"];
    assert!(!h[DECISION_HEADER].as_str().unwrap().is_empty());
    assert_eq!(
        h[PRINCIPAL_HEADER], "Client::\"demo\"",
        "the client cannot forge it"
    );
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert!(h["forwarded"]
        .as_str()
        .unwrap()
        .starts_with("for=127.0.0.1;proto=http"));
    assert!(
        h.get("x-secret-hop").is_none(),
        "headers named by Connection are hop-by-hop"
    );
    assert!(h["authorization"].as_str().unwrap().starts_with("Bearer "));

    // Anonymous allow: the client's own `x-arbiter-*` headers are removed all the same.
    let resp = http
        .get(format!("{gw}/health"))
        .header(PRINCIPAL_HEADER, "User::\"admin\"")
        .header("x-arbiter-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    let h = &seen["headers"];
    assert!(h.get(PRINCIPAL_HEADER).is_none(), "{h}");
    assert!(h.get("x-arbiter-role").is_none(), "{h}");
    // Two Authorization headers are a 400, never a guess.
    let resp = http
        .get(format!("{gw}/item/7"))
        .header("authorization", format!("Bearer {read}"))
        .header("authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // No token: 401 with a challenge without an error attribute.
    let resp = http.get(format!("{gw}/item/7")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"arbiter\""
    );
    // Invalid token: 401 invalid_token.
    let resp = http
        .get(format!("{gw}/item/7"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge
            .starts_with("Bearer realm=\"arbiter\", error=\"invalid_token\", error_description=\""),
        "{challenge}"
    );
    // Insufficient scope: 403 with the scopes that would do.
    let resp = http
        .post(format!("{gw}/items"))
        .bearer_auth(&read)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"fido read\"") || challenge.contains("scope=\"otp read\""),
        "{challenge}"
    );
    // A forbid: 403 without a challenge.
    let resp = http
        .get(format!("{gw}/item/7"))
        .bearer_auth(&read)
        .header("x-fraud-score", "95")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("www-authenticate").is_none());
    assert!(resp.headers().get(DECISION_HEADER).is_some());
    let resp = http
        .get(format!("{gw}/item/7"))
        .bearer_auth(&read)
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "X-Forwarded-For from the client is not the client IP"
    );
    // Tokens in the query string are refused by default.
    let resp = http
        .get(format!("{gw}/item/7?access_token={read}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // A large body streams through both ways.
    let create = server.token("demo", None, "read fido");
    let body: Vec<u8> = (0..32 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = hex::encode(Sha256::digest(&body));
    let resp = http
        .post(format!("{gw}/items"))
        .bearer_auth(&create)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["length"], 32 * 1024 * 1024);
    assert_eq!(seen["sha256"], digest.as_str());
}

#[tokio::test]
async fn large_responses_stream_and_dead_peers_are_502_and_503() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    std::fs::write(
        dir.path().join("policies/big.cedar"),
        "@id(\"big\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/big\");\n",
    )
    .unwrap();
    let server = TestServer::start_in(dir, |_| {}).await;
    let (up, up_stop) = upstream().await;
    let (gw, _stop) = gateway(GatewayConfig::new(
        format!("http://{up}"),
        format!("http://{}", server.addr),
    ))
    .await;
    let http = reqwest::Client::new();
    let resp = http.get(format!("{gw}/big")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 16 * 1024 * 1024);

    // Upstream gone: 502.
    up_stop.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let (gw_dead_upstream, _s1) = gateway(GatewayConfig::new(
        format!("http://{dead_addr}"),
        format!("http://{}", server.addr),
    ))
    .await;
    let resp = http
        .get(format!("{gw_dead_upstream}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    // PDP gone: 503, never a forward.
    let (gw_dead_pdp, _s2) = gateway(GatewayConfig::new(
        format!("http://{up}"),
        format!("http://{dead_addr}"),
    ))
    .await;
    let resp = http
        .get(format!("{gw_dead_pdp}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
}

#[tokio::test]
async fn the_binary_reads_its_settings_from_a_config_file() {
    let server = TestServer::start().await;
    let (up, _up_stop) = upstream().await;
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nupstream = \"http://{up}\"\npdp = \"http://{}\"\nstrip_authorization = true\ncontext_headers = [\"x-fraud-score=fraud_score\"]\n",
            server.addr
        ),
    )
    .unwrap();
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["gateway", "--config"])
        .arg(&config)
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let token = server.token("demo", None, "read");
    let seen = eventually(Duration::from_secs(10), || {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let r = http
                .get(format!("{base}/item/1"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(r)
        }
    })
    .await
    .expect("the gateway came up from its config file");
    let seen: Value = seen.json().await.unwrap();
    assert!(
        seen["headers"].get("authorization").is_none(),
        "stripped as configured"
    );
    let resp = http
        .get(format!("{base}/item/1"))
        .bearer_auth(&token)
        .header("x-fraud-score", "99")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "the mapped header reached the decision");
}

#[tokio::test]
async fn applies_the_decision_outputs_of_the_bundled_policies() {
    let server = TestServer::start().await;
    let (up, _up_stop) = upstream().await;
    let config = GatewayConfig::new(format!("http://{up}"), format!("http://{}", server.addr));
    let (gw, _stop) = gateway(config).await;
    let http = reqwest::Client::new();
    let read = server.token("demo", None, "read");

    // `item-read` sets `x-item-id` and `x-caller`: they replace the client's forged copies.
    let resp = http
        .get(format!("{gw}/item/7"))
        .bearer_auth(&read)
        .header("x-item-id", "999")
        .header("X-Caller", "User::\"admin\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-item-id"], "7", "{seen}");
    assert_eq!(seen["headers"]["x-caller"], "Client::\"demo\"", "{seen}");

    // `item-delete` sets neither; the client's copies are dropped all the same.
    let alice = server.token("demo", Some("alice"), "write otp");
    let resp = http
        .delete(format!("{gw}/item/7"))
        .bearer_auth(&alice)
        .header("x-item-id", "999")
        .header("x-caller", "User::\"admin\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert!(seen["headers"].get("x-item-id").is_none(), "{seen}");
    assert!(seen["headers"].get("x-caller").is_none(), "{seen}");

    // `item-zero-is-hidden` answers as a 404 with its message, and no challenge.
    let resp = http
        .get(format!("{gw}/item/0"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("www-authenticate").is_none());
    assert!(resp.headers().get(DECISION_HEADER).is_some());
    let body = resp.text().await.unwrap();
    assert!(body.contains("no such item"), "{body}");
    assert!(
        !body.contains("item-zero-is-hidden"),
        "names no policy: {body}"
    );
}
