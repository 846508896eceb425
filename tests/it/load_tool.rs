//! `arbiter bench` against a real server: the numbers it reports add up, for `Authorize`
//! over gRPC and for the token endpoint over HTTP (closed loop and paced).

use arbiter::oauth::clients::{self, ClientSpec};
use serde_json::Value;

use crate::support::*;

/// Runs the load tool as a child process without blocking the server in this runtime.
async fn bench(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .arg("bench")
        .args(args)
        .args(["--json", "--warmup", "0"])
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_success(&out);
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["target"].clone()
}

#[tokio::test]
async fn authorize_load_counts_every_request_of_the_bundled_mix() {
    let server = TestServer::start().await;
    let data = server.dir.path().join("data");
    let report = bench(
        &[
            "--addr",
            &format!("http://{}", server.addr),
            "--requests",
            "60",
            "--concurrency",
            "1",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(report["requests"], 60, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    // The bundled mix is three allows in six requests (one worker goes through it in order).
    assert_eq!(report["allowed"], 30, "{report}");
}

#[tokio::test]
async fn token_load_grants_tokens_with_and_without_keep_alive_and_paced() {
    let server = TestServer::start().await;
    let store = server.store().await;
    let spec = ClientSpec {
        name: "bench".into(),
        scopes: vec!["read".into()],
        auth_method: "client_secret_basic".into(),
        ..Default::default()
    };
    let created = clients::create(&store, &spec).await.unwrap();
    let secret = created.secret.unwrap();
    let base = format!("http://{}", server.http_addr);
    let env = [
        ("CLIENT_ID", created.record.client_id.as_str()),
        ("CLIENT_SECRET", secret.as_str()),
    ];
    for extra in [&[][..], &["--no-keep-alive"][..]] {
        let mut args = vec![
            "--token-endpoint",
            &base,
            "--requests",
            "40",
            "--concurrency",
            "4",
            "--scope",
            "read",
        ];
        args.extend_from_slice(extra);
        let report = bench(&args, &env).await;
        assert_eq!(report["requests"], 40, "{extra:?}: {report}");
        assert_eq!(report["allowed"], 40, "{extra:?}: {report}");
        assert_eq!(report["errors"], 0, "{extra:?}: {report}");
    }
    let paced = bench(
        &[
            "--token-endpoint",
            &base,
            "--rate",
            "200",
            "--duration",
            "1",
            "--concurrency",
            "4",
        ],
        &env,
    )
    .await;
    let n = paced["requests"].as_u64().unwrap();
    assert!(
        (150..=210).contains(&n),
        "about 200 paced requests: {paced}"
    );
    assert_eq!(paced["errors"], 0, "{paced}");

    let wrong = bench(
        &["--token-endpoint", &base, "--requests", "5"],
        &[
            ("CLIENT_ID", created.record.client_id.as_str()),
            ("CLIENT_SECRET", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        wrong["errors"], 5,
        "a refused token request is an error: {wrong}"
    );
}

#[tokio::test]
async fn http_load_through_the_gateway_counts_answers() {
    let server = TestServer::start().await;
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = upstream.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(arbiter::bench::echo::serve_http_echo(
        upstream,
        stop.clone(),
    ));
    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = gw_listener.local_addr().unwrap();
    tokio::spawn(arbiter::gateway::serve(
        gw_listener,
        arbiter::gateway::GatewayConfig::new(
            format!("http://{up}"),
            format!("http://{}", server.addr),
        ),
        stop.clone(),
    ));
    let token = server.token("demo", None, "read");
    let through = bench(
        &[
            "--http-url",
            &format!("http://{gw}/item/1"),
            "--token",
            &token,
            "--requests",
            "30",
            "--concurrency",
            "3",
        ],
        &[],
    )
    .await;
    assert_eq!(
        (through["requests"].as_u64(), through["errors"].as_u64()),
        (Some(30), Some(0)),
        "{through}"
    );
    let denied = bench(
        &[
            "--http-url",
            &format!("http://{gw}/item/1"),
            "--requests",
            "5",
        ],
        &[],
    )
    .await;
    assert_eq!(denied["errors"], 5, "401s are errors: {denied}");
    let direct = bench(
        &[
            "--http-url",
            &format!("http://{up}/item/1"),
            "--requests",
            "10",
        ],
        &[],
    )
    .await;
    assert_eq!(direct["errors"], 0, "{direct}");
    stop.cancel();
}
