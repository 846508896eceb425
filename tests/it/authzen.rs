//! The OpenID AuthZEN interop cases (copied from openid/authzen into
//! `tests/fixtures/authzen-interop/`) over real HTTP against `examples/authzen/*` served as
//! they are, plus the request checks of the newer certification scenario.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::*;

fn fixture(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/authzen-interop")
        .join(rel);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs a fixture's `evaluation` and `evaluations` cases; the failures, described.
async fn run_cases(server: &TestServer, cases: &Value) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut count = 0;
    for case in cases["evaluation"].as_array().into_iter().flatten() {
        count += 1;
        let (status, body) = post(server, "/access/v1/evaluation", &case["request"]).await;
        if status != 200 || body["decision"] != case["expected"] {
            failures.push(format!("{}: got {status} {body}", case["request"]));
        }
    }
    for case in cases["evaluations"].as_array().into_iter().flatten() {
        count += 1;
        let (status, body) = post(server, "/access/v1/evaluations", &case["request"]).await;
        if status != 200 || body["evaluations"] != case["expected"] {
            failures.push(format!("{}: got {status} {body}", case["request"]));
        }
    }
    (count, failures)
}

#[tokio::test]
async fn the_api_gateway_interop_cases_pass() {
    let server = serve_example("api-gateway").await;
    let cases =
        fixture("api-gateway/interop/authzen-api-gateways/test-harness/test/decisions.json");
    let (count, failures) = run_cases(&server, &cases).await;
    assert_eq!(count, 25);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn the_todo_interop_cases_pass() {
    let server = serve_example("todo").await;
    for (file, expected) in [
        (
            "todo/interop/authzen-todo-backend/test/decisions-authorization-api-1_0-02.json",
            43,
        ),
        (
            "todo/interop/authzen-todo-backend/test/decisions-authorization-api-1_0-01.json",
            40,
        ),
    ] {
        let (count, failures) = run_cases(&server, &fixture(file)).await;
        assert_eq!(count, expected, "{file}");
        assert!(failures.is_empty(), "{file}: {failures:#?}");
    }
}

#[tokio::test]
async fn requests_are_checked_and_batches_keep_their_semantics() {
    let server = serve_example("todo").await;
    let rick = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    let beth = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    let todo =
        |owner: &str| json!({ "type": "todo", "id": "t1", "properties": { "ownerID": owner } });
    for (body, why) in [
        (
            json!({ "action": { "name": "can_read_todos" }, "resource": todo("x") }),
            "no subject",
        ),
        (
            json!({ "subject": { "type": "user" }, "action": { "name": "can_read_todos" }, "resource": todo("x") }),
            "no subject id",
        ),
        (
            json!({ "subject": { "type": "user", "id": rick }, "resource": todo("x") }),
            "no action",
        ),
        (
            json!({ "subject": { "type": "user", "id": rick }, "action": { "name": 7 }, "resource": todo("x") }),
            "action name not a string",
        ),
        (
            json!({ "subject": { "type": "user", "id": rick }, "action": { "name": "can_read_todos" } }),
            "no resource",
        ),
        (json!([1, 2]), "not an object"),
    ] {
        let (status, _) = post(&server, "/access/v1/evaluation", &body).await;
        assert_eq!(status, 400, "{why}");
    }
    let resp = reqwest::Client::new()
        .post(format!("http://{}/access/v1/evaluation", server.http_addr))
        .header("content-type", "application/json")
        .header("x-request-id", "req-42")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["x-request-id"], "req-42");

    // Unknown fields are ignored; an unknown entity type is a deny, not an error.
    let (status, body) = post(
        &server,
        "/access/v1/evaluation",
        &json!({
            "subject": { "type": "user", "id": rick, "extra": true },
            "action": { "name": "can_delete_todo" },
            "resource": todo("morty@the-citadel.com"),
            "unknown": 1,
        }),
    )
    .await;
    assert_eq!(
        (status, body["decision"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let (status, body) = post(
        &server,
        "/access/v1/evaluation",
        &json!({
            "subject": { "type": "robot", "id": "r2" },
            "action": { "name": "can_read_todos" },
            "resource": todo("x"),
        }),
    )
    .await;
    assert_eq!(
        (status, body["decision"].clone()),
        (200, json!(false)),
        "{body}"
    );

    // Batch: defaults replaced whole per item, order and length kept, short-circuits.
    let batch = |semantic: &str| {
        json!({
            "subject": { "type": "user", "id": beth },
            "action": { "name": "can_read_todos" },
            "options": { "evaluations_semantic": semantic },
            "evaluations": [
                { "resource": todo("x") },
                { "action": { "name": "can_delete_todo" }, "resource": todo("x") },
                { "subject": { "type": "user", "id": rick }, "action": { "name": "can_delete_todo" }, "resource": todo("x") },
            ],
        })
    };
    let (_, all) = post(&server, "/access/v1/evaluations", &batch("execute_all")).await;
    assert_eq!(
        all["evaluations"],
        json!([{ "decision": true }, { "decision": false }, { "decision": true }])
    );
    let (_, first_deny) = post(
        &server,
        "/access/v1/evaluations",
        &batch("deny_on_first_deny"),
    )
    .await;
    assert_eq!(
        first_deny["evaluations"],
        json!([{ "decision": true }, { "decision": false }])
    );
    let (_, first_permit) = post(
        &server,
        "/access/v1/evaluations",
        &batch("permit_on_first_permit"),
    )
    .await;
    assert_eq!(first_permit["evaluations"], json!([{ "decision": true }]));
    let (status, _) = post(&server, "/access/v1/evaluations", &batch("sometimes")).await;
    assert_eq!(status, 400);

    let config: Value = reqwest::get(format!(
        "http://{}/.well-known/authzen-configuration",
        server.http_addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        config["access_evaluation_endpoint"],
        format!("{}/access/v1/evaluation", server.config.oauth.issuer)
    );
}

#[tokio::test]
async fn a_bearer_token_can_stand_for_the_subject() {
    let server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let resp = reqwest::Client::new()
        .post(format!("http://{}/access/v1/evaluation", server.http_addr))
        .bearer_auth(&token)
        .json(&json!({ "action": { "name": "GET" }, "resource": { "type": "route", "id": "/health" } }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["decision"], true, "{body}");
    let resp = reqwest::Client::new()
        .post(format!("http://{}/access/v1/evaluation", server.http_addr))
        .bearer_auth("garbage")
        .json(&json!({ "action": { "name": "GET" }, "resource": { "type": "route", "id": "/health" } }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["decision"], false,
        "an invalid token is a deny: {body}"
    );
}

/// The determining policies' outputs are in the response's `context`; those that need path
/// parameters are left out, since a route template has none (and their header is listed for
/// removal, as for any other output header the decision did not set).
#[tokio::test]
async fn outputs_are_in_the_response_context() {
    let server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let resp = reqwest::Client::new()
        .post(format!("http://{}/access/v1/evaluation", server.http_addr))
        .bearer_auth(&token)
        .json(&json!({ "action": { "name": "GET" }, "resource": { "type": "route", "id": "/item/{id}" } }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["decision"], true, "{body}");
    let outputs = &body["context"]["outputs"];
    assert_eq!(
        outputs["headers"],
        json!({"x-caller": "Client::\"demo\""}),
        "{body}"
    );
    assert_eq!(outputs["remove_headers"], json!(["x-item-id"]), "{body}");
    assert!(outputs.get("metadata").is_none(), "{body}");
}

/// AuthZEN goes through the one decision entry: a bearer token's scopes are the token's,
/// never widened by the caller's `context`; route resources use the route index.
#[tokio::test]
async fn a_bearer_tokens_scopes_cannot_be_widened_through_the_context() {
    let server = TestServer::start().await;
    let read_only = server.token("demo", None, "read");
    let ask = |token: String, body: Value| {
        let url = format!("http://{}/access/v1/evaluation", server.http_addr);
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let create = |context: Value| {
        json!({ "action": { "name": "POST" }, "resource": { "type": "route", "id": "/items" },
                "context": context })
    };

    // The token alone: `read` without `fido` or `otp` may not create.
    let (status, body) = ask(read_only.clone(), create(json!({}))).await;
    assert_eq!((status, &body["decision"]), (200, &json!(false)), "{body}");
    assert_eq!(body["context"]["reason"], "insufficient_scope", "{body}");

    // The widening attempt: refused, never merged.
    for key in ["scopes", "token", "client", "params"] {
        let (status, body) = ask(
            read_only.clone(),
            create(json!({ key: ["read", "fido", "write"] })),
        )
        .await;
        assert_eq!(status, 400, "{key}: {body}");
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["error_description"].as_str().unwrap().contains(key),
            "{body}"
        );
    }

    // A token that does carry the scopes is allowed, with the decision id of the log line.
    let (status, body) = ask(server.token("demo", None, "read fido"), create(json!({}))).await;
    assert_eq!((status, &body["decision"]), (200, &json!(true)), "{body}");
    assert_eq!(body["context"]["policies"], json!(["items-create"]));
    assert!(body["context"]["decision_id"].as_str().unwrap().len() >= 32);

    // Unknown routes are `no_route`, as for `Authorize`.
    let (_, body) = ask(
        read_only.clone(),
        json!({ "action": { "name": "GET" }, "resource": { "type": "route", "id": "/nope" } }),
    )
    .await;
    assert_eq!(body["context"]["reason"], "no_route", "{body}");

    // One parser for the header: two schemes or two headers are a 400.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/access/v1/evaluation", server.http_addr))
        .header("authorization", format!("Bearer {read_only}"))
        .header("authorization", format!("Bearer {read_only}"))
        .json(&create(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// Results as a set: the interop runners compare them without regard to order.
fn result_set(v: &Value) -> std::collections::BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(Value::to_string)
        .collect()
}

/// The search interop scenario (subject, resource and action search, 198 cases) and the IdP
/// scenario's resource search (6 cases), against `examples/authzen/search`.
#[tokio::test]
async fn the_search_interop_cases_pass() {
    let server = serve_example("search").await;
    let demo = "search/interop/authzen-search-demo/test-harness/src";
    let runs = [
        (
            "subject",
            format!("{demo}/subject/results.json"),
            "evaluation",
            60,
        ),
        (
            "resource",
            format!("{demo}/resource/results.json"),
            "evaluation",
            18,
        ),
        (
            "action",
            format!("{demo}/action/results.json"),
            "evaluation",
            120,
        ),
        (
            "resource",
            "idp/interop/authzen-idp/test-harness/src/results.json".to_owned(),
            "search",
            6,
        ),
    ];
    for (kind, file, key, expected) in runs {
        let cases = fixture(&file);
        let cases = cases[key].as_array().unwrap();
        assert_eq!(cases.len(), expected, "{file}");
        let mut failures = Vec::new();
        for case in cases {
            let path = format!("/access/v1/search/{kind}");
            let (status, body) = post(&server, &path, &case["request"]).await;
            let want = result_set(&case["expected"]["results"]);
            if status != 200 || result_set(&body["results"]) != want {
                failures.push(format!("{}: got {status} {body}", case["request"]));
            }
            assert_eq!(body["page"]["next_token"], "", "one page: {body}");
        }
        assert!(failures.is_empty(), "{file}: {failures:#?}");
    }
}

#[tokio::test]
async fn search_pages_and_refuses_what_it_cannot_answer() {
    let server = serve_example("search").await;
    let alice_views = json!({
        "subject": { "type": "user", "id": "alice" },
        "action": { "name": "view" },
        "resource": { "type": "record" },
    });
    let (status, all) = post(&server, "/access/v1/search/resource", &alice_views).await;
    assert_eq!(status, 200, "{all}");
    let everything = all["results"].as_array().unwrap().clone();
    assert_eq!(everything.len(), 20, "a manager views every record: {all}");

    // Three at a time: the pages add up to the same results, in the same order, once each.
    let mut paged = Vec::new();
    let mut request = alice_views.clone();
    request["page"] = json!({ "limit": 3 });
    let mut pages = 0;
    loop {
        let (status, body) = post(&server, "/access/v1/search/resource", &request).await;
        assert_eq!(status, 200, "{body}");
        let results = body["results"].as_array().unwrap();
        assert!(results.len() <= 3, "{body}");
        paged.extend(results.iter().cloned());
        pages += 1;
        let next = body["page"]["next_token"].as_str().unwrap().to_owned();
        if next.is_empty() {
            break;
        }
        request["page"] = json!({ "limit": 3, "token": next });
    }
    assert_eq!(paged, everything);
    assert_eq!(pages, 7);

    // A token of one search is refused by another; so is a made-up one and a bad limit.
    let mut first = alice_views.clone();
    first["page"] = json!({ "limit": 3 });
    let (_, body) = post(&server, "/access/v1/search/resource", &first).await;
    let token = body["page"]["next_token"].as_str().unwrap().to_owned();
    let mut other = alice_views.clone();
    other["action"] = json!({ "name": "edit" });
    other["page"] = json!({ "token": token });
    let (status, body) = post(&server, "/access/v1/search/resource", &other).await;
    assert_eq!(status, 400, "{body}");
    for page in [
        json!({ "token": "bm9wZQ" }),
        json!({ "limit": 0 }),
        json!({ "limit": "3" }),
    ] {
        let mut bad = alice_views.clone();
        bad["page"] = page.clone();
        let (status, _) = post(&server, "/access/v1/search/resource", &bad).await;
        assert_eq!(status, 400, "{page}");
    }
    // The searched entity needs its type; the others need everything an evaluation does.
    for (kind, body) in [
        (
            "subject",
            json!({ "subject": {}, "action": { "name": "view" }, "resource": { "type": "record", "id": "101" } }),
        ),
        (
            "resource",
            json!({ "subject": { "type": "user", "id": "alice" }, "resource": { "type": "record" } }),
        ),
        (
            "action",
            json!({ "subject": { "type": "user", "id": "alice" }, "resource": { "type": "record" } }),
        ),
    ] {
        let (status, answer) = post(&server, &format!("/access/v1/search/{kind}"), &body).await;
        assert_eq!(status, 400, "{kind}: {answer}");
    }
    // Unknown ids and types give no results, not an error.
    let (status, body) = post(
        &server,
        "/access/v1/search/action",
        &json!({ "subject": { "type": "user", "id": "nobody" }, "resource": { "type": "record", "id": "101" } }),
    )
    .await;
    assert_eq!((status, body["results"].clone()), (200, json!([])));

    // Route resources are the route index; the metadata advertises every search.
    let server = TestServer::start().await;
    // `client` subjects are entities.json's and the authorization server's registered ones.
    let store = server.store().await;
    let spec = arbiter::oauth::clients::ClientSpec {
        name: "searchable".into(),
        scopes: vec!["read".into()],
        auth_method: "client_secret_basic".into(),
        ..Default::default()
    };
    let registered = arbiter::oauth::clients::create(&store, &spec)
        .await
        .unwrap()
        .record
        .client_id;
    let (status, body) = post(
        &server,
        "/access/v1/search/subject",
        &json!({ "subject": { "type": "client" }, "action": { "name": "GET" }, "resource": { "type": "route", "id": "/health" } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let clients = result_set(&body["results"]);
    assert!(
        clients.contains(&json!({ "type": "client", "id": registered }).to_string()),
        "{body}"
    );

    let token = server.token("demo", None, "read");
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/access/v1/search/resource",
            server.http_addr
        ))
        .bearer_auth(&token)
        .json(&json!({ "action": { "name": "GET" }, "resource": { "type": "route" } }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let ids: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"/item/{id}") && ids.contains(&"/health"),
        "{body}"
    );
    assert!(!ids.contains(&"/items"), "POST only: {body}");
    // Action search on a route asks only the actions the schema lets a token's principal do
    // to an endpoint (not IssueScope, whose context this request does not have).
    let ask = |body: Value| {
        reqwest::Client::new()
            .post(format!(
                "http://{}/access/v1/search/action",
                server.http_addr
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let resp = ask(json!({ "resource": { "type": "route", "id": "/item/{id}" } }))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["results"], json!([{ "name": "GET" }]), "{body}");
    // A context no candidate can be asked with is the caller's error, not an empty answer.
    let resp = ask(json!({ "resource": { "type": "route", "id": "/item/{id}" }, "context": { "scopes": ["admin"] } }))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let meta: Value = reqwest::get(format!(
        "http://{}/.well-known/authzen-configuration",
        server.http_addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for key in [
        "search_subject_endpoint",
        "search_resource_endpoint",
        "search_action_endpoint",
    ] {
        assert!(
            meta[key]
                .as_str()
                .unwrap()
                .ends_with(&format!("/access/v1/search/{}", &key[7..key.len() - 9])),
            "{meta}"
        );
    }
}
