//! The binary as users and their CI run it: start-up failures, `policies validate`, the dev
//! token and `check` round trip.

use std::process::Command;

use crate::support::*;

#[test]
fn invalid_policy_directory_fails_start_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&bundled_policies(), &policies);
    std::fs::write(
        policies.join("broken.cedar"),
        "// a comment\n@id(\"ok\")\npermit(principal, action, resource);\n\n@id(\"bad\")\npermit(principal, action == Action::\"GET\", resource) when { context.nope == 1 };\n",
    )
    .unwrap();
    let out = arbiter_bin()
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--policies",
        ])
        .arg(&policies)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("broken.cedar:6"), "{stderr}");

    let out = arbiter_bin()
        .args(["policies", "validate"])
        .arg(&policies)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.cedar:6"));
}

#[test]
fn syntax_errors_duplicate_ids_and_missing_ids_are_located() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), dir.path());
    std::fs::write(dir.path().join("a.cedar"), "@id(\"dup\")\npermit(principal, action, resource);\n\npermit(principal, action, resource);\n").unwrap();
    std::fs::write(dir.path().join("b.cedar"), "\n\n@id(\"dup\")\npermit(principal, action, resource);\n@id(\"x\") permit(principal, action, resource) when { ;\n").unwrap();
    let err = arbiter::policy::PolicySnapshot::load(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("a.cedar:4: policy has no @id"), "{text}");
    assert!(text.contains("b.cedar:5"), "syntax error located: {text}");
    // b.cedar did not parse, so only a.cedar's problems and b's syntax error are reported.

    std::fs::write(
        dir.path().join("b.cedar"),
        "\n\n@id(\"dup\")\npermit(principal, action, resource);\n",
    )
    .unwrap();
    let text = arbiter::policy::PolicySnapshot::load(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("b.cedar:3: duplicate @id `dup` (first used at a.cedar:1)"),
        "{text}"
    );
}

