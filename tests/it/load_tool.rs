//! `arbiter bench` against a real server: the numbers it reports add up, for `Authorize`
//! over gRPC and for the token endpoint over HTTP (closed loop and paced).

use arbiter::oauth::clients::{self, ClientSpec};
use arbiter::store::SqliteStore;
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let store = SqliteStore::open(&server.dir.path().join("data/arbiter.db"))
        .await
        .unwrap();
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
