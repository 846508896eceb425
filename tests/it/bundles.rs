//! Signed, revisioned bundles for a fleet (issue 34): replicas poll a plain HTTP file server,
//! move to each revision published within the poll interval, refuse a tampered, wrongly
//! signed or truncated bundle (staying on the last good one), serve the persisted bundle
//! when restarted with the source down, and load a Cedar RFC 0101 store packed elsewhere.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

async fn replica(url: &str, key: &BundleKey, data: &Path) -> TestServer {
    let (url, jwks, data) = (url.to_owned(), key.jwks.clone(), data.to_owned());
    TestServer::start_with(move |c| {
        c.policies = url.into();
        c.bundles.keys = Some(jwks);
        c.bundles.poll_interval_seconds = 1;
        c.data_dir = data;
    })
    .await
}

/// The revision and decision a replica gives `GET /item/1` now.
async fn revision_and_decision(server: &TestServer) -> (String, bool) {
    let token = server.token("svc", None, "read");
    let r = server
        .client
        .clone()
        .authorize(request(&token, "GET", "/item/1", json!({})))
        .await
        .unwrap()
        .into_inner();
    (r.policy_revision.clone(), allowed(&r))
}

/// Waits until the replica's last fetch failed, then says what it serves.
async fn after_a_refusal(server: &TestServer, why: &str) -> String {
    let refused = eventually(Duration::from_secs(10), || async {
        let s = server.status().await;
        let b = s.bundle_source.unwrap();
        (b.last_fetch_result == "failed").then_some(b.last_fetch_error)
    })
    .await
    .unwrap_or_else(|| panic!("the {why} bundle was not refused"));
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_each_published_revision_and_refuse_bad_bundles() {
    let release = Release::start("ES256");
    let (work, key, site, url) = (&release.work, &release.key, &release.site, &release.url);
    release.publish(&bundled_policies(), "1");

    let a = replica(url, key, &work.path().join("a")).await;
    let b = replica(url, key, &work.path().join("b")).await;
    for r in [&a, &b] {
        assert_eq!(revision_and_decision(r).await, ("1".to_owned(), true));
        let status = r.status().await;
        assert_eq!(status.policy_revision, "1");
        let source = status.bundle_source.unwrap();
        assert_eq!(&source.location, url);
        assert!(!source.signed_by.is_empty(), "{source:?}");
    }

    // Revision 2 freezes item reads: both replicas take it within the poll interval.
    bundled_with(&work.path().join("v2"), FREEZE_READS);
    let rev2 = release.publish(&work.path().join("v2"), "2");
    for r in [&a, &b] {
        let moved = eventually(Duration::from_secs(10), || async {
            let now = revision_and_decision(r).await;
            (now.0 == "2").then_some(now)
        })
        .await;
        assert_eq!(
            moved,
            Some(("2".to_owned(), false)),
            "a replica stayed behind"
        );
    }
    let metrics = reqwest::get(format!("http://{}/metrics", a.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("arbiter_policy_revision_info{revision=\"2\""),
        "{metrics}"
    );

    // Revision 3 would unfreeze; each damaged copy of it is refused and revision 2 stays.
    let rev3 = build_bundle(
        &bundled_policies(),
        &work.path().join("r3.cjar"),
        "3",
        Some(key),
    );
    let other = BundleKey::generate(work.path(), "stranger", "ES256");
    let wrong_key = build_bundle(
        &bundled_policies(),
        &work.path().join("w.cjar"),
        "3",
        Some(&other),
    );
    let unsigned = build_bundle(&bundled_policies(), &work.path().join("u.cjar"), "3", None);
    let mut one_byte = rev3.clone();
    let at = one_byte.len() / 2;
    one_byte[at] ^= 0x01;
    let truncated = rev3[..rev3.len() - 100].to_vec();
    for (why, bytes) in [
        ("one-byte-changed", &one_byte),
        ("wrongly signed", &wrong_key),
        ("unsigned", &unsigned),
        ("truncated", &truncated),
    ] {
        publish(site, "prod.cjar", bytes);
        let error = after_a_refusal(&a, why).await;
        assert!(!error.is_empty(), "{why}");
        after_a_refusal(&b, why).await;
        for r in [&a, &b] {
            assert_eq!(
                revision_and_decision(r).await,
                ("2".to_owned(), false),
                "{why}: {error}"
            );
        }
        // The next good publication clears the failure before the next damaged one.
        publish(site, "prod.cjar", &rev2);
        eventually(Duration::from_secs(10), || async {
            let s = a.status().await.bundle_source.unwrap();
            (s.last_fetch_result != "failed").then_some(())
        })
        .await
        .expect("the good bundle is fetched again");
    }

    // Published whole, revision 3 is taken.
    publish(site, "prod.cjar", &rev3);
    let moved = eventually(Duration::from_secs(10), || async {
        let now = revision_and_decision(&a).await;
        (now.0 == "3").then_some(now)
    })
    .await;
    assert_eq!(moved, Some(("3".to_owned(), true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_while_its_source_is_down_serves_the_persisted_bundle() {
    let mut release = Release::start("EdDSA");
    bundled_with(&release.work.path().join("v7"), FREEZE_READS);
    release.publish(&release.work.path().join("v7"), "7");
    let (work, key, url) = (
        release.work.path().to_owned(),
        &release.key,
        release.url.clone(),
    );
    let data = work.join("data");
    {
        let first = replica(&url, key, &data).await;
        assert_eq!(revision_and_decision(&first).await, ("7".to_owned(), false));
        assert!(
            !first
                .status()
                .await
                .bundle_source
                .unwrap()
                .serving_persisted
        );
    }
    release.files.stop();
    let again = replica(&url, key, &data).await;
    assert_eq!(revision_and_decision(&again).await, ("7".to_owned(), false));
    let source = again.status().await.bundle_source.unwrap();
    assert!(source.serving_persisted, "{source:?}");
    assert_eq!(source.last_fetch_result, "failed");

    // With nothing persisted and the source down, a replica does not start (fail closed).
    let empty = work.join("empty");
    let config = arbiter::config::Config {
        policies: url.clone().into(),
        bundles: arbiter::config::BundlesConfig {
            keys: Some(key.jwks.clone()),
            first_fetch_timeout_seconds: 2,
            ..Default::default()
        },
        ..arbiter::config::Config::for_test(&empty, &empty)
    };
    let refused = arbiter::Arbiter::build(config).await;
    assert!(refused.is_err(), "started with no policies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rfc_0101_store_packed_by_another_tool_loads() {
    // A store laid out as Cedar RFC 0101 describes and Janssen's Cedarling reads it:
    // metadata.json, manifest.json, schema.cedarschema, policies/, entities/ (an object of
    // entities by id), trusted-issuers/; zipped by Python's zipfile, not by Arbiter.
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    std::fs::create_dir_all(store.join("policies")).unwrap();
    std::fs::create_dir_all(store.join("entities")).unwrap();
    std::fs::create_dir_all(store.join("trusted-issuers")).unwrap();
    let bundled = bundled_policies();
    std::fs::copy(
        bundled.join("schema.cedarschema"),
        store.join("schema.cedarschema"),
    )
    .unwrap();
    for f in [
        "items.cedar",
        "guards.cedar",
        "scopes.cedar",
        "hr.cedar",
        "ssa.cedar",
        "config-api.cedar",
    ] {
        std::fs::copy(bundled.join(f), store.join("policies").join(f)).unwrap();
    }
    let entities: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(bundled.join("entities.json")).unwrap())
            .unwrap();
    let by_id: serde_json::Map<String, serde_json::Value> = entities
        .into_iter()
        .enumerate()
        .map(|(i, e)| (format!("e{i}"), e))
        .collect();
    std::fs::write(
        store.join("entities/all.json"),
        serde_json::to_vec(&by_id).unwrap(),
    )
    .unwrap();
    std::fs::write(
        store.join("trusted-issuers/dev.json"),
        r#"{"dev": {"name": "dev", "description": "not used by Arbiter", "openid_configuration_endpoint": "https://idp.example/.well-known/openid-configuration"}}"#,
    )
    .unwrap();
    std::fs::write(
        store.join("metadata.json"),
        r#"{"cedar_version": "4.4.0", "policy_store": {"id": "abc123", "name": "items", "version": "1.2.0"}}"#,
    )
    .unwrap();
    let script = r#"
import hashlib, json, os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
files = {}
for d, _, names in os.walk(root):
    for n in names:
        p = os.path.join(d, n); rel = os.path.relpath(p, root)
        data = open(p, 'rb').read()
        files[rel] = {"size": len(data), "checksum": "sha256:" + hashlib.sha256(data).hexdigest()}
json.dump({"policy_store_id": "abc123", "generated_date": "2026-12-07T00:00:00Z", "files": files},
          open(os.path.join(root, "manifest.json"), "w"))
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n); z.write(p, os.path.relpath(p, root))
"#;
    let cjar = work.path().join("items.cjar");
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&store)
        .arg(&cjar)
        .output()
        .unwrap();
    assert_success(&out);

    // `bundle verify` reads it: whole, unsigned (allowed with the flag only).
    let verify = |extra: &[&str]| {
        arbiter_bin()
            .args(["bundle", "verify", "--json"])
            .arg(&cjar)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(!verify(&[]).status.success());
    let ok = verify(&["--allow-unsigned"]);
    assert_success(&ok);
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["revision"], "1.2.0");

    // And a replica serves it, its revision the store's version.
    let (cjar_path, data) = (cjar.clone(), work.path().join("data"));
    let server = TestServer::start_with(move |c| {
        c.policies = cjar_path;
        c.bundles.allow_unsigned = true;
        c.data_dir = data;
    })
    .await;
    assert_eq!(
        revision_and_decision(&server).await,
        ("1.2.0".to_owned(), true)
    );
}

#[test]
fn bundle_inspect_and_verify_say_what_a_bundle_is() {
    let work = tempfile::tempdir().unwrap();
    let key = BundleKey::generate(work.path(), "release", "RS256");
    let path = work.path().join("b.cjar");
    build_bundle(&bundled_policies(), &path, "2026.12.07-1", Some(&key));
    let inspect = run_json(
        arbiter_bin()
            .args(["bundle", "inspect", "--json"])
            .arg(&path),
    );
    assert_eq!(inspect["revision"], "2026.12.07-1");
    assert!(inspect["files"]["schema.cedarschema"]["checksum"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(
        inspect["files"]["tests/items.yaml"].is_object(),
        "{inspect}"
    );
    let verified = run_json(
        arbiter_bin()
            .args(["bundle", "verify", "--json"])
            .arg(&path)
            .arg("--keys")
            .arg(&key.jwks),
    );
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["signed_by"], inspect["signed_by"]);

    // A byte changed inside is refused with exit 1 and a reason.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let out = arbiter_bin()
        .args(["bundle", "verify", "--json"])
        .arg(&path)
        .arg("--keys")
        .arg(&key.jwks)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_follows_a_bundle_in_s3_compatible_storage() {
    let work = tempfile::tempdir().unwrap();
    let key = BundleKey::generate(work.path(), "release", "ES256");
    let mut s3 = S3Server::start();
    build_bundle(
        &bundled_policies(),
        &work.path().join("r1.cjar"),
        "1",
        Some(&key),
    );
    s3.put("prod/policies.cjar", &work.path().join("r1.cjar"));
    let config = format!(
        "policies = \"s3://bundles/prod/policies.cjar\"\ndata_dir = \"data\"\n[bundles]\nkeys = {:?}\npoll_interval_seconds = 1\n",
        key.jwks
    );
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let replica = ServeProcess::start_with_env(work.path(), &config, "127.0.0.1:0", &env);
    let status = || replica.status();
    assert_eq!(status().await.policy_revision, "1");

    bundled_with(&work.path().join("v2"), FREEZE_READS);
    build_bundle(
        &work.path().join("v2"),
        &work.path().join("r2.cjar"),
        "2",
        Some(&key),
    );
    s3.put("prod/policies.cjar", &work.path().join("r2.cjar"));
    let moved = eventually(Duration::from_secs(10), || async {
        (status().await.policy_revision == "2").then_some(())
    })
    .await;
    assert!(moved.is_some(), "the replica stayed on revision 1");

    // A truncated upload is refused; revision 2 stays.
    let whole = std::fs::read(work.path().join("r2.cjar")).unwrap();
    std::fs::write(work.path().join("cut.cjar"), &whole[..whole.len() / 2]).unwrap();
    s3.put("prod/policies.cjar", &work.path().join("cut.cjar"));
    let refused = eventually(Duration::from_secs(10), || async {
        let s = status().await;
        let b = s.bundle_source.unwrap();
        (b.last_fetch_result == "failed").then_some((s.policy_revision, b.last_fetch_error))
    })
    .await
    .expect("the truncated bundle was refused");
    assert_eq!(refused.0, "2", "{}", refused.1);
    let decision =
        arbiter::grpc::proto::authorizer_client::AuthorizerClient::connect(replica.addr.clone())
            .await
            .unwrap()
            .authorize(request("", "GET", "/health", json!({})))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(decision.policy_revision, "2");
}
