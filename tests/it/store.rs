//! The store, against real SQLite files: the conformance every backend must pass, and the
//! `arbiter clients` commands that bootstrap clients through it.

use std::process::Command;

use arbiter::oauth::clients;
use arbiter::store::{ClientRecord, SqliteStore, Store, StoreError};

fn record(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        name: format!("client {id}"),
        secret_sha256: Some(vec![7; 32]),
        allowed_scopes: vec!["read".into(), "write".into()],
        auth_method: "client_secret_basic".into(),
        jwks: Some(serde_json::json!({ "keys": [] })),
        jwks_uri: None,
        software_id: Some("sw-1".into()),
        org: None,
        resources: vec!["https://api.example/payments".into()],
        legacy_audience: true,
        statement: None,
        registration_token_sha256: None,
        metadata: Some(serde_json::json!({ "client_name": "x" })),
        disabled: false,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

/// What every `Store` must do; run against each backend.
async fn conformance(store: std::sync::Arc<dyn Store>) {
    store.create_client(&record("b")).await.unwrap();
    store.create_client(&record("a")).await.unwrap();
    assert!(
        matches!(store.create_client(&record("a")).await, Err(StoreError::Duplicate(id)) if id == "a")
    );
    assert_eq!(store.client("a").await.unwrap(), Some(record("a")));
    assert_eq!(store.client("zz").await.unwrap(), None);
    let ids: Vec<String> = store
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(store.set_client_disabled("a", true).await.unwrap());
    assert!(!store.set_client_disabled("zz", true).await.unwrap());
    assert!(store.client("a").await.unwrap().unwrap().disabled);
    assert!(store.set_client_secret("b", &[9; 32]).await.unwrap());
    assert_eq!(
        store.client("b").await.unwrap().unwrap().secret_sha256,
        Some(vec![9; 32])
    );

    // Concurrent writers never corrupt state.
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = store.clone();
        writers.spawn(async move { store.create_client(&record(&format!("c{i:02}"))).await });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(store.clients().await.unwrap().len(), 52);
}

#[tokio::test]
async fn sqlite_store_conformance_and_durability() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        conformance(std::sync::Arc::new(store)).await;
    }
    // A new process (here: a new pool) sees every committed write.
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(reopened.clients().await.unwrap().len(), 52);
    assert!(reopened.client("a").await.unwrap().unwrap().disabled);
}

#[tokio::test]
async fn secrets_are_random_digested_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("arbiter.db"))
        .await
        .unwrap();
    let created = clients::create(&store, &spec("demo", &["read"], "client_secret_basic"))
        .await
        .unwrap();
    let secret = created.secret.clone().unwrap();
    assert!(secret.len() >= 43, "256 bits, base64url");
    let stored = store
        .client(&created.record.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stored.secret_sha256.as_deref(), Some(secret.as_bytes()));
    assert!(clients::secret_matches(&stored, &secret));
    assert!(!clients::secret_matches(&stored, "guess"));
    let other = clients::create(&store, &spec("demo", &[], "client_secret_post"))
        .await
        .unwrap();
    assert_ne!(other.secret, created.secret);
    assert_ne!(other.record.client_id, created.record.client_id);

    let rotated = clients::rotate_secret(&store, &created.record.client_id)
        .await
        .unwrap();
    let stored = store
        .client(&created.record.client_id)
        .await
        .unwrap()
        .unwrap();
    assert!(clients::secret_matches(&stored, &rotated));
    assert!(
        !clients::secret_matches(&stored, &secret),
        "the old secret no longer works"
    );
    assert!(format!("{stored:?}").contains("<redacted>"));

    for (bad, why) in [
        (spec(" ", &[], "client_secret_basic"), "no name"),
        (spec("x", &[], "none"), "unknown method"),
        (
            spec("x", &["bad\"scope"], "client_secret_basic"),
            "bad scope",
        ),
        (spec("x", &[], "private_key_jwt"), "no JWKS"),
        (
            clients::ClientSpec {
                jwks: Some(serde_json::json!({"keys": []})),
                ..spec("x", &[], "client_secret_basic")
            },
            "JWKS for a secret client",
        ),
        (
            clients::ClientSpec {
                legacy_audience: true,
                ..spec("x", &[], "client_secret_basic")
            },
            "legacy audience without assertions",
        ),
        (
            clients::ClientSpec {
                resources: vec!["/relative".into()],
                ..spec("x", &[], "client_secret_basic")
            },
            "relative resource",
        ),
    ] {
        assert!(clients::create(&store, &bad).await.is_err(), "{why}");
    }
}

fn spec(name: &str, scopes: &[&str], method: &str) -> clients::ClientSpec {
    clients::ClientSpec {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        auth_method: method.into(),
        ..Default::default()
    }
}

fn arbiter_clients(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .arg("clients")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn clients_cli_create_list_show_rotate_disable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = arbiter_clients(
        &data,
        &[
            "create",
            "--name",
            "billing",
            "--scopes",
            "read write",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["client_id"].as_str().unwrap().to_string();
    let secret = created["client_secret"].as_str().unwrap().to_string();

    let out = arbiter_clients(&data, &["list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["client_id"], id.as_str());
    assert_eq!(list[0]["scopes"], "read write");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&secret),
        "list never shows secrets"
    );

    let out = arbiter_clients(&data, &["rotate-secret", &id, "--json"]);
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(rotated["client_secret"], secret.as_str());

    let out = arbiter_clients(&data, &["disable", &id]);
    assert!(out.status.success());
    let out = arbiter_clients(&data, &["show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["disabled"], true);

    let out = arbiter_clients(&data, &["show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no client `nope`"));
    assert!(data.join("arbiter.db").exists());
}
