//! Two planes: nothing sent to the control plane can stop or slow a decision. Hostile policy
//! texts through every front door, admin authentication, single-flight reloads, proofs that
//! end with their caller, searches that log once.

use std::collections::HashMap;
use std::time::Duration;

use arbiter::grpc::proto;
use serde_json::json;
use tonic::Code;

use crate::support::*;

/// A policy whose condition is nested `depth` parentheses deep (≈ 4 KB at 300), the text that
/// aborted the process before its nesting was checked.
fn deep_policy(depth: usize) -> String {
    format!(
        "@id(\"deep\")\npermit (principal, action, resource)\nwhen {{ {}true{} }};\n",
        "(".repeat(depth),
        ")".repeat(depth)
    )
}

/// A candidate directory: the bundled set's files, plus `extra`.
fn candidate_with(extra: &[(&str, String)]) -> HashMap<String, String> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(bundled_policies()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.insert(
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            );
        }
    }
    for (name, text) in extra {
        files.insert((*name).to_owned(), text.clone());
    }
    files
}

async fn still_deciding(server: &mut TestServer) {
    let token = server.token("demo", None, "read");
    let answer = server.authorize(&token, "GET", "/item/7", json!({})).await;
    assert!(allowed(&answer), "{answer:?}");
}

#[tokio::test]
async fn a_deeply_nested_candidate_is_refused_and_decisions_go_on() {
    let mut server = TestServer::start().await;
    let mut admin = server.admin().await;
    let refused = admin
        .compare_policies(proto::ComparePoliciesRequest {
            files: candidate_with(&[("deep.cedar", deep_policy(300))]),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("deep.cedar:3") && refused.message().contains("nested"),
        "{refused:?}"
    );
    // So is a candidate whose entities form a parent chain too deep to close.
    let chain: Vec<_> = (0..5_000)
        .map(|i| {
            json!({"uid": {"type": "Group", "id": format!("g{i}")}, "attrs": {},
                   "parents": [{"type": "Group", "id": format!("g{}", i + 1)}]})
        })
        .collect();
    let refused = admin
        .compare_policies(proto::ComparePoliciesRequest {
            files: candidate_with(&[("entities.json", json!(chain).to_string())]),
        })
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("entities.json") && refused.message().contains("deeper"),
        "{refused:?}"
    );
    still_deciding(&mut server).await;
}

#[tokio::test]
async fn a_deeply_nested_file_in_the_watched_directory_keeps_the_last_good_set() {
    let mut server = TestServer::start().await;
    let before = server.status().await.policy_version;
    std::fs::write(server.policies().join("deep.cedar"), deep_policy(300)).unwrap();
    // The watcher's reload and this one join; either way the set stays.
    let reloaded = server.reload().await;
    assert_eq!(
        reloaded.outcome.unwrap().result,
        proto::reload_outcome::Result::Failed as i32
    );
    let error = &reloaded.errors[0];
    assert_eq!(
        (error.file.as_str(), error.line),
        ("deep.cedar", 3),
        "{error:?}"
    );
    assert_eq!(server.status().await.policy_version, before);
    still_deciding(&mut server).await;
}

/// A policy at the bounds (64 levels of brackets, 900 operators chained) loads, decides and
/// is dropped without overflowing any thread's stack.
#[tokio::test]
async fn a_set_at_the_bounds_loads_and_decides() {
    let mut server = TestServer::start().await;
    let chain = vec!["context.scopes.contains(\"read\")"; 300].join(" && ");
    let text = format!(
        "@id(\"bounded\")\npermit (principal, action == Action::\"GET\", resource is Endpoint)\nwhen {{ {}{}{} }};\n",
        "(".repeat(60),
        chain,
        ")".repeat(60)
    );
    std::fs::write(server.policies().join("bounded.cedar"), &text).unwrap();
    let reloaded = server.reload().await;
    assert!(reloaded.errors.is_empty(), "{:?}", reloaded.errors);
    still_deciding(&mut server).await;
    std::fs::remove_file(server.policies().join("bounded.cedar")).unwrap();
    assert!(server.reload().await.errors.is_empty());
    still_deciding(&mut server).await;
}

