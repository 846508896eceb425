//! The fleet: every replica records in the shared store what it runs (its revision, when it
//! loaded it, how its last reload went) with a heartbeat, and `arbiter fleet status` or
//! `PolicyAdmin.FleetStatus` read the records back, flagging replicas on another revision
//! than the fleet's or silent for too long.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::bundle::source::BundleSource;
use crate::policy::{LivePolicies, ReloadResult};
use crate::store::{ReplicaRecord, Store, StoreError};

/// Who this replica is in the fleet.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Stable across restarts.
    pub replica_id: String,
    /// Where it serves decisions.
    pub address: String,
    /// When this process started (seconds since the epoch).
    pub started_at: i64,
}

impl Identity {
    /// `configured`, or else this host's name and the gRPC address: the same after a restart
    /// on the same host and port.
    pub fn new(configured: Option<&str>, grpc: SocketAddr) -> Self {
        let replica_id = match configured {
            Some(id) => id.to_owned(),
            None => format!("{}/{grpc}", hostname()),
        };
        Self {
            replica_id,
            address: grpc.to_string(),
            started_at: crate::clock::now_i64(),
        }
    }
}

/// The host's name (`/proc/sys/kernel/hostname`, `HOSTNAME`, or `localhost`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// This replica's record now.
pub fn describe(
    identity: &Identity,
    live: &LivePolicies,
    source: Option<&BundleSource>,
) -> ReplicaRecord {
    let (snapshot, status) = live.snapshot_and_status();
    let fetch = source.map(BundleSource::status);
    let last_reload = match status.last.as_ref().map(|o| o.result) {
        Some(ReloadResult::Applied) => "applied",
        Some(ReloadResult::Unchanged) => "unchanged",
        Some(ReloadResult::Failed) => "failed",
        None => "none",
    };
    let last_error = match &fetch {
        Some(f) if f.last_result == "failed" => f.last_error.clone(),
        _ => status
            .last_errors
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
    };
    ReplicaRecord {
        replica_id: identity.replica_id.clone(),
        address: identity.address.clone(),
        revision: snapshot.revision.clone(),
        version: snapshot.version.clone(),
        loaded_at: seconds(snapshot.loaded_at),
        last_reload: last_reload.into(),
        last_error: last_error.chars().take(500).collect(),
        source: fetch.map_or_else(|| snapshot.source.display().to_string(), |f| f.location),
        started_at: identity.started_at,
        heartbeat_at: crate::clock::now_i64(),
    }
}

fn seconds(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Records this replica every `interval` until `shutdown` (a failed write is logged and
/// tried again at the next beat: the fleet view is never on the decision path).
pub fn spawn_heartbeats(
    store: Arc<dyn Store>,
    identity: Identity,
    live: Arc<LivePolicies>,
    source: Option<Arc<BundleSource>>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let record = describe(&identity, &live, source.as_deref());
            if let Err(e) = store.record_replica(&record).await {
                tracing::warn!(error = %e, "cannot record this replica in the fleet");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    });
}

/// One replica as the fleet view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    /// What it recorded.
    #[serde(flatten)]
    pub record: ReplicaRecord,
    /// Seconds since its last heartbeat.
    pub silent_seconds: i64,
    /// `other-revision`, `silent`, `reload-failed`: what needs a look.
    pub flags: Vec<&'static str>,
}

/// The fleet at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    /// The revision most live replicas run (ties: the one loaded last).
    pub revision: Option<String>,
    /// No replica is flagged.
    pub consistent: bool,
    /// Every replica, by id.
    pub replicas: Vec<ReplicaView>,
}

/// The fleet view of `records` at `now`: replicas silent for more than `silent_after`
/// seconds are flagged and do not vote on the fleet's revision.
pub fn assess(records: Vec<ReplicaRecord>, now: i64, silent_after: i64) -> FleetView {
    let live: Vec<&ReplicaRecord> = records
        .iter()
        .filter(|r| now - r.heartbeat_at <= silent_after)
        .collect();
    let mut votes: HashMap<&str, (usize, i64)> = HashMap::new();
    for r in &live {
        let v = votes.entry(r.revision.as_str()).or_default();
        v.0 += 1;
        v.1 = v.1.max(r.loaded_at);
    }
    let revision = votes
        .into_iter()
        .max_by_key(|(rev, (count, loaded))| (*count, *loaded, rev.to_string()))
        .map(|(rev, _)| rev.to_owned());
    let replicas: Vec<ReplicaView> = records
        .into_iter()
        .map(|record| {
            let silent_seconds = (now - record.heartbeat_at).max(0);
            let mut flags = Vec::new();
            if silent_seconds > silent_after {
                flags.push("silent");
            }
            if revision.as_deref().is_some_and(|r| r != record.revision) {
                flags.push("other-revision");
            }
            if record.last_reload == "failed" || !record.last_error.is_empty() {
                flags.push("reload-failed");
            }
            ReplicaView {
                record,
                silent_seconds,
                flags,
            }
        })
        .collect();
    FleetView {
        consistent: replicas.iter().all(|r| r.flags.is_empty()),
        revision,
        replicas,
    }
}

/// The fleet view from the store now.
pub async fn status(store: &dyn Store, silent_after: i64) -> Result<FleetView, StoreError> {
    Ok(assess(
        store.replicas().await?,
        crate::clock::now_i64(),
        silent_after,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, revision: &str, heartbeat_at: i64) -> ReplicaRecord {
        ReplicaRecord {
            replica_id: id.into(),
            address: "127.0.0.1:1".into(),
            revision: revision.into(),
            version: "v".into(),
            loaded_at: 100,
            last_reload: "applied".into(),
            last_error: String::new(),
            source: "s".into(),
            started_at: 1,
            heartbeat_at,
        }
    }

    #[test]
    fn flags_the_odd_one_out_and_the_silent() {
        let view = assess(
            vec![
                record("a", "2", 1000),
                record("b", "2", 995),
                record("c", "1", 999),
                record("d", "2", 900),
            ],
            1000,
            30,
        );
        assert_eq!(view.revision.as_deref(), Some("2"));
        assert!(!view.consistent);
        let flags: Vec<(&str, &[&str])> = view
            .replicas
            .iter()
            .map(|r| (r.record.replica_id.as_str(), r.flags.as_slice()))
            .collect();
        assert_eq!(
            flags,
            vec![
                ("a", &[][..]),
                ("b", &[][..]),
                ("c", &["other-revision"][..]),
                ("d", &["silent"][..]),
            ]
        );
        let all_same = assess(vec![record("a", "3", 10), record("b", "3", 10)], 10, 30);
        assert!(all_same.consistent);
    }
}
