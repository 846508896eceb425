//! The store, against real SQLite files and a real PostgreSQL database: the conformance
//! every backend must pass, and the `arbiter clients` commands that bootstrap clients
//! through it.

use std::process::Command;
use std::sync::Arc;

use arbiter::oauth::clients;
use arbiter::oauth::keys::generate;
use arbiter::store::{
    AuditEvent, AuditFilter, ClientRecord, SqlStore, SsaRequestRecord, StatementRecord, Store,
    StoreError, KEY_PURPOSE_ACCESS_TOKEN, KEY_PURPOSE_STATEMENT,
};
use jsonwebtoken::Algorithm;

use crate::support::{assert_success, postgres_database};

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
        tls_subject: Some((
            "tls_client_auth_subject_dn".into(),
            "CN=client b,O=Example".into(),
        )),
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

    signing_keys(&store).await;
    replay_and_revocation(&store).await;
    statements_and_audit(&store).await;
}

/// Rotation is a compare-and-swap, and one key per purpose is active, however many rotate.
async fn signing_keys(store: &Arc<dyn Store>) {
    let first = generate(KEY_PURPOSE_ACCESS_TOKEN, Algorithm::ES256).unwrap();
    assert!(store.rotate_signing_key(&first, None).await.unwrap());
    let second = generate(KEY_PURPOSE_ACCESS_TOKEN, Algorithm::ES256).unwrap();
    assert!(
        !store.rotate_signing_key(&second, None).await.unwrap(),
        "a first key exists already"
    );
    // The other purpose has a ring of its own.
    let statements = generate(KEY_PURPOSE_STATEMENT, Algorithm::EdDSA).unwrap();
    assert!(store.rotate_signing_key(&statements, None).await.unwrap());

    // Eight rotations of the same active key at once: exactly one wins.
    let mut rotations = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        let replaces = first.kid.clone();
        rotations.spawn(async move {
            let key = generate(KEY_PURPOSE_ACCESS_TOKEN, Algorithm::ES256).unwrap();
            let won = store
                .rotate_signing_key(&key, Some(&replaces))
                .await
                .unwrap();
            (won, key.kid)
        });
    }
    let mut winners = Vec::new();
    while let Some(r) = rotations.join_next().await {
        let (won, kid) = r.unwrap();
        if won {
            winners.push(kid);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let keys = store.signing_keys(KEY_PURPOSE_ACCESS_TOKEN).await.unwrap();
    assert_eq!(keys.len(), 2, "the losers wrote nothing");
    assert_eq!(keys[0].kid, winners[0], "the active key first");
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].kid, first.kid);
    assert_eq!(keys[1].retired_at, Some(keys[0].created_at));
    assert_eq!(keys[1].private_der, first.private_der, "keys round-trip");
    let statement_keys = store.signing_keys(KEY_PURPOSE_STATEMENT).await.unwrap();
    assert_eq!(statement_keys.len(), 1);
    assert_eq!(statement_keys[0].alg, "EdDSA");
}

async fn replay_and_revocation(store: &Arc<dyn Store>) {
    let exp = now() + 300;
    assert!(store.use_assertion("a", "j1", exp).await.unwrap());
    assert!(
        !store.use_assertion("a", "j1", exp).await.unwrap(),
        "a replay"
    );
    assert!(
        store.use_assertion("b", "j1", exp).await.unwrap(),
        "per client"
    );

    let before = now();
    store.revoke_token("https://iss", "t1", exp).await.unwrap();
    store.revoke_token("https://iss", "t1", exp).await.unwrap();
    store
        .revoke_token("https://iss", "old", before - 10)
        .await
        .unwrap();
    let live = store.revoked_tokens(before, 0).await.unwrap();
    assert_eq!(live, [("https://iss".to_string(), "t1".to_string(), exp)]);
    assert!(
        store
            .revoked_tokens(before, before + 3600)
            .await
            .unwrap()
            .is_empty(),
        "nothing revoked since"
    );
}