#[tokio::test]
async fn a_thousand_concurrent_reloads_start_a_handful() {
    let server = TestServer::start().await;
    let counted = |s: &proto::StatusResponse| {
        let c = s.counters.unwrap();
        c.applied + c.unchanged + c.failed
    };
    let before = counted(&server.status().await);
    let admin = server.admin().await;
    let calls: Vec<_> = (0..1_000)
        .map(|_| {
            let mut admin = admin.clone();
            tokio::spawn(async move { admin.reload(proto::ReloadRequest {}).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let started = counted(&server.status().await) - before;
    // Each reload takes every call that arrived while the one before it ran (before
    // single flight: one reload, and one thread, per call).
    assert!(
        (1..=10).contains(&started),
        "1 000 calls started {started} reloads"
    );
}

/// `arbiter serve` with its control plane on a listener others can reach (`0.0.0.0`): the
/// anonymous caller is refused, a token with the read scope reads but cannot reload, one
/// with the write scope can, and the CLI's `--addr` passes the token.
#[test]
fn the_control_plane_off_loopback_needs_an_administrator() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(
        dir.path(),
        "allow_plaintext = true\nadmin_addr = \"0.0.0.0:0\"\n[dev_issuer]\nenabled = true\n",
    );
    let port = server
        .lines()
        .iter()
        .find(|l| l["message"] == "arbiter ready")
        .and_then(|l| l["admin_addr"].as_str().map(str::to_owned))
        .and_then(|a| a.rsplit(':').next().map(str::to_owned))
        .expect("the admin listener's address");
    let admin_url = format!("http://127.0.0.1:{port}");
    let reader = dev_token(dir.path(), "auditor", "arbiter.admin.read");
    let writer = dev_token(dir.path(), "operator", "arbiter.admin");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut admin = proto::policy_admin_client::PolicyAdminClient::connect(admin_url.clone())
            .await
            .unwrap();
        let with = |token: Option<&str>, reload: bool| {
            let mut admin = admin.clone();
            let token = token.map(|t| format!("Bearer {t}"));
            async move {
                if reload {
                    let mut r = tonic::Request::new(proto::ReloadRequest {});
                    if let Some(t) = token {
                        r.metadata_mut().insert("authorization", t.parse().unwrap());
                    }
                    admin.reload(r).await.map(|_| ())
                } else {
                    let mut r = tonic::Request::new(proto::StatusRequest {});
                    if let Some(t) = token {
                        r.metadata_mut().insert("authorization", t.parse().unwrap());
                    }
                    admin.status(r).await.map(|_| ())
                }
            }
        };
        assert_eq!(
            with(None, false).await.unwrap_err().code(),
            Code::Unauthenticated
        );
        assert_eq!(
            with(Some("not-a-token"), false).await.unwrap_err().code(),
            Code::Unauthenticated
        );
        with(Some(&reader), false).await.unwrap();
        assert_eq!(
            with(Some(&reader), true).await.unwrap_err().code(),
            Code::PermissionDenied
        );
        with(Some(&writer), true).await.unwrap();
        // The decision listener serves no control plane at all.
        let grpc = server.addr.clone();
        let mut on_grpc = proto::policy_admin_client::PolicyAdminClient::connect(grpc)
            .await
            .unwrap();
        let code = on_grpc
            .status(proto::StatusRequest {})
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::Unimplemented);
        admin.status(proto::StatusRequest {}).await.unwrap_err();
    });
    // The CLI: refused without the token, answered with it.
    let refused = arbiter_bin()
        .args(["policies", "query", "--addr", &admin_url, "--json"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let answered = run_json(
        arbiter_bin()
            .args(["policies", "query", "--addr", &admin_url, "--json"])
            .env("ARBITER_ADMIN_TOKEN", &reader),
    );
    assert!(
        answered["policies"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{answered}"
    );
}

/// A proof whose caller goes away leaves no solver running: the solver here is a stand-in
/// that never answers and records its process id.
#[test]
fn a_proof_whose_caller_leaves_kills_its_solver() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let pid_file = dir.path().join("solver.pid");
    let solver = dir.path().join("silent-solver");
    std::fs::write(
        &solver,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 600\n",
            pid_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&solver, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = ServeProcess::start(
        dir.path(),
        &format!("[admin]\nsolver = \"{}\"\n", solver.display()),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pid: u32 = runtime.block_on(async {
        let mut admin = proto::policy_admin_client::PolicyAdminClient::connect(server.addr.clone())
            .await
            .unwrap();
        let call = tokio::spawn(async move {
            admin
                .analyze_policies(proto::AnalyzePoliciesRequest {})
                .await
        });
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The caller goes away (its connection with it).
        call.abort();
        pid
    });
    drop(runtime);
    let proc_dir = format!("/proc/{pid}");
    let gone = (0..250).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        // A killed child is reaped by tokio; a zombie counts as gone too.
        std::fs::read_to_string(format!("{proc_dir}/stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true)
    });
    assert!(gone, "the solver (pid {pid}) is still running");
}

#[test]
fn a_search_examines_within_its_budget_and_logs_once() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(dir.path(), "[admin]\nsearch_max_candidates = 2\n");
    let token = dev_token(dir.path(), "demo", "read write");
    let url = format!("{}/access/v1/search/action", server.http);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let question = json!({"resource": {"type": "route", "id": "/item/{id}"}, "context": {}});
        let answer = post_json(&url, Some(&token), &question).await;
        // At most two candidates examined: a next page is offered.
        assert!(
            answer["results"].as_array().is_some_and(|r| r.len() <= 2),
            "{answer}"
        );
        assert!(
            !answer["page"]["next_token"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{answer}"
        );
        // A body over the search budget is refused before anything is decided.
        let status = http
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"resource": {"type": "route", "id": "/item/{id}"},
                          "context": {"pad": "x".repeat(70 * 1024)}}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    });
    std::thread::sleep(Duration::from_millis(300));
    let lines = server.lines();
    let searches: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "authzen search" || l["message"] == "authzen search")
        .collect();
    assert_eq!(searches.len(), 1, "{lines:?}");
    let decisions = lines
        .iter()
        .filter(|l| l["target"] == "arbiter::decision")
        .count();
    assert_eq!(decisions, 0, "a search writes no line per candidate");
}

