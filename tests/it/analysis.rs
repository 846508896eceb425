//! `arbiter policies analyze` and `compare` run Cedar's symbolic compiler against a real cvc5
//! (1.3, as `CVC5` names it; CI uses the PyPI wheel through `tools/cvc5`): the bundled set
//! has no finding, a route a forbid shadows is proved unreachable with a request its permits
//! were written for, a refactor compares equivalent, and a one-character change that widens
//! access is reported with a request that proves it, which Arbiter itself decides alike.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

fn solver_command(args: &[&str], dirs: &[&Path]) -> (Option<i32>, String) {
    let out = arbiter_bin()
        .args(args)
        .args(dirs)
        .env("CVC5", cvc5())
        .output()
        .unwrap();
    assert!(
        out.status.code() != Some(1),
        "the solver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn analyze(dir: &Path, format: &str) -> (Option<i32>, String) {
    solver_command(&["policies", "analyze", format], &[dir])
}

fn compare(old: &Path, new: &Path, format: &str) -> (Option<i32>, String) {
    solver_command(&["policies", "compare", format], &[old, new])
}

#[test]
fn the_bundled_set_has_no_finding_and_a_shadowed_route_is_proved_unreachable() {
    let (code, out) = analyze(&bundled_policies(), "--human");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(" 0 unreachable; 22 policies, 0 findings"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), dir.path());
    let items = dir.path().join("items.cedar");
    let mut text = std::fs::read_to_string(&items).unwrap();
    // Deleting needs a user with `write otp`; this forbid leaves no request that passes.
    text.push_str("\n@id(\"no-user-deletes\")\nforbid (principal is User, action == Action::\"DELETE\", resource == Endpoint::\"/item/{id}\");\n");
    std::fs::write(&items, text).unwrap();
    let (code, out) = analyze(dir.path(), "--human");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(
            "unreachable DELETE /item/{id} (permits at items.cedar:27): denied by items.cedar:48"
        ),
        "{out}"
    );
    // the request the shadowed permit was written for, ready to run
    assert!(
        out.contains("--scope 'otp write')\" DELETE '/item/1'"),
        "{out}"
    );
    assert!(
        out.contains("redundant-permit item-delete at items.cedar:27"),
        "{out}"
    );

    let (code, json) = analyze(dir.path(), "--json");
    assert_eq!(code, Some(2));
    let report: Value = serde_json::from_str(&json).unwrap();
    let unreachable: Vec<&Value> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reachable"] == false)
        .collect();
    assert_eq!(unreachable.len(), 1, "{json}");
    let shadowed = &unreachable[0]["shadowed"];
    assert_eq!(shadowed["by"], serde_json::json!(["items.cedar:48"]));
    let example = &shadowed["counterexample"];
    assert_eq!(example["reproduced"], true, "{example}");
    assert_eq!(example["case"]["principal"], "User::\"counterexample\"");
    assert_eq!(example["case"]["expect"], "deny");
    assert_eq!(report["issue_scope_reachable"], true);
}

#[test]
fn a_permit_that_never_applies_and_a_forbid_that_never_fires_are_found() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), dir.path());
    let items = dir.path().join("items.cedar");
    let mut text = std::fs::read_to_string(&items).unwrap();
    // contradictory conditions; a forbid of what no permit allows
    text.push_str("\n@id(\"never\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/items\")\nwhen { context.scopes.contains(\"read\") && !context.scopes.contains(\"read\") };\n");
    text.push_str("\n@id(\"pointless\")\nforbid (principal, action == Action::\"PATCH\", resource == Endpoint::\"/item/{id}\");\n");
    std::fs::write(&items, text).unwrap();
    let (code, out) = analyze(dir.path(), "--human");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("never-applies never at items.cedar:48: no request satisfies"),
        "{out}"
    );
    assert!(
        out.contains("dead-forbid pointless at items.cedar:52: it never fires"),
        "{out}"
    );
}

#[test]
fn compare_proves_a_reformatted_reordered_copy_equivalent() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), copy.path());
    // Policies in another order, in other files, formatted differently.
    let items = std::fs::read_to_string(copy.path().join("items.cedar")).unwrap();
    let guards = std::fs::read_to_string(copy.path().join("guards.cedar")).unwrap();
    std::fs::remove_file(copy.path().join("items.cedar")).unwrap();
    std::fs::remove_file(copy.path().join("guards.cedar")).unwrap();
    let squeezed = |t: &str| {
        t.lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut reversed: Vec<String> = squeezed(&items)
        .split_inclusive(';')
        .map(str::to_owned)
        .collect();
    reversed.reverse();
    std::fs::write(
        copy.path().join("all-in-one.cedar"),
        format!("{}\n{}\n", reversed.join("\n"), squeezed(&guards)),
    )
    .unwrap();
    let (code, out) = compare(&bundled_policies(), copy.path(), "--human");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("24 equivalent, 0 differ"), "{out}");
}