#[test]
fn bundled_policies_validate() {
    let out = arbiter_bin()
        .args(["policies", "validate"])
        .arg(bundled_policies())
        .output()
        .unwrap();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_token_and_check_round_trip_through_the_binary() {
    let server = TestServer::start().await;
    let data = server.dir.path().join("data");
    let out = arbiter_bin()
        .args([
            "token",
            "dev",
            "--client",
            "demo",
            "--scope",
            "read fido",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_success(&out);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let addr = format!("http://{}", server.addr);
    let check = |method: &str, path: &str| {
        let token = token.clone();
        let addr = addr.clone();
        let (method, path) = (method.to_string(), path.to_string());
        tokio::task::spawn_blocking(move || {
            arbiter_bin()
                .args(["check", "--addr", &addr, "--token", &token, &method, &path])
                .output()
                .unwrap()
        })
    };
    let allow = check("POST", "/items").await.unwrap();
    assert_eq!(
        allow.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allow.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&allow.stdout).unwrap();
    assert_eq!(out["reason"], "REASON_ALLOWED");
    let deny = check("GET", "/fido/config").await.unwrap();
    assert_eq!(deny.status.code(), Some(2));
    let out: serde_json::Value = serde_json::from_slice(&deny.stdout).unwrap();
    assert_eq!(out["reason"], "REASON_INSUFFICIENT_SCOPE");
    assert_eq!(
        out["required_scopes"][0],
        "https://jans.io/oauth/config/fido2.readonly"
    );

    // The short form a person reads (the default on a terminal; `--human` into a pipe).
    let human = |method: &str, path: &str| {
        let out = arbiter_bin()
            .args([
                "check", "--human", "--addr", &addr, "--token", &token, method, path,
            ])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, text) = tokio::task::block_in_place(|| human("POST", "/items"));
    assert_eq!(code, Some(0));
    assert!(text.starts_with("allow (items-create) in "), "{text}");
    assert!(text.contains("as Client::\"demo\""), "{text}");
    let (code, text) = tokio::task::block_in_place(|| human("GET", "/fido/config"));
    assert_eq!(code, Some(2));
    assert!(
        text.starts_with(
            "deny: insufficient_scope — needs https://jans.io/oauth/config/fido2.readonly"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn json_decision_log_and_sighup_reload_through_the_binary() {
    use arbiter::grpc::proto::{
        authorizer_client::AuthorizerClient, policy_admin_client::PolicyAdminClient,
    };
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(
        dir.path(),
        "watch_policies = false\npolicies = \"policies\"\ndata_dir = \"data\"\n",
    );

    // A decision writes one JSON line with its id and reason, naming the token only by jti.
    let key = arbiter::token::keys::load_or_generate_dev_key(&dir.path().join("data")).unwrap();
    let defaults = arbiter::Config::default();
    let token = arbiter::token::mint::mint(
        &key,
        &defaults.dev_issuer.issuer,
        &defaults.dev_issuer.audience,
        &arbiter::token::mint::DevTokenRequest {
            client_id: "demo".into(),
            scopes: vec!["read".into()],
            ttl: std::time::Duration::from_secs(60),
            ..Default::default()
        },
    )
    .unwrap();
    let mut client = AuthorizerClient::connect(server.addr.clone())
        .await
        .unwrap();
    let answer = client
        .authorize(request(&token, "GET", "/item/1", serde_json::json!({})))
        .await
        .unwrap()
        .into_inner();
    let logged = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let lines = server.lines();
        let id = answer.decision_id.clone();
        async move { lines.into_iter().find(|l| l["decision_id"] == id.as_str()) }
    })
    .await
    .expect("the decision was logged");
    assert_eq!(logged["reason"], "allow");
    assert_eq!(logged["resource"], "/item/{id}");
    assert_eq!(logged["principal"], "Client::\"demo\"");
    assert!(logged["token"].as_str().unwrap().starts_with("jti:"));
    assert!(logged["latency_us"].is_u64());
    let everything = server
        .lines()
        .iter()
        .map(ToString::to_string)
        .collect::<String>();
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !everything.contains(signature),
        "the raw token never reaches the log"
    );

    // SIGHUP reloads (the watcher is off, so nothing else could have).
    let mut admin = PolicyAdminClient::connect(server.addr.clone())
        .await
        .unwrap();
    let before = admin
        .status(arbiter::grpc::proto::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    std::fs::write(dir.path().join("policies/extra.cedar"), "@id(\"extra\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/extra\");\n").unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let after = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let mut admin = admin.clone();
        let before = before.policy_version.clone();
        async move {
            let s = admin
                .status(arbiter::grpc::proto::StatusRequest {})
                .await
                .ok()?
                .into_inner();
            (s.policy_version != before).then_some(s)
        }
    })
    .await
    .expect("SIGHUP reloaded the policies");
    assert_eq!(after.policy_count, before.policy_count + 1);
    assert_eq!(
        after.last_reload.unwrap().trigger,
        arbiter::grpc::proto::reload_outcome::Trigger::Signal as i32
    );
}

#[tokio::test]
async fn clients_and_keys_survive_kill_9_mid_request() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let config = "policies = \"policies\"\ndata_dir = \"data\"\n";
    let (id, secret) = create_client(dir.path(), "t", "read payment");
    let mut server = ServeProcess::start(dir.path(), config);
    let jwks: serde_json::Value = reqwest::get(format!("{}/jwks.json", server.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_string();

    // Token requests in flight when the process is killed with SIGKILL.
    let http = reqwest::Client::new();
    let url = format!("{}/token", server.http);
    let mut inflight = Vec::new();
    for _ in 0..50 {
        let req = http
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send();
        inflight.push(tokio::spawn(req));
    }
    let _ = server.child.kill(); // SIGKILL
    let _ = server.child.wait();
    for r in inflight {
        let _ = r.await;
    }

    // Restarted on the same data directory: same client, same signing key.
    let again = ServeProcess::start(dir.path(), config);
    let jwks: serde_json::Value = reqwest::get(format!("{}/jwks.json", again.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    let resp = http
        .post(format!("{}/token", again.http))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap(),
        kid
    );
}

#[tokio::test]
async fn logged_decisions_replay_against_a_candidate_policy_set() {
    use arbiter::grpc::proto::authorizer_client::AuthorizerClient;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(
        dir.path(),
        "watch_policies = false\npolicies = \"policies\"\ndata_dir = \"data\"\n",
    );
    let key = arbiter::token::keys::load_or_generate_dev_key(&dir.path().join("data")).unwrap();
    let defaults = arbiter::Config::default();
    let token = |scopes: &[&str]| {
        arbiter::token::mint::mint(
            &key,
            &defaults.dev_issuer.issuer,
            &defaults.dev_issuer.audience,
            &arbiter::token::mint::DevTokenRequest {
                client_id: "demo".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ttl: std::time::Duration::from_secs(60),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let mut client = AuthorizerClient::connect(server.addr.clone())
        .await
        .unwrap();
    let tokens = [
        token(&["read", "otp"]),
        token(&["read", "fido"]),
        token(&["read"]),
    ];
    let requests = [
        request(&tokens[0], "POST", "/items", serde_json::json!({})),
        request(&tokens[1], "POST", "/items", serde_json::json!({})),
        request(
            &tokens[2],
            "GET",
            "/item/3",
            serde_json::json!({ "fraud_score": 90 }),
        ),
        request("", "GET", "/health", serde_json::json!({})),
        request("not-a-token", "GET", "/item/3", serde_json::json!({})),
    ];
    let mut ids = Vec::new();
    for r in requests {
        ids.push(client.authorize(r).await.unwrap().into_inner().decision_id);
    }
    let lines = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let lines = server.lines();
        let ids = ids.clone();
        async move {
            let found = lines
                .iter()
                .filter(|l| ids.iter().any(|id| l["decision_id"] == id.as_str()))
                .count();
            (found == ids.len()).then_some(lines)
        }
    })
    .await
    .expect("every decision was logged");
    let log = dir.path().join("decisions.jsonl");
    std::fs::write(
        &log,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();

    // The candidate drops `fido` as a second factor.
    let candidate = dir.path().join("candidate");
    copy_dir(&dir.path().join("policies"), &candidate);
    let items = std::fs::read_to_string(candidate.join("items.cedar")).unwrap();
    let changed = items
        .replace(
            "@scopes(\"read && (fido || otp)\")",
            "@scopes(\"read && otp\")",
        )
        .replace(
            "context.scopes.containsAny([\"fido\", \"otp\"])",
            "context.scopes.contains(\"otp\")",
        );
    assert_ne!(changed, items);
    std::fs::write(candidate.join("items.cedar"), changed).unwrap();

    let out = arbiter_bin()
        .args(["policies", "replay", "--json", "--log"])
        .arg(&log)
        .arg("--candidate")
        .arg(&candidate)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["decisions"], 5, "{report}");
    assert_eq!(report["replayed"], 4, "{report}");
    assert_eq!(report["not_replayable"], 1, "the rejected token: {report}");
    assert_eq!(report["decision_changes"], 1, "{report}");
    let change = &report["changes"][0];
    assert_eq!(change["decision_id"], ids[1].as_str());
    assert_eq!(change["request"], "POST /items");
    assert_eq!(change["before"]["decision"], "allow");
    assert_eq!(
        change["before"]["policies"],
        serde_json::json!(["items-create"])
    );
    assert_eq!(change["after"]["decision"], "deny");
    assert_eq!(change["after"]["reason"], "insufficient_scope");

    // The same log against the live set changes nothing.
    let out = arbiter_bin()
        .args(["policies", "replay", "--log"])
        .arg(&log)
        .arg("--candidate")
        .arg(dir.path().join("policies"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The log holds claims, never the token.
    let text = std::fs::read_to_string(&log).unwrap();
    for t in &tokens {
        assert!(!text.contains(t.rsplit('.').next().unwrap()));
    }
    assert!(
        text.contains("\\\"scope\\\":\\\"read fido\\\""),
        "the claims are there"
    );
}

#[test]
fn serve_check_config_reports_every_part() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let run = |config: &str| check_config(dir.path(), config);
    let (code, out) = run("policies = \"policies\"\ndata_dir = \"data\"\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok   policies: 22 policies"), "{out}");
    assert!(out.contains("ok   store: 0 clients"), "{out}");
    std::fs::write(dir.path().join("jwks.json"), r#"{"keys": []}"#).unwrap();
    let (code, out) = run(
        "policies = \"policies\"\ndata_dir = \"data\"\n[[issuers]]\nissuer = \"https://idp.example\"\naudiences = [\"api\"]\njwks_file = \"missing.json\"\n",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL issuer https://idp.example: missing.json"),
        "{out}"
    );
    std::fs::write(dir.path().join("policies/broken.cedar"), "permit (").unwrap();
    let (code, out) = run("policies = \"policies\"\ndata_dir = \"data\"\n");
    assert_eq!(code, Some(3), "{out}");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let mut server = ServeProcess::start(
        dir.path(),
        "policies = \"policies\"\ndata_dir = \"data\"\nshutdown_grace_seconds = 5\n",
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let exit = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        server.lines().iter().any(|l| l["message"] == "stopped"),
        "the last line was flushed"
    );
}

#[tokio::test]
async fn the_replay_record_can_be_turned_off() {
    use arbiter::grpc::proto::authorizer_client::AuthorizerClient;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(
        dir.path(),
        "watch_policies = false\npolicies = \"policies\"\ndata_dir = \"data\"\ndecision_log_replay = false\n",
    );
    let mut client = AuthorizerClient::connect(server.addr.clone())
        .await
        .unwrap();
    let id = client
        .authorize(request("", "GET", "/health", serde_json::json!({})))
        .await
        .unwrap()
        .into_inner()
        .decision_id;
    let line = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let lines = server.lines();
        let id = id.clone();
        async move { lines.into_iter().find(|l| l["decision_id"] == id.as_str()) }
    })
    .await
    .expect("the decision was logged");
    assert_eq!(line["decision"], "allow");
    assert!(line.get("replay").is_none(), "{line}");
}

/// Without an explicit `[oauth] issuer`, the issuer and every endpoint of the metadata are
/// on the HTTP listener, so a stock OAuth client is sent where something listens.
#[tokio::test]
async fn the_issuer_follows_the_http_listener() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let server = ServeProcess::start_at(dir.path(), "", &format!("127.0.0.1:{port}"));
    assert_eq!(server.http, format!("http://127.0.0.1:{port}"));
    let metadata: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.http
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["issuer"], server.http.as_str(), "{metadata}");
    for endpoint in ["token_endpoint", "jwks_uri", "registration_endpoint"] {
        let url = metadata[endpoint].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("{}/", server.http)),
            "{endpoint}: {url}"
        );
    }
    // The endpoint it names answers.
    let jwks = reqwest::get(metadata["jwks_uri"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
}

/// The token endpoint's scope decisions go through the one decision entry: each writes the
/// same decision log line (decision id, principal, action `IssueScope`, resource, reason,
/// policies) as any `Authorize`.
#[tokio::test]
async fn issued_scopes_are_logged_like_every_decision() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(dir.path(), "[oauth]\ntrusted_proxies = [\"127.0.0.0/8\"]\n");
    let (id, secret) = create_client(dir.path(), "t", "read payment");
    let (_, body) = client_credentials(
        &server.http,
        &id,
        &secret,
        "read payment",
        &[("x-fraud-score", "75")],
    )
    .await;
    assert_eq!(body["scope"], "read", "{body}");
    let lines = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let lines: Vec<serde_json::Value> = server
            .lines()
            .into_iter()
            .filter(|l| l["message"] == "decision" && l["action"] == "IssueScope")
            .collect();
        async move { (lines.len() == 2).then_some(lines) }
    })
    .await
    .expect("two scope decisions were logged");
    let of = |scope: &str| {
        lines
            .iter()
            .find(|l| l["resource"] == format!("Scope::\"{scope}\""))
            .unwrap()
            .clone()
    };
    let read = of("read");
    assert_eq!(read["decision"], "allow");
    assert_eq!(read["principal"], format!("Client::\"{id}\""));
    assert!(read["decision_id"].as_str().unwrap().len() >= 32);
    let payment = of("payment");
    assert_eq!(payment["decision"], "deny", "{payment}");
    assert_eq!(payment["reason"], "policy_deny");
    assert!(payment["policies"]
        .to_string()
        .contains("no-payment-scope-when-fraud-is-likely"));
}