async fn statements_and_audit(store: &Arc<dyn Store>) {
    let request = SsaRequestRecord {
        id: "req-1".into(),
        requester: "Client::\"dev\"".into(),
        status: "pending".into(),
        software_name: "Payments".into(),
        software_version: Some("1.0".into()),
        description: "pays".into(),
        contact: "dev@example.com".into(),
        org: None,
        requested_scopes: vec!["read".into(), "write".into()],
        grant_types: vec!["client_credentials".into()],
        justification: "because".into(),
        jwks: None,
        jwks_uri: None,
        reviewer: None,
        reason: None,
        approved_scopes: vec![],
        statement_jti: None,
        created_at: now(),
        decided_at: None,
    };
    let mut audit = AuditEvent::new("Client::\"dev\"", "ssa.request");
    audit.request_id = Some(request.id.clone());
    store.create_ssa_request(&request, &audit).await.unwrap();
    assert!(matches!(
        store.create_ssa_request(&request, &audit).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        store.ssa_request("req-1").await.unwrap(),
        Some(request.clone())
    );
    assert_eq!(
        store
            .ssa_requests(Some("pending"), None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .ssa_requests(None, Some("nobody"))
            .await
            .unwrap()
            .len(),
        0
    );

    let approved = SsaRequestRecord {
        status: "approved".into(),
        reviewer: Some("User::\"sec\"".into()),
        approved_scopes: vec!["read".into()],
        statement_jti: Some("st-1".into()),
        decided_at: Some(now()),
        ..request.clone()
    };
    let statement = StatementRecord {
        jti: "st-1".into(),
        issuer: "https://iss".into(),
        request_id: "req-1".into(),
        software_id: "sw".into(),
        allowed_scopes: vec!["read".into()],
        issued_at: now(),
        expires_at: now() + 3600,
        jwt: "x.y.z".into(),
        revoked_at: None,
    };
    let mut decided = AuditEvent::new("User::\"sec\"", "ssa.approve");
    decided.request_id = Some("req-1".into());
    decided.statement_jti = Some("st-1".into());
    assert!(store
        .decide_ssa_request(&approved, Some(&statement), &decided)
        .await
        .unwrap());
    assert!(
        !store
            .decide_ssa_request(&approved, None, &decided)
            .await
            .unwrap(),
        "decided once only"
    );
    assert_eq!(store.statement("st-1").await.unwrap(), Some(statement));

    // Registration consumes the statement once; revoking it disables its clients.
    let registered = ClientRecord {
        statement: Some(("https://iss".into(), "st-1".into())),
        registration_token_sha256: Some(vec![1; 32]),
        ..record("reg-1")
    };
    let mut reg = AuditEvent::new("system", "client.register");
    reg.client_id = Some("reg-1".into());
    reg.statement_jti = Some("st-1".into());
    store.register_client(&registered, &reg).await.unwrap();
    assert!(matches!(
        store
            .register_client(
                &ClientRecord {
                    client_id: "reg-2".into(),
                    ..registered.clone()
                },
                &reg
            )
            .await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(
        store.client("reg-2").await.unwrap(),
        None,
        "nothing of the refused one"
    );
    let renamed = ClientRecord {
        name: "renamed".into(),
        ..registered.clone()
    };
    assert!(store.update_client(&renamed, &reg).await.unwrap());
    assert_eq!(
        store.client("reg-1").await.unwrap().unwrap().name,
        "renamed"
    );
    // An update never writes `disabled`, and a disabled client is not updated at all (a
    // record read before the disable must not enable it again).
    assert!(store.set_client_disabled("reg-1", true).await.unwrap());
    let stale = ClientRecord {
        name: "stale".into(),
        disabled: false,
        ..renamed.clone()
    };
    assert!(!store.update_client(&stale, &reg).await.unwrap());
    let now_stored = store.client("reg-1").await.unwrap().unwrap();
    assert!(now_stored.disabled && now_stored.name == "renamed");
    assert!(store.set_client_disabled("reg-1", false).await.unwrap());

    let revoke = AuditEvent::new("User::\"sec\"", "ssa.revoke");
    assert_eq!(
        store
            .revoke_statement("https://iss", "st-1", &revoke)
            .await
            .unwrap(),
        Some(vec!["reg-1".to_string()])
    );
    assert_eq!(
        store
            .revoke_statement("https://iss", "st-1", &revoke)
            .await
            .unwrap(),
        None
    );
    assert!(store
        .disabled_clients()
        .await
        .unwrap()
        .contains(&"reg-1".to_string()));

    let trail = store
        .audit_events(&AuditFilter {
            request_id: Some("req-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["ssa.request", "ssa.approve"]);
    assert!(trail[0].id < trail[1].id);
    let by_client = store
        .audit_events(&AuditFilter {
            client_id: Some("reg-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_client.len(), 2, "registration and update");
}

fn now() -> i64 {
    i64::try_from(arbiter::clock::now()).unwrap()
}

#[tokio::test]
async fn sqlite_store_conformance_and_durability() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    {
        let store = SqlStore::sqlite(&path).await.unwrap();
        conformance(Arc::new(store)).await;
    }
    // A new process (here: a new pool) sees every committed write.
    let reopened = SqlStore::sqlite(&path).await.unwrap();
    assert_eq!(reopened.clients().await.unwrap().len(), 53);
    assert!(reopened.client("a").await.unwrap().unwrap().disabled);
}

#[tokio::test]
async fn postgres_store_conformance_and_durability() {
    let Some(url) = postgres_database("conformance").await else {
        return;
    };
    {
        let store = SqlStore::connect(&url, 10).await.unwrap();
        assert_eq!(store.backend(), arbiter::store::Backend::Postgres);
        conformance(Arc::new(store)).await;
    }
    // Opening again (a restart, another replica): migrations are not re-run, nothing is lost.
    let reopened = SqlStore::connect(&url, 2).await.unwrap();
    assert_eq!(reopened.clients().await.unwrap().len(), 53);
    assert!(reopened.client("a").await.unwrap().unwrap().disabled);
}

#[tokio::test]
async fn replicas_migrating_at_once_take_turns() {
    let Some(url) = postgres_database("migrate").await else {
        return;
    };
    let (a, b, c) = tokio::join!(
        SqlStore::connect(&url, 2),
        SqlStore::connect(&url, 2),
        SqlStore::connect(&url, 2)
    );
    let (a, _b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    a.create_client(&record("x")).await.unwrap();
}

#[tokio::test]
async fn store_errors_never_show_the_database_password() {
    let err = SqlStore::connect("postgres://arbiter:hunter2@127.0.0.1:1/nowhere", 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let err = SqlStore::connect("mysql://u:p@h/db", 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported scheme `mysql`"), "{err}");
}

#[tokio::test]
async fn secrets_are_random_digested_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::sqlite(&dir.path().join("arbiter.db"))
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
    assert_success(&out);
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

#[tokio::test]
async fn sqlite_by_url_too() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("sqlite://{}/a.db", dir.path().display()),
        format!("sqlite:{}/b.db", dir.path().display()),
    ] {
        let store = SqlStore::connect(&url, 2).await.unwrap();
        assert_eq!(store.backend(), arbiter::store::Backend::Sqlite);
        store.create_client(&record("x")).await.unwrap();
    }
    assert!(dir.path().join("a.db").exists() && dir.path().join("b.db").exists());
    assert!(SqlStore::connect("sqlite://", 1).await.is_err());
}

/// Keys sealed at rest, on each backend: a store opened with a key-encryption key seals
/// the keys it finds, reads them back whole, and the same database opened without the KEK
/// yields none.
async fn sealed_keys(
    open: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = SqlStore>>>,
) {
    use arbiter::store::sealing::Sealer;
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(
        &kek,
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [3u8; 32]),
    )
    .unwrap();
    let sealer = || {
        Sealer::from_config(&arbiter::config::StoreConfig {
            key_encryption_key_file: Some(kek.clone()),
            ..Default::default()
        })
        .unwrap()
    };
    let key = arbiter::oauth::keys::generate(
        arbiter::store::KEY_PURPOSE_ACCESS_TOKEN,
        jsonwebtoken::Algorithm::ES256,
    )
    .unwrap();
    let plain = open().await;
    assert!(plain.rotate_signing_key(&key, None).await.unwrap());
    let (sealed, count) = open().await.with_sealer(sealer()).await.unwrap();
    assert_eq!(count, 1);
    let keys = sealed
        .signing_keys(arbiter::store::KEY_PURPOSE_ACCESS_TOKEN)
        .await
        .unwrap();
    assert!(keys[0].protected);
    assert_eq!(keys[0].private_der, key.private_der);
    // A key made by the sealed store is sealed from the start.
    let next = arbiter::oauth::keys::generate(
        arbiter::store::KEY_PURPOSE_ACCESS_TOKEN,
        jsonwebtoken::Algorithm::ES256,
    )
    .unwrap();
    assert!(sealed
        .rotate_signing_key(&next, Some(&key.kid))
        .await
        .unwrap());
    let refused = open()
        .await
        .signing_keys(arbiter::store::KEY_PURPOSE_ACCESS_TOKEN)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("encrypted"), "{refused}");
}

#[tokio::test]
async fn signing_keys_are_sealed_at_rest_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    sealed_keys(|| {
        let path = path.clone();
        Box::pin(async move { SqlStore::sqlite(&path).await.unwrap() })
    })
    .await;
}

#[tokio::test]
async fn signing_keys_are_sealed_at_rest_on_postgres() {
    let Some(url) = postgres_database("sealed").await else {
        return;
    };
    sealed_keys(|| {
        let url = url.clone();
        Box::pin(async move { SqlStore::connect(&url, 2).await.unwrap() })
    })
    .await;
}
