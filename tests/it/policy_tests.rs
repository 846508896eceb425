//! `arbiter policies test`: the bundled policies' own tests pass, and a failing case is
//! reported with what was expected and what came out, with a non-zero exit.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn policies_test(dir: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arbiter"));
    cmd.args(["policies", "test"]).arg(dir);
    cmd.arg(if json { "--json" } else { "--human" });
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_bundled_policies_pass_their_tests() {
    let (code, out, err) = policies_test(&bundled_policies(), false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 failed"), "{out}");
    // Every policy of the bundled set is named by at least one case.
    let dir = bundled_policies();
    let tests: String = std::fs::read_dir(dir.join("tests"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let snapshot = arbiter::policy::PolicySnapshot::load(&dir).unwrap();
    for id in snapshot.meta.keys().map(ToString::to_string) {
        assert!(
            tests.contains(&format!(" {id}]"))
                || tests.contains(&format!("[{id}]"))
                || tests.contains(&format!(" {id},"))
                || tests.contains(&format!("[{id},")),
            "no test case names policy `{id}` among its expected policies"
        );
    }
}

#[test]
fn a_failing_case_shows_the_difference_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), dir.path());
    std::fs::write(
        dir.path().join("tests/wrong.yaml"),
        r#"
cases:
  - name: read alone creates an item (wrong)
    principal: Client::"demo"
    scopes: [read]
    method: POST
    path: /items
    expect: allow
    reason: allow
    policies: [items-create]
"#,
    )
    .unwrap();
    let (code, out, _) = policies_test(dir.path(), false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  tests/wrong.yaml › read alone creates an item (wrong)"),
        "{out}"
    );
    assert!(out.contains("- expected: allow"), "{out}");
    assert!(
        out.contains("+ actual:   deny (insufficient_scope"),
        "{out}"
    );
    assert!(out.contains("1 failed"), "{out}");
    let (code, out, _) = policies_test(dir.path(), true);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["failed"], 1);
    let failed: Vec<&serde_json::Value> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    let whats: Vec<&str> = failed[0]["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["what"].as_str().unwrap())
        .collect();
    assert_eq!(whats, ["decision", "reason", "policies"]);

    std::fs::write(
        dir.path().join("tests/wrong.yaml"),
        "cases: [ { name: x } ]",
    )
    .unwrap();
    let (code, _, err) = policies_test(dir.path(), false);
    assert_eq!(code, 3, "an invalid test file is not a pass: {err}");
    assert!(err.contains("wrong.yaml"), "{err}");
}

/// The same YAML cases over the real front door: each request case becomes a development
/// token with the case's principal, client, scopes and claims, and a gRPC `Authorize` must
/// decide it as `arbiter policies test` does (decision, reason, determining policies).
#[tokio::test]
async fn the_bundled_cases_decide_the_same_over_grpc() {
    use arbiter::audit::cases::{test_files, Expectation, TestFile};
    let mut server = TestServer::start().await;
    let mut checked = 0;
    for file in test_files(&bundled_policies()).unwrap() {
        let parsed: TestFile =
            yaml_serde::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for case in parsed.cases {
            let (Some(method), Some(path)) = (&case.method, &case.path) else {
                continue; // issue_scope cases are the token endpoint's (tests/it/oauth.rs)
            };
            if case.issuer.is_some() {
                continue; // another issuer's token: tests/it/identity.rs does that over gRPC
            }
            let token = match case.principal.as_deref() {
                None => String::new(),
                Some(p) => {
                    let (kind, quoted) = p.split_once("::").unwrap();
                    let id: String = serde_json::from_str(quoted).unwrap();
                    let (client, sub) = match kind {
                        "User" => (
                            case.client.clone().unwrap_or("policy-tests".into()),
                            Some(id),
                        ),
                        _ => (id, None),
                    };
                    server.token_with(
                        &client,
                        sub.as_deref(),
                        &case.scopes.join(" "),
                        case.claims.clone(),
                    )
                }
            };
            let r = server
                .authorize(&token, method, path, Value::Object(case.context.clone()))
                .await;
            let what = format!("{}: {} {method} {path}: {r:?}", file.display(), case.name);
            assert_eq!(allowed(&r), case.expect == Expectation::Allow, "{what}");
            if let Some(reason) = &case.reason {
                let got = reason_name(&r);
                assert_eq!(&got, reason, "{what}");
            }
            if let Some(policies) = &case.policies {
                let mut want = policies.clone();
                want.sort();
                let mut got = r.policy_ids.clone();
                got.sort();
                assert_eq!(got, want, "{what}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} cases ran");
}

/// `REASON_INSUFFICIENT_SCOPE` → `insufficient_scope`, as the YAML cases write reasons.
fn reason_name(r: &arbiter::grpc::proto::AuthorizeResponse) -> String {
    reason(r)
        .as_str_name()
        .trim_start_matches("REASON_")
        .to_ascii_lowercase()
        .replace("allowed", "allow")
}
