//! Hot reload against real files while a client keeps calling `Authorize`: invalid changes
//! never replace the live set, fixes are live within a second, every way files change works.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter::grpc::proto::{self, reload_outcome, Reason};
use serde_json::json;

use crate::support::*;

/// Within this a good change must be visible (the issue's target).
const VISIBLE: Duration = Duration::from_secs(1);

/// `item-read` asking for `write` instead of `read`: a visible change of decision.
const ITEMS_NEEDS_WRITE: &str = r#"
@id("items-create")
@scopes("read && (fido || otp)")
permit (principal, action == Action::"POST", resource == Endpoint::"/items")
when { context.scopes.contains("read") && context.scopes.containsAny(["fido", "otp"]) };

@id("item-read")
@scopes("write")
permit (principal, action == Action::"GET", resource == Endpoint::"/item/{id}")
when { context.scopes.contains("write") };
"#;

/// A client hammering `Authorize` with a `read` token on `GET /item/1`.
struct Load {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(server: &TestServer, token: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let mut client = server.client.clone();
        let (s, c, f) = (stop.clone(), calls.clone(), failures.clone());
        let handle = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match client
                    .authorize(request(&token, "GET", "/item/1", json!({})))
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        let label = format!("{:?}@{}", reason(&r), r.policy_version);
                        if seen.last() != Some(&label) {
                            seen.push(label);
                        }
                    }
                    Err(_) => {
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                }
                c.fetch_add(1, Ordering::Relaxed);
            }
            seen
        });
        Self {
            stop,
            calls,
            failures,
            handle,
        }
    }

    /// Stops the load after a few more calls, so calls sent after the caller saw the final
    /// state are part of what the load saw (on a loaded machine the load task may not have
    /// run since).
    async fn finish(self) -> (u64, u64, Vec<String>) {
        let from = self.calls.load(Ordering::Relaxed);
        let calls = self.calls.clone();
        crate::support::eventually(Duration::from_secs(5), || {
            let calls = calls.clone();
            async move { (calls.load(Ordering::Relaxed) >= from + 3).then_some(()) }
        })
        .await;
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.handle.await.unwrap();
        (
            self.calls.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
            seen,
        )
    }
}

async fn wait_reason(
    server: &mut TestServer,
    token: &str,
    want: Reason,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut client = server.client.clone();
    eventually(limit, || {
        let mut client = client.clone();
        let token = token.to_string();
        async move {
            let r = client
                .authorize(request(&token, "GET", "/item/1", json!({})))
                .await
                .ok()?
                .into_inner();
            (reason(&r) == want).then_some(())
        }
    })
    .await?;
    let _ = &mut client;
    Some(started.elapsed())
}

/// Asserts that `GET /item/1` with `token` comes to answer `want` (within 5 s).
async fn expect_reason(server: &mut TestServer, token: &str, want: Reason) {
    let waited = wait_reason(server, token, want, Duration::from_secs(5)).await;
    assert!(waited.is_some(), "never answered {want:?}");
}

/// Polls the admin status until `check` holds (within 5 s).
async fn expect_status(
    server: &TestServer,
    check: impl Fn(&proto::StatusResponse) -> bool,
) -> proto::StatusResponse {
    let check = &check;
    eventually(Duration::from_secs(5), || async move {
        let s = server.status().await;
        check(&s).then_some(s)
    })
    .await
    .expect("status never matched")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_change_keeps_the_live_set_and_a_fix_goes_live_within_a_second() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let before = server.status().await;
    let load = Load::start(&server, token.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;

    // An invalid edit, in place: a syntax error on line 4.
    let items = server.policies().join("items.cedar");
    std::fs::write(&items, "@id(\"item-read\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/item/{id}\")\nwhen { context.scopes.contains(\"read\") };\n@id(\"x\") permit (principal, action, resource) when { ;\n").unwrap();
    let status = expect_status(&server, |s| !s.last_errors.is_empty()).await;
    assert_eq!(
        status.policy_version, before.policy_version,
        "the live set did not change"
    );
    let err = &status.last_errors[0];
    assert_eq!((err.file.as_str(), err.line), ("items.cedar", 4), "{err:?}");
    let last = status.last_reload.unwrap();
    assert_eq!(last.result, reload_outcome::Result::Failed as i32);
    assert_eq!(last.trigger, reload_outcome::Trigger::Watch as i32);
    assert!(status.counters.unwrap().failed >= 1);

    // The fix: now `GET /item/{id}` needs `write`.
    let written = Instant::now();
    std::fs::write(&items, ITEMS_NEEDS_WRITE).unwrap();
    let seen_after = wait_reason(
        &mut server,
        &token,
        Reason::InsufficientScope,
        Duration::from_secs(5),
    )
    .await;
    let visible_after = written.elapsed();
    assert!(seen_after.is_some(), "the fix never went live");
    assert!(
        visible_after <= VISIBLE + Duration::from_millis(100),
        "visible after {visible_after:?}"
    );

    let (calls, failures, seen) = load.finish().await;
    assert_eq!(failures, 0, "no RPC failed during reloads ({calls} calls)");
    assert!(calls > 10, "the load ran: {calls}");
    // Decisions went straight from the old set to the new one, never anything else.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("Allowed@") && seen[1].starts_with("InsufficientScope@"),
        "{seen:?}"
    );
    let status = server.status().await;
    assert!(
        status.last_errors.is_empty(),
        "a successful reload clears the error"
    );
    assert_ne!(status.policy_version, before.policy_version);
}

