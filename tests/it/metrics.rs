//! `GET /metrics`: the counters move with decisions, token cache use, token issuance and
//! errors, and reloads; the live policy version is an info metric.

use arbiter::oauth::clients::{self, ClientSpec};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn counters_follow_what_the_server_does() {
    let mut server = TestServer::start().await;
    let before = scrape(&server).await;
    let token = server.token("demo", None, "read");
    server.authorize(&token, "GET", "/item/1", json!({})).await;
    server.authorize(&token, "GET", "/item/1", json!({})).await;
    server.authorize(&token, "POST", "/items", json!({})).await;

    let store = server.store().await;
    let c = clients::create(
        &store,
        &ClientSpec {
            name: "metered".into(),
            scopes: vec!["read".into()],
            auth_method: "client_secret_basic".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{}/token", server.http_addr);
    let ok = http
        .post(&url)
        .basic_auth(&c.record.client_id, c.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad = http
        .post(&url)
        .basic_auth(&c.record.client_id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    server.reload().await;

    let after = scrape(&server).await;
    let delta = |name: &str| sample(&after, name) - sample(&before, name);
    assert!(
        delta("arbiter_decisions_total{decision=\"allow\",reason=\"allow\"}") >= 2.0,
        "{after}"
    );
    assert!(
        delta("arbiter_decisions_total{decision=\"deny\",reason=\"insufficient_scope\"}") >= 1.0
    );
    assert!(delta("arbiter_decision_duration_seconds_count") >= 3.0);
    assert!(delta("arbiter_token_cache_hits_total") >= 2.0);
    assert!(delta("arbiter_token_cache_misses_total") >= 1.0);
    assert_eq!(
        sample(
            &after,
            &format!(
                "arbiter_tokens_issued_total{{client_id=\"{}\",grant_type=\"client_credentials\"}}",
                c.record.client_id
            )
        ),
        1.0
    );
    assert!(delta("arbiter_token_endpoint_errors_total{code=\"invalid_client\"}") >= 1.0);
    assert!(delta("arbiter_policy_reloads_total{outcome=\"unchanged\"}") >= 1.0);
    let version = server.status().await.policy_version;
    assert_eq!(
        sample(
            &after,
            &format!("arbiter_policy_info{{version=\"{version}\"}}")
        ),
        1.0,
        "{after}"
    );
    assert!(!after.contains(&token), "no token in the metrics");
}

/// The HTTP listener does not depend on the authorization server: with `[oauth] enabled =
/// false`, `/metrics` and AuthZEN answer, and the OAuth routes are simply not there.
#[tokio::test]
async fn metrics_and_authzen_answer_without_the_authorization_server() {
    let server = crate::support::TestServer::start_with(|c| c.oauth.enabled = false).await;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("arbiter_"));
    let evaluation = http
        .post(format!("{base}/access/v1/evaluation"))
        .bearer_auth(server.token("demo", None, "read"))
        .json(&serde_json::json!({
            "action": { "name": "GET" },
            "resource": { "type": "route", "id": "/item/{id}" },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(evaluation.status(), 200);
    let body: serde_json::Value = evaluation.json().await.unwrap();
    assert_eq!(body["decision"], true, "{body}");
    let metadata = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), 404);
}
