//! The statement workflow driven by `arbiter ssa` as users run it, through the HTTP API (never
//! the database), and a client disabled from the CLI losing its tokens.

use arbiter::grpc::proto::Reason;
use arbiter::oauth::clients::{self, ClientSpec};
use serde_json::{json, Value};

use crate::support::*;

/// Runs `arbiter ssa …` against the server without blocking its runtime.
async fn cli(server: &TestServer, args: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .arg("ssa")
        .args(["--url", &format!("http://{}", server.http_addr)])
        .args(args)
        .env_remove("ARBITER_TOKEN")
        .env_remove("ARBITER_CLIENT_ID")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_drives_the_workflow_through_the_api() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let developer = bootstrap(&server, &http, "arbiter.ssa.request").await;
    let store = server.store().await;
    let reviewer = clients::create(
        &store,
        &ClientSpec {
            name: "security team".into(),
            scopes: vec!["arbiter.ssa.review".into()],
            auth_method: "client_secret_basic".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let reviewer_env = [
        ("ARBITER_CLIENT_ID", reviewer.record.client_id.as_str()),
        ("ARBITER_CLIENT_SECRET", reviewer.secret.as_deref().unwrap()),
    ];
    let dev_env = [("ARBITER_TOKEN", developer.as_str())];

    let (code, request, err) = cli(
        &server,
        &[
            "request",
            "--name",
            "cli-app",
            "--description",
            "d",
            "--contact",
            "c@example.com",
            "--scopes",
            "read write",
            "--justification",
            "j",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1, "no token is an error: {err}");
    assert!(request.is_null());
    let (code, request, err) = cli(
        &server,
        &[
            "--token",
            &developer,
            "request",
            "--name",
            "cli-app",
            "--description",
            "d",
            "--contact",
            "c@example.com",
            "--scopes",
            "read write",
            "--justification",
            "j",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let id = request["id"].as_str().unwrap().to_owned();

    let (code, pending, err) = cli(
        &server,
        &["list", "--review", "--status", "pending"],
        &reviewer_env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(pending[0]["id"], id.as_str());
    let (code, _, err) = cli(&server, &["approve", &id], &dev_env).await;
    assert_eq!(
        code, 2,
        "a requester's approval is refused by policy: {err}"
    );
    // Refused twice over: no review scope, and their own request (separation of duties).
    assert!(err.contains("403 access_denied"), "{err}");
    let (code, approved, err) = cli(
        &server,
        &[
            "approve",
            &id,
            "--scopes",
            "read",
            "--valid-days",
            "30",
            "--reason",
            "ok",
        ],
        &reviewer_env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(approved["approved_scopes"], json!(["read"]));
    let (code, shown, _) = cli(&server, &["show", &id], &dev_env).await;
    assert_eq!(code, 0);
    assert!(shown["software_statement"].is_string());
    let jti = shown["statement_jti"].as_str().unwrap().to_owned();
    let (code, revoked, err) = cli(
        &server,
        &["revoke", &jti, "--reason", "test"],
        &reviewer_env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(revoked["revoked"], true);
    let (code, trail, _) = cli(&server, &["audit", "--request", &id], &reviewer_env).await;
    assert_eq!(code, 0);
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ssa.request", "ssa.approve", "ssa.revoke"]);
}

#[tokio::test]
async fn a_client_disabled_from_the_cli_loses_its_tokens_within_a_second_or_two() {
    let mut server = TestServer::start().await;
    let http = Http::new(&server);
    let store = server.store().await;
    let spec = ClientSpec {
        name: "to disable".into(),
        scopes: vec!["read".into()],
        auth_method: "client_secret_basic".into(),
        ..Default::default()
    };
    let c = clients::create(&store, &spec).await.unwrap();
    let (_, body) = http
        .token(&c.record.client_id, c.secret.as_deref().unwrap(), "read")
        .await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["clients", "disable", &c.record.client_id, "--data-dir"])
        .arg(server.dir.path().join("data"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let refused = eventually(std::time::Duration::from_secs(3), || {
        let token = token.clone();
        let mut client = server.client.clone();
        async move {
            let r = client
                .authorize(request(&token, "GET", "/item/1", json!({})))
                .await
                .ok()?
                .into_inner();
            (reason(&r) == Reason::InvalidToken).then_some(r)
        }
    })
    .await
    .expect("the disabled client's token is refused");
    assert!(refused.errors[0].contains("disabled"), "{refused:?}");
}