#[tokio::test]
async fn write_to_temp_then_rename_over() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let dir = server.policies();
    let tmp = dir.join(".items.cedar.tmp");
    std::fs::write(&tmp, ITEMS_NEEDS_WRITE).unwrap();
    std::fs::rename(&tmp, dir.join("items.cedar")).unwrap();
    expect_reason(&mut server, &token, Reason::InsufficientScope).await;
}

#[tokio::test]
async fn deleting_and_adding_files_and_folders() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let dir = server.policies();
    std::fs::remove_file(dir.join("items.cedar")).unwrap();
    // No policy permits the route any more (it stays a route: entities.json declares it).
    expect_reason(&mut server, &token, Reason::PolicyDeny).await;
    std::fs::create_dir_all(dir.join("teams/items")).unwrap();
    std::fs::write(dir.join("teams/items/items.cedar"), ITEMS_NEEDS_WRITE).unwrap();
    expect_reason(&mut server, &token, Reason::InsufficientScope).await;
    std::fs::remove_dir_all(dir.join("teams")).unwrap();
    expect_reason(&mut server, &token, Reason::PolicyDeny).await;
}

#[tokio::test]
async fn directory_symlink_re_pointed_atomically() {
    let root = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &root.path().join("v1"));
    copy_dir(&bundled_policies(), &root.path().join("v2"));
    std::fs::write(root.path().join("v2/items.cedar"), ITEMS_NEEDS_WRITE).unwrap();
    std::os::unix::fs::symlink("v1", root.path().join("policies")).unwrap();
    let mut server = TestServer::start_in(root, |_| {}).await;
    let token = server.token("demo", None, "read");
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed);

    // `ln -sfn v2 policies.tmp && mv -T policies.tmp policies`
    let base = server.dir.path().to_path_buf();
    std::os::unix::fs::symlink("v2", base.join("policies.tmp")).unwrap();
    std::fs::rename(base.join("policies.tmp"), base.join("policies")).unwrap();
    expect_reason(&mut server, &token, Reason::InsufficientScope).await;

    // And back again, to prove the new target is watched too.
    std::fs::write(
        base.join("v2/items.cedar"),
        std::fs::read(bundled_policies().join("items.cedar")).unwrap(),
    )
    .unwrap();
    assert!(
        wait_reason(&mut server, &token, Reason::Allowed, Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn kubernetes_configmap_data_swap() {
    // The layout kubelet writes: real files in a timestamped dir, `..data` pointing at it,
    // and every visible file a link through `..data`.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("policies");
    copy_dir(&bundled_policies(), &dir.join("..2026_11_27_01"));
    std::os::unix::fs::symlink("..2026_11_27_01", dir.join("..data")).unwrap();
    for f in [
        "schema.cedarschema",
        "entities.json",
        "config-api.cedar",
        "items.cedar",
        "guards.cedar",
        "hr.cedar",
    ] {
        std::os::unix::fs::symlink(format!("..data/{f}"), dir.join(f)).unwrap();
    }
    let mut server = TestServer::start_in(root, |_| {}).await;
    let token = server.token("demo", None, "read");
    assert_eq!(
        reason(&server.authorize(&token, "GET", "/item/1", json!({})).await),
        Reason::Allowed
    );

    let next = dir.join("..2026_11_27_02");
    copy_dir(&bundled_policies(), &next);
    std::fs::write(next.join("items.cedar"), ITEMS_NEEDS_WRITE).unwrap();
    std::os::unix::fs::symlink("..2026_11_27_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_11_27_01")).unwrap();
    expect_reason(&mut server, &token, Reason::InsufficientScope).await;
}

#[tokio::test]
async fn a_burst_of_writes_causes_a_bounded_number_of_reloads() {
    let server = TestServer::start().await;
    let dir = server.policies();
    let base = server.status().await.policy_count;
    for i in 0..50 {
        std::fs::write(
            dir.join(format!("burst-{i}.cedar")),
            format!("@id(\"burst-{i}\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/burst/{i}\");\n"),
        )
        .unwrap();
    }
    let status = expect_status(&server, |s| s.policy_count == base + 50).await;
    // Settle, then count: the debouncer and coalescing keep this far below 50.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = server.status().await.counters.unwrap();
    let reloads = c.applied + c.unchanged + c.failed;
    assert!(reloads <= 10, "{reloads} reloads for 50 writes ({c:?})");
    assert_eq!(status.route_count, server.status().await.route_count);
}

#[tokio::test]
async fn a_missing_directory_keeps_the_last_good_set() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let dir = server.policies();
    let away = dir.with_file_name("policies-away");
    std::fs::rename(&dir, &away).unwrap();
    let status = expect_status(&server, |s| !s.last_errors.is_empty()).await;
    assert!(
        status.last_errors[0].message.contains("cannot read"),
        "{:?}",
        status.last_errors
    );
    assert_eq!(
        reason(&server.authorize(&token, "GET", "/item/1", json!({})).await),
        Reason::Allowed
    );

    std::fs::write(away.join("items.cedar"), ITEMS_NEEDS_WRITE).unwrap();
    std::fs::rename(&away, &dir).unwrap();
    expect_reason(&mut server, &token, Reason::InsufficientScope).await;
}