#[test]
fn a_one_character_change_that_widens_access_is_shown_with_a_request() {
    let changed = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), changed.path());
    let guards = changed.path().join("guards.cedar");
    let text = std::fs::read_to_string(&guards).unwrap();
    std::fs::write(
        &guards,
        text.replace("context.fraud_score > 80", "context.fraud_score > 90"),
    )
    .unwrap();
    let (code, out) = compare(&bundled_policies(), changed.path(), "--human");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("wider GET /item/{id}: the new set allows requests the old one denies"),
        "{out}"
    );
    let (code, json) = compare(&bundled_policies(), changed.path(), "--json");
    assert_eq!(code, Some(2));
    let routes: Vec<Value> = serde_json::from_str(&json).unwrap();
    let item = routes
        .iter()
        .find(|r| r["route"] == "/item/{id}" && r["method"] == "GET")
        .unwrap();
    assert_eq!(item["relation"], "wider");
    let example = &item["only_new_allows"];
    let score = example["case"]["context"]["fraud_score"].as_i64().unwrap();
    assert!((81..=90).contains(&score), "{example}");
    assert_eq!(example["case"]["expect"], "allow");
    // Arbiter's own decision path agrees: the new set allows it, the old one does not.
    assert_eq!(example["reproduced"], true, "{example}");
    let case: arbiter::audit::cases::TestCase =
        serde_json::from_value(example["case"].clone()).unwrap();
    let decide = |dir: &Path| {
        let snapshot = arbiter::policy::PolicySnapshot::load(dir).unwrap();
        arbiter::audit::cases::verdict_of_case(&snapshot, &case)
            .unwrap()
            .allowed
    };
    assert!(decide(changed.path()));
    assert!(!decide(&bundled_policies()));
}

#[test]
fn a_narrowing_change_is_shown_with_a_request_only_the_old_set_allows() {
    let refactor = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), refactor.path());
    let items = refactor.path().join("items.cedar");
    let text = std::fs::read_to_string(&items).unwrap();
    // Reading needs `write` too.
    std::fs::write(
        &items,
        text.replace(
            "@scopes(\"read\")\npermit (\n  principal,\n  action == Action::\"GET\",",
            "@scopes(\"read write\")\npermit (\n  principal,\n  action == Action::\"GET\",",
        )
        .replace(
            "when { context.scopes.contains(\"read\") };",
            "when { context.scopes.containsAll([\"read\", \"write\"]) };",
        ),
    )
    .unwrap();
    let (code, out) = compare(&bundled_policies(), refactor.path(), "--human");
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("narrower GET /item/{id}"), "{out}");
    assert!(out.contains("expect: deny"), "{out}");
    assert!(out.contains("1 differ"), "{out}");
}

/// A permit in plain Cedar gets its scope requirement from its conditions, over gRPC; a
/// disagreeing `@scopes` is refused by `arbiter policies validate` with `file:line`.
#[tokio::test]
async fn plain_cedar_scope_conditions_answer_insufficient_scope() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&bundled_policies(), &policies);
    let items = policies.join("items.cedar");
    let text = std::fs::read_to_string(&items).unwrap();
    let plain = text.replace("@scopes(\"read && (fido || otp)\")\n", "");
    assert_ne!(plain, text);
    std::fs::write(&items, &plain).unwrap();
    let out = arbiter_bin()
        .args(["policies", "validate"])
        .arg(&policies)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    let mut server = TestServer::start_in(dir, |_| {}).await;
    // `otp` alone: of `read && fido` and `read && otp`, the second lacks fewer scopes
    let token = server.token("demo", None, "otp");
    let r = server
        .authorize(&token, "POST", "/items", serde_json::json!({}))
        .await;
    assert!(!allowed(&r));
    assert_eq!(reason(&r), arbiter::wire::proto::Reason::InsufficientScope);
    // the alternative of `read && (fido || otp)` that lacks fewest, whole, as RFC 6750's
    // `scope` wants
    assert_eq!(r.required_scopes, ["otp", "read"]);

    let wrong = plain.replace(
        "@id(\"items-create\")\n",
        "@id(\"items-create\")\n@scopes(\"read\")\n",
    );
    std::fs::write(server.policies().join("items.cedar"), wrong).unwrap();
    let out = arbiter_bin()
        .args(["policies", "validate"])
        .arg(server.policies())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("items.cedar:3"), "{err}");
    assert!(
        err.contains("disagrees with the policy's conditions"),
        "{err}"
    );
}

/// The running service answers the same on its live set: `PolicyAdmin.AnalyzePolicies`, and
/// `ComparePolicies` against a candidate directory sent as its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_service_analyzes_its_live_set_and_compares_a_candidate() {
    use arbiter::wire::proto;
    // the server finds the solver as the CLI does (`CVC5`, else `cvc5` on the PATH)
    let _ = cvc5();
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let analysis = admin
        .analyze_policies(proto::AnalyzePoliciesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(analysis.routes.len(), 24);
    assert!(analysis.routes.iter().all(|r| r.reachable));
    assert!(analysis.findings.is_empty(), "{:?}", analysis.findings);
    assert_eq!(analysis.issue_scope_reachable, Some(true));
    assert_eq!(
        analysis.policy_version,
        server.status().await.policy_version
    );

    let mut files = std::collections::HashMap::new();
    let mut read = |dir: &Path, prefix: &str| {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = format!("{prefix}{}", path.file_name().unwrap().to_string_lossy());
                files.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    };
    read(&server.policies(), "");
    let guards =
        files["guards.cedar"].replace("context.fraud_score > 80", "context.fraud_score > 90");
    files.insert("guards.cedar".into(), guards);
    let compared = admin
        .compare_policies(proto::ComparePoliciesRequest {
            files: files.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let item = compared
        .routes
        .iter()
        .find(|r| r.route == "/item/{id}" && r.method == "GET")
        .unwrap();
    assert_eq!(item.relation, "wider");
    let example = item.only_candidate_allows.as_ref().unwrap();
    assert!(example.reproduced);
    assert!(example.yaml.contains("fraud_score: "), "{}", example.yaml);
    assert_ne!(compared.candidate_version, compared.live_version);

    files.insert("../escape.cedar".into(), String::new());
    let refused = admin
        .compare_policies(proto::ComparePoliciesRequest { files })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("../escape.cedar"),
        "{}",
        refused.message()
    );
}
