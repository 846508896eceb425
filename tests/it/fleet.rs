//! The fleet view (issue 34): two `arbiter serve` processes sharing PostgreSQL and one
//! bundle source record what they run; `arbiter fleet status` (the CLI, on the store) and `PolicyAdmin.FleetStatus`
//! show both move to a newly published revision, and flag a replica that went silent.

use std::path::Path;
use std::time::Duration;

use arbiter::grpc::proto;
use serde_json::Value;

use crate::support::*;

/// `arbiter serve` in `dir` on the shared store, its policies the bundle at `bundle`.
fn replica(store: &str, bundle: &str, key: &BundleKey, dir: &Path) -> ServeProcess {
    std::fs::create_dir_all(dir).unwrap();
    let config = format!(
        "policies = {bundle:?}\n\
         [store]\nurl = {store:?}\n\
         [bundles]\nkeys = {:?}\npoll_interval_seconds = 1\n\
         [fleet]\nheartbeat_seconds = 1\nsilent_after_seconds = 3\n",
        key.jwks
    );
    ServeProcess::start(dir, &config)
}

/// `arbiter fleet status --json` on the shared store: its exit code and its view.
fn fleet_status(store: &str) -> (i32, Value) {
    let out = arbiter_bin()
        .args([
            "fleet",
            "status",
            "--json",
            "--silent-after",
            "3",
            "--store-url",
            store,
        ])
        .output()
        .unwrap();
    let view = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), view)
}

/// The revision of every replica the view lists, by id.
fn revisions(view: &Value) -> Vec<String> {
    view["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_status_shows_every_replica_move_to_a_published_revision() {
    let Some(store) = postgres_database("fleet").await else {
        return;
    };
    let release = Release::start("ES256");
    let (work, key, bundle) = (release.work.path(), &release.key, &release.url);
    release.publish(&bundled_policies(), "1");
    let a = replica(&store, bundle, key, &work.join("a"));
    let b = replica(&store, bundle, key, &work.join("b"));

    let both_on = |revision: &'static str| {
        let store = store.clone();
        async move {
            eventually(Duration::from_secs(15), || async {
                let (code, view) = fleet_status(&store);
                (code == 0 && revisions(&view) == [revision, revision]).then_some(view)
            })
            .await
        }
    };
    let view = both_on("1")
        .await
        .expect("both replicas recorded on revision 1");
    assert_eq!(view["revision"], "1");
    assert_eq!(view["consistent"], true);

    bundled_with(&work.join("v2"), FREEZE_READS);
    release.publish(&work.join("v2"), "2");
    let view = both_on("2")
        .await
        .expect("both replicas recorded on revision 2");
    assert_eq!(view["revision"], "2");

    // The same view over the control plane.
    let over_grpc = a
        .admin()
        .await
        .fleet_status(proto::FleetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(over_grpc.revision, "2");
    assert_eq!(over_grpc.replicas.len(), 2);
    assert!(over_grpc.consistent);

    // A replica that stops is flagged silent, and the status says the fleet needs a look.
    let b_id = view["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == b.addr.trim_start_matches("http://"))
        .map(|r| r["replica_id"].as_str().unwrap().to_owned())
        .unwrap();
    drop(b);
    let flagged = eventually(Duration::from_secs(15), || async {
        let (code, view) = fleet_status(&store);
        let silent = view["replicas"].as_array().unwrap().iter().any(|r| {
            r["replica_id"] == b_id.as_str() && r["flags"] == serde_json::json!(["silent"])
        });
        (code == 1 && silent).then_some(view)
    })
    .await;
    assert!(flagged.is_some(), "the stopped replica was not flagged");
    drop(a);
    drop_postgres_database(&store).await;
}
