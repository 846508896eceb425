//! `arbiter policies test`: the bundled policies' own tests pass, and a failing case is
//! reported with what was expected and what came out, with a non-zero exit.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn policies_test(dir: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arbiter"));
    cmd.args(["policies", "test"]).arg(dir);
    cmd.arg(if json { "--json" } else { "--human" });
    cmd.env("CVC5", cvc5());
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
    assert!(out.contains("7 of 7 properties proved"), "{out}");
    assert!(
        out.contains("PROVED properties/hr.cedar:24 › health-data-of-foreign-employees-needs-mfa"),
        "{out}"
    );
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

/// A policy edit that breaks a bundled property fails `arbiter policies test` with a request
/// that proves it; that request, pasted as a case, fails against the edited set too, and
/// decides the same over gRPC through the printed `arbiter check` line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_property_fails_the_run_with_a_request_that_proves_it() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&bundled_policies(), &policies);
    let hr = policies.join("hr.cedar");
    let text = std::fs::read_to_string(&hr).unwrap();
    // Forgetting the department check lets any user with the scope read health records.
    let broken = text.replace(
        "context.scopes.contains(\"hr.health.read\") &&\n  principal has department &&\n  principal.department == \"HR\"",
        "context.scopes.contains(\"hr.health.read\")",
    );
    assert_ne!(broken, text);
    std::fs::write(&hr, broken).unwrap();
    let (code, out, _) = policies_test(&policies, false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  properties/hr.cedar:7 › health-records-only-for-hr-users: the policies allow a request it forbids"),
        "{out}"
    );
    assert!(out.contains("6 of 7 properties proved"), "{out}");

    let (_, json, _) = policies_test(&policies, true);
    let report: Value = serde_json::from_str(&json).unwrap();
    let failed: Vec<&Value> = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["holds"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{json}");
    let example = &failed[0]["counterexample"];
    assert_eq!(example["reproduced"], true, "{example}");
    assert_eq!(example["case"]["method"], "GET");
    assert_eq!(example["case"]["path"], "/hr/employees/1/health");

    // The case, as printed, is a real test case that fails against the broken set.
    let yaml = example["yaml"].as_str().unwrap();
    std::fs::write(
        policies.join("tests/counterexample.yaml"),
        format!("cases:\n{yaml}"),
    )
    .unwrap();
    let (code, out, _) = policies_test(&policies, false);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  tests/counterexample.yaml › property health-records-only-for-hr-users forbids this"),
        "{out}"
    );
    std::fs::remove_file(policies.join("tests/counterexample.yaml")).unwrap();

    // The `arbiter check` line, run by a shell against a server on the broken set: allowed.
    let server = TestServer::start_in(dir, |_| {}).await;
    let check = example["check"].as_str().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_arbiter"))
        .parent()
        .unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(check)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("ARBITER_ADDR", format!("http://{}", server.addr))
        .env("ARBITER_DATA_DIR", server.dir.path().join("data"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{check}\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("allow"), "{said}");
}

/// Properties are never passed silently: without a solver the run fails and says why.
#[test]
fn properties_without_a_solver_fail_the_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["policies", "test", "--human"])
        .arg(bundled_policies())
        .env("CVC5", "/nonexistent/cvc5")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("7 properties under"), "{err}");
    assert!(err.contains("were not proved"), "{err}");
    assert!(err.contains("pip install cvc5==1.3.2"), "{err}");
}

/// `--coverage` names the policies no case made determining.
#[test]
fn coverage_lists_the_policies_no_case_determined() {
    let (code, out, _) = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arbiter"));
        cmd.args(["policies", "test", "--human", "--coverage"])
            .arg(bundled_policies())
            .env("CVC5", cvc5());
        let o = cmd.output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            (),
        )
    };
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("coverage: 22 of 22 policies determined some case"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), dir.path());
    let items = dir.path().join("items.cedar");
    let mut text = std::fs::read_to_string(&items).unwrap();
    text.push_str("\n@id(\"item-head\")\npermit (principal, action == Action::\"HEAD\", resource == Endpoint::\"/item/{id}\")\nwhen { context.scopes.contains(\"read\") };\n");
    std::fs::write(&items, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["policies", "test", "--json", "--coverage"])
        .arg(dir.path())
        .env("CVC5", cvc5())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uncovered: Vec<&str> = report["uncovered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["policy"].as_str().unwrap())
        .collect();
    assert_eq!(uncovered, ["item-head"], "{report}");
}