/// Over TLS with `[admin] authentication = "certificate"`: a client certificate from the
/// administrators' CA reads and reloads; none, or one from another CA, is refused; the
/// decision service on the same listener needs none.
#[tokio::test]
async fn an_administrators_certificate_admits_and_others_do_not() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let server_ca = crate::support::tls::Ca::new("server CA");
    let admins = crate::support::tls::Ca::new("administrators");
    let strangers = crate::support::tls::Ca::new("strangers");
    let admins_pem = admins.pem();
    let server = crate::support::tls::start_with(server_ca.leaf(false, false), None, |c| {
        let file = c.policies.parent().unwrap().join("admins-ca.pem");
        std::fs::write(&file, &admins_pem).unwrap();
        c.admin.client_ca_file = Some(file);
        c.admin.authentication = arbiter::config::AdminAuthentication::Certificate;
        if let Some(tls) = c.tls.as_mut() {
            tls.grpc_client_certs = Some(arbiter::config::ClientCerts::Optional);
        }
    })
    .await;
    let channel = |identity: Option<(String, String)>| {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(server_ca.pem()))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let url = format!("https://127.0.0.1:{}", server.grpc.port());
        async move {
            Endpoint::from_shared(url)
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect_timeout(Duration::from_secs(3))
                .connect()
                .await
                .unwrap()
        }
    };
    let admin_cert = admins.leaf(true, false);
    let mut admin =
        proto::policy_admin_client::PolicyAdminClient::new(channel(Some(admin_cert)).await);
    admin.status(proto::StatusRequest {}).await.unwrap();
    admin.reload(proto::ReloadRequest {}).await.unwrap();
    for identity in [None, Some(strangers.leaf(true, false))] {
        let mut other = proto::policy_admin_client::PolicyAdminClient::new(channel(identity).await);
        let refused = other.status(proto::StatusRequest {}).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    // Decisions on the same listener ask for no certificate.
    let mut decisions = proto::authorizer_client::AuthorizerClient::new(channel(None).await);
    let answer = decisions
        .authorize(request("", "GET", "/health", json!({})))
        .await
        .unwrap()
        .into_inner();
    assert!(allowed(&answer), "{answer:?}");
}
