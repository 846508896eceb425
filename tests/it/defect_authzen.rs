//! Issue 14, defect 3: one AuthZEN request cannot make the decision point copy, decide and
//! log a huge identifier a thousand times (the size half), and the AuthZEN API
//! authenticates its callers (the other half). With
//! `pep_authentication = "token"` a PEP brings a bearer token with the PEP scope; with
//! `"certificate"` a TLS client certificate from the client CA; `auto` (the default) asks
//! for either on a listener that is not loopback. On the code before this change anyone who
//! reached the listener could ask any question.

use std::time::Duration;

use arbiter::config::{ClientCerts, PepAuthentication};
use serde_json::{json, Value};

use crate::support::tls::{start_with, Ca};
use crate::support::*;

fn question() -> Value {
    json!({
        "subject": { "type": "user", "id": "alice" },
        "action": { "name": "GET" },
        "resource": { "type": "route", "id": "/item/{id}" },
    })
}

#[tokio::test]
async fn a_pep_brings_a_token_with_the_pep_scope() {
    let server = TestServer::start_with(|c| {
        c.authzen.pep_authentication = PepAuthentication::Token;
    })
    .await;
    let url = format!("http://{}/access/v1/evaluation", server.http_addr);
    let ask = |token: Option<String>| {
        let url = url.clone();
        async move {
            let mut request = reqwest::Client::new().post(url).json(&question());
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body, challenge)
        }
    };

    let (status, body, challenge) = ask(None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    assert!(
        challenge.contains("scope=\"arbiter.authzen\""),
        "{challenge}"
    );

    let (status, body, _) = ask(Some(server.token("pep", None, "read"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );

    let (status, body, _) = ask(Some("not-a-jwt".into())).await;
    assert_eq!(status, 401, "{body}");

    let (status, body, _) = ask(Some(server.token("pep", None, "arbiter.authzen"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["decision"].is_boolean(), "{body}");

    // Discovery stays public.
    let metadata = reqwest::get(format!(
        "http://{}/.well-known/authzen-configuration",
        server.http_addr
    ))
    .await
    .unwrap();
    assert_eq!(metadata.status().as_u16(), 200);
}

#[tokio::test]
async fn a_pep_brings_a_certificate_from_the_client_ca() {
    let server_ca = Ca::new("Server CA");
    let clients = Ca::new("PEP CA");
    let server = start_with(server_ca.leaf(false, false), Some(&clients), |c| {
        c.authzen.pep_authentication = PepAuthentication::Certificate;
        if let Some(tls) = c.tls.as_mut() {
            tls.http_client_certs = Some(ClientCerts::Optional);
        }
    })
    .await;
    let stranger = Ca::new("Someone else");
    let call = |identity: Option<(String, String)>| {
        let root = reqwest::Certificate::from_pem(server_ca.pem().as_bytes()).unwrap();
        let url = format!(
            "https://localhost:{}/access/v1/evaluation",
            server.http.port()
        );
        async move {
            let mut builder = reqwest::Client::builder().add_root_certificate(root);
            if let Some((c, k)) = identity {
                builder = builder
                    .identity(reqwest::Identity::from_pem(format!("{c}\n{k}").as_bytes()).unwrap());
            }
            let client = builder.build().unwrap();
            let response = eventually(Duration::from_secs(5), || {
                let request = client.post(&url).json(&question());
                async move { request.send().await.ok() }
            })
            .await
            .expect("the listener answers over TLS");
            response.status().as_u16()
        }
    };
    assert_eq!(call(None).await, 401, "no certificate");
    assert_eq!(
        call(Some(stranger.leaf(true, false))).await,
        401,
        "another CA's"
    );
    assert_eq!(
        call(Some(clients.leaf(true, false))).await,
        200,
        "the PEP CA's"
    );
}

#[test]
fn auto_asks_for_authentication_off_loopback_only() {
    let mut config = arbiter::Config::default();
    assert_eq!(config.authzen_pep_authentication(), PepAuthentication::None);
    config.http_addr = "0.0.0.0:8080".parse().unwrap();
    assert_eq!(
        config.authzen_pep_authentication(),
        PepAuthentication::TokenOrCertificate
    );
    config.authzen.pep_authentication = PepAuthentication::None;
    assert_eq!(config.authzen_pep_authentication(), PepAuthentication::None);
}

/// Issue 14, defect 3 (the size half): one request cannot make the decision point copy,
/// decide and log a huge identifier a thousand times. Identifiers, names and properties are
/// bounded, and a batch may not expand past a budget once its defaults are applied.
#[tokio::test]
async fn oversized_identifiers_and_amplifying_batches_are_refused() {
    let server = serve_example("todo").await;
    let rick = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    let todo = json!({ "type": "todo", "id": "t1", "properties": { "ownerID": "x" } });
    // The attack as reported: a 200 000-character subject id as the default of 1 000 items.
    let huge = "a".repeat(200_000);
    let amplifying = json!({
        "subject": { "type": "user", "id": huge },
        "action": { "name": "can_read_todos" },
        "resource": todo,
        "evaluations": (0..1000).map(|_| json!({})).collect::<Vec<_>>(),
    });
    let (status, body) = post(&server, "/access/v1/evaluations", &amplifying).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{body}"
    );

    // Within every single bound, a default context of 60 KiB copied into 1 000 items is over
    // the batch budget.
    let context = json!({ "note": "x".repeat(60 * 1024) });
    let wide = json!({
        "subject": { "type": "user", "id": rick },
        "action": { "name": "can_read_todos" },
        "context": context,
        "resource": todo,
        "evaluations": (0..100).map(|_| json!({})).collect::<Vec<_>>(),
    });
    let (status, body) = post(&server, "/access/v1/evaluations", &wide).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expand"),
        "{body}"
    );

    // Large but reasonable requests still work.
    let fine = json!({
        "subject": { "type": "user", "id": rick },
        "action": { "name": "can_read_todos" },
        "resource": todo,
        "evaluations": (0..1000).map(|_| json!({})).collect::<Vec<_>>(),
    });
    let (status, body) = post(&server, "/access/v1/evaluations", &fine).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["evaluations"].as_array().unwrap().len(), 1000);
}
