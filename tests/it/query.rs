//! Policy queries on a fixture set with the tricky cases: an attribute only in a comment or
//! in a string, bracket access, nesting in `if`/`&&`/`has`; over a directory (CLI) and over
//! the live set (gRPC).

use std::collections::BTreeSet;
use std::process::Command;

use arbiter::grpc::proto;

use crate::support::*;

const TRICKY: &str = r#"
// principal.nationality and "US" appear in this comment only.
@id("comment-only")
permit (principal, action == Action::"GET", resource == Endpoint::"/item/{id}")
when { context.scopes.contains("read") };

@id("string-only")
permit (principal, action == Action::"GET", resource == Endpoint::"/item/{id}")
when { context.scopes.contains("principal.nationality") };

@id("bracket-access")
@tag("residency")
forbid (principal is User, action, resource in Api::"hr-api")
when { principal has nationality && principal["nationality"] == "US" };

@id("nested-if")
forbid (principal, action == Action::"GET", resource == Endpoint::"/hr/employees/{id}/health")
when { if context has employee then (context.employee.nationality == "US" && true) else false };
"#;

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    std::fs::write(dir.path().join("policies/tricky.cedar"), TRICKY).unwrap();
    dir
}

fn query(dir: &std::path::Path, args: &[&str]) -> BTreeSet<String> {
    let v = run_json(
        Command::new(env!("CARGO_BIN_EXE_arbiter"))
            .args(["policies", "query"])
            .arg(dir)
            .args(args)
            .arg("--json"),
    );
    v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn attributes_and_values_come_from_the_policy_not_its_text() {
    let dir = fixture();
    let policies = dir.path().join("policies");
    let d = policies.as_path();
    assert_eq!(
        query(d, &["--attribute", "principal.nationality"]),
        ids(&["bracket-access"]),
        "not the comment, not the string; bracket access counts"
    );
    assert_eq!(
        query(d, &["--attribute", "nationality"]),
        ids(&[
            "bracket-access",
            "nested-if",
            "hr-health-foreign-employees-need-mfa"
        ]),
        "a tail finds it at any depth, inside if/&&/has"
    );
    assert_eq!(
        query(d, &["--attribute", "context.employee"]),
        ids(&["nested-if", "hr-health-foreign-employees-need-mfa"]),
    );
    assert_eq!(
        query(d, &["--value", "US"]),
        ids(&["bracket-access", "nested-if"])
    );
    assert_eq!(
        query(d, &["--value", "principal.nationality"]),
        ids(&["string-only"])
    );
    assert_eq!(
        query(
            d,
            &[
                "--annotation",
                "tag=healthcare",
                "--attribute",
                "nationality"
            ]
        ),
        ids(&["hr-health-foreign-employees-need-mfa"]),
        "every policy that touches healthcare data of foreign employees"
    );
    assert_eq!(
        query(
            d,
            &[
                "--endpoint",
                "GET /hr/employees/7/health",
                "--effect",
                "forbid"
            ]
        ),
        ids(&[
            "nested-if",
            "bracket-access",
            "hr-health-foreign-employees-need-mfa",
            "deny-high-fraud-score",
            "deny-risky-network",
        ]),
    );
    assert_eq!(
        query(d, &["--scope", "read", "--file", "tricky.cedar"]),
        ids(&["comment-only"]),
        "a string that merely looks like a scope path is still a scope literal only where it is one"
    );
    assert_eq!(
        query(d, &["--entity", "Api::\"hr-api\""]),
        ids(&["bracket-access"])
    );
    assert!(query(d, &["--entity", "User"]).contains("bracket-access"));
    assert_eq!(
        query(d, &["--action", "DELETE", "--file", "items.cedar"]),
        ids(&["item-delete"])
    );
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["policies", "query"])
        .arg(d)
        .args(["--annotation", "tag=residency", "--human"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bracket-access\tforbid\ttricky.cedar:"),
        "{text}"
    );
    assert!(text.contains("annotation @tag(\"residency\")"), "{text}");
}

#[tokio::test]
async fn the_live_set_answers_over_grpc() {
    let dir = fixture();
    let server = TestServer::start_in(dir, |_| {}).await;
    let mut admin = server.admin().await;
    let answer = admin
        .query_policies(proto::QueryPoliciesRequest {
            attributes: vec!["nationality".into()],
            annotations: vec!["tag=healthcare".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.policy_version, server.status().await.policy_version);
    let hit = &answer.policies[..];
    assert_eq!(hit.len(), 1);
    assert_eq!(hit[0].id, "hr-health-foreign-employees-need-mfa");
    assert_eq!(hit[0].file, "hr.cedar");
    assert_eq!(
        hit[0].annotations.get("tag").map(String::as_str),
        Some("healthcare")
    );
    assert!(hit[0].text.contains("forbid"), "{}", hit[0].text);
    assert_eq!(
        hit[0].why,
        [
            "annotation @tag(\"healthcare\")",
            "reads context.employee.nationality"
        ]
    );
    let refused = admin
        .query_policies(proto::QueryPoliciesRequest {
            effect: "maybe".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}
