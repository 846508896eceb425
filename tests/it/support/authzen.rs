//! AuthZEN: the bundled interop examples served, and a bare JSON POST.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{copy_dir, TestServer};

/// Arbiter on one of `examples/authzen/*`, as the interop cases run it.
pub async fn serve_example(name: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let example: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/authzen")
        .join(name);
    copy_dir(&example, &dir.path().join("policies"));
    TestServer::start_in(dir, |_| {}).await
}

/// POSTs a JSON body (no credentials) to Arbiter's HTTP listener: the status and the JSON
/// answer (`null` when it is not JSON).
pub async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}{path}", server.http_addr))
        .json(body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}