#[tokio::test]
async fn admin_reload_without_watching() {
    let mut server = TestServer::start_with(|c| c.watch_policies = false).await;
    let token = server.token("demo", None, "read");
    std::fs::write(server.policies().join("items.cedar"), ITEMS_NEEDS_WRITE).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reason(&server.authorize(&token, "GET", "/item/1", json!({})).await),
        Reason::Allowed,
        "not watching"
    );

    let r = server.reload().await;
    let outcome = r.outcome.unwrap();
    assert_eq!(outcome.result, reload_outcome::Result::Applied as i32);
    assert_eq!(outcome.trigger, reload_outcome::Trigger::Admin as i32);
    assert_eq!(
        reason(&server.authorize(&token, "GET", "/item/1", json!({})).await),
        Reason::InsufficientScope
    );
    let again = server.reload().await;
    assert_eq!(
        again.outcome.unwrap().result,
        reload_outcome::Result::Unchanged as i32
    );

    std::fs::write(server.policies().join("items.cedar"), "permit(").unwrap();
    let bad = server.reload().await;
    assert_eq!(
        bad.outcome.unwrap().result,
        reload_outcome::Result::Failed as i32
    );
    assert_eq!(bad.errors[0].file, "items.cedar");
    assert_eq!(
        bad.policy_version, r.policy_version,
        "still the last good set"
    );
}

/// What a token contributes to the context is kept per token (not rebuilt per decision),
/// but never across a schema change: once the schema declares a new claim and a policy reads
/// it, the same token, already used, is decided with that claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_reaches_tokens_already_seen() {
    let mut server = TestServer::start().await;
    let mut claims = serde_json::Map::new();
    claims.insert("team".into(), json!("blue"));
    let token = server.token_with("demo", None, "read", claims);
    expect_reason(&mut server, &token, Reason::Allowed).await;
    expect_reason(&mut server, &token, Reason::Allowed).await;

    let schema = server.policies().join("schema.cedarschema");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        text.replacen(
            "jti?: String, acr?: String,",
            "jti?: String, acr?: String, team?: String,",
            1,
        ),
    )
    .unwrap();
    std::fs::write(
        server.policies().join("teams.cedar"),
        r#"@id("no-blue-team")
forbid (principal, action, resource == Endpoint::"/item/{id}")
when { context has token && context.token has team && context.token.team == "blue" };
"#,
    )
    .unwrap();
    let reloaded = server.reload().await;
    assert!(reloaded.errors.is_empty(), "{:?}", reloaded.errors);
    expect_reason(&mut server, &token, Reason::PolicyDeny).await;
}
