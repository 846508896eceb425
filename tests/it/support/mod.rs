//! Test helpers, by concern: [`server`] (Arbiter in process), [`idp`] (keys and an external
//! identity provider), [`authserver`] (an independent authorization server with opaque
//! tokens), [`store`] (SQLite and PostgreSQL), [`process`] (the binary), [`tls`]
//! (certificates), [`upstream`] (what a gateway forwards to), [`authzen`] (the interop
//! examples served), [`envoy`] (a real Envoy), [`bundles`] (signed bundles and a
//! file server publishing them). A test file never defines a
//! helper another test file uses: it lives here.

#![allow(dead_code)]

pub mod authserver;
pub mod authzen;
pub mod bundles;
pub mod envoy;
pub mod idp;
pub mod oauth;
pub mod process;
pub mod server;
pub mod store;
pub mod tls;
pub mod upstream;

pub use authserver::*;
pub use authzen::*;
pub use bundles::*;
pub use envoy::*;
pub use idp::*;
pub use oauth::*;
pub use process::*;
pub use server::*;
pub use store::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The bundled policy directory.
pub fn bundled_policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// Copies a directory tree (tests never touch the bundled policies in place).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Polls `check` until it returns `Some` or `limit` passes; never a fixed sleep then assert.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    arbiter::clock::now()
}

/// POSTs a JSON body (with a bearer token if given) and reads the JSON answer.
pub async fn post_json(
    url: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> serde_json::Value {
    let request = reqwest::Client::new().post(url);
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
    .json(body)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}
