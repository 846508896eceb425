//! `arbiter policies analyze` runs Cedar's symbolic compiler against a real cvc5 (1.3, as
//! `CVC5` names it; CI uses the PyPI wheel through `.ci/cvc5`): the bundled routes are all
//! reachable, and a route a forbid shadows is proved unreachable.

use crate::support::*;

fn analyze(dir: &std::path::Path, format: &str) -> (Option<i32>, String) {
    let cvc5 = tool(
        "CVC5",
        "cvc5",
        "python3 -m pip install cvc5==1.3.2, then CVC5=$PWD/.ci/cvc5",
    );
    let out = arbiter_bin()
        .args(["policies", "analyze", format])
        .arg(dir)
        .env("CVC5", cvc5)
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

#[test]
fn every_bundled_route_can_be_reached_and_a_shadowed_one_is_proved_unreachable() {
    let (code, out) = analyze(&bundled_policies(), "--human");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(" 0 unreachable"), "{out}");

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
            "unreachable DELETE /item/{id}: no request can be allowed (permits at items.cedar:24)"
        ),
        "{out}"
    );
    let (code, json) = analyze(dir.path(), "--json");
    assert_eq!(code, Some(2));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let unreachable: Vec<_> = report["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reachable"] == false)
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["route"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(unreachable, vec!["DELETE /item/{id}"]);
    assert_eq!(report["issue_scope_reachable"], true);
}

#[test]
fn compare_proves_a_refactor_equivalent_and_shows_a_request_a_change_denies() {
    let cvc5 = tool(
        "CVC5",
        "cvc5",
        "python3 -m pip install cvc5==1.3.2, then CVC5=$PWD/.ci/cvc5",
    );
    let compare = |old: &std::path::Path, new: &std::path::Path| {
        let out = arbiter_bin()
            .args(["policies", "compare", "--human"])
            .arg(old)
            .arg(new)
            .env("CVC5", &cvc5)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // A refactor: the read rule's condition written the other way round.
    let refactor = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), refactor.path());
    let items = refactor.path().join("items.cedar");
    let text = std::fs::read_to_string(&items).unwrap();
    std::fs::write(
        &items,
        text.replace(
            "when { context.scopes.contains(\"read\") };",
            "when { [\"read\"].isEmpty() || context.scopes.containsAll([\"read\"]) };",
        ),
    )
    .unwrap();
    let (code, out) = compare(&bundled_policies(), refactor.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 differ"), "{out}");

    // A change: reading needs `write` too; the solver names a request only the old set allows.
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
    let (code, out) = compare(&bundled_policies(), refactor.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("narrower GET /item/{id}"), "{out}");
    assert!(out.contains("resource: Endpoint::\"/item/{id}\""), "{out}");
    assert!(out.contains("1 differ"), "{out}");
}
