//! The binary as users and their CI run it: start-up failures, `policies validate`, the dev
//! token and `check` round trip.

use std::process::Command;

use crate::support::*;

fn arbiter() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
}

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
    let out = arbiter()
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--policies"])
        .arg(&policies)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("broken.cedar:6"), "{stderr}");

    let out = arbiter()
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
    let out = arbiter()
        .args(["policies", "validate"])
        .arg(bundled_policies())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
}

#[tokio::test]
async fn dev_token_and_check_round_trip_through_the_binary() {
    let server = TestServer::start().await;
    let data = server.dir.path().join("data");
    let out = arbiter()
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let addr = format!("http://{}", server.addr);
    let check = |method: &str, path: &str| {
        let token = token.clone();
        let addr = addr.clone();
        let (method, path) = (method.to_string(), path.to_string());
        tokio::task::spawn_blocking(move || {
            arbiter()
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
}