/// Completions load in bash, and the man page is roff, both from the clap definitions.
#[test]
fn completions_load_in_bash_and_the_man_page_renders() {
    let out = arbiter_bin()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("arbiter.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p arbiter",
            script.display()
        ))
        .output()
        .unwrap();
    assert_success(&loaded);
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("arbiter"));
    for shell in ["zsh", "fish"] {
        let out = arbiter_bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let man = arbiter_bin().arg("man").output().unwrap();
    assert!(man.status.success());
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(
        text.starts_with(".ie") || text.contains(".TH arbiter"),
        "{text}"
    );
    assert!(text.contains("serve"), "subcommands are listed");
}

/// `policies fmt` is Cedar's formatter: a second run changes nothing, `--check` fails on an
/// unformatted file and exits 3 on one that does not parse; the bundled set is formatted.
#[test]
fn policies_fmt_is_idempotent_and_check_fails_on_unformatted_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.cedar");
    std::fs::write(
        &file,
        "// kept\n@id(\"a\")\npermit(principal,action==Action::\"GET\",resource)when{context.scopes.contains(\"read\")};\n",
    )
    .unwrap();
    let fmt = |args: &[&str]| {
        arbiter_bin()
            .args(["policies", "fmt"])
            .args(args)
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert_eq!(fmt(&["--check"]).status.code(), Some(1));
    assert_eq!(fmt(&[]).status.code(), Some(0));
    let once = std::fs::read_to_string(&file).unwrap();
    assert!(once.contains("// kept"));
    let again = fmt(&[]);
    assert_eq!(again.status.code(), Some(0));
    assert!(again.stdout.is_empty(), "nothing changed the second time");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), once);
    assert_eq!(fmt(&["--check"]).status.code(), Some(0));
    std::fs::write(dir.path().join("broken.cedar"), "permit(").unwrap();
    assert_eq!(fmt(&["--check"]).status.code(), Some(3));

    let bundled = arbiter_bin()
        .args(["policies", "fmt", "--check"])
        .arg(bundled_policies())
        .output()
        .unwrap();
    assert_eq!(
        bundled.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&bundled.stdout)
    );
}
