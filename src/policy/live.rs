//! The live policy set: an immutable snapshot behind one `ArcSwap`, so a decision reads it
//! without a lock, and a reload (file watch, SIGHUP, admin RPC) swaps in a whole new one only
//! when every file of the directory is valid. The outcome of each reload is kept for status.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use super::load::LoadCache;
use super::{LoadError, PolicyError, PolicySnapshot};

/// What caused a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A file of the directory changed.
    Watch,
    /// SIGHUP.
    Signal,
    /// The admin RPC.
    Admin,
    /// A new bundle from the policy source.
    Bundle,
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// A new set is live.
    Applied,
    /// The directory's content hash did not change; nothing was swapped.
    Unchanged,
    /// Invalid or unreadable: the last good set stays live.
    Failed,
}

/// One reload attempt.
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    /// How it ended.
    pub result: ReloadResult,
    /// What caused it.
    pub trigger: Trigger,
    /// When it finished.
    pub at: SystemTime,
    /// The version loaded (empty when it failed).
    pub version: String,
    /// Time to read, validate and index the directory.
    pub duration: Duration,
}

/// Reload counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadCounters {
    /// Reloads that swapped in a new set.
    pub applied: u64,
    /// Reloads that found nothing changed.
    pub unchanged: u64,
    /// Reloads that failed and kept the last good set.
    pub failed: u64,
}

/// What status reports about reloads.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// The last attempt, if any since start.
    pub last: Option<ReloadOutcome>,
    /// Why the last attempt failed; empty once one succeeds.
    pub last_errors: Vec<PolicyError>,
    /// Counters since start.
    pub counters: ReloadCounters,
    /// The last [`RELOAD_HISTORY`] attempts, oldest first (with the first `file:line` error
    /// of each failed one), for the workbench's reload history.
    pub history: std::collections::VecDeque<(ReloadOutcome, Option<String>)>,
}

/// Reload attempts kept in [`ReloadStatus::history`].
pub const RELOAD_HISTORY: usize = 50;

/// Holds the live snapshot. Reads are lock-free; a reload swaps one `Arc`.
#[derive(Debug)]
pub struct LivePolicies {
    /// The directory reloads read: the watched one, or the last bundle written out.
    dir: Mutex<PathBuf>,
    current: ArcSwap<PolicySnapshot>,
    /// Serializes reloads and holds what they reuse (locked only on the blocking reload
    /// thread, never across `.await`).
    reloading: Mutex<LoadCache>,
    status: Mutex<ReloadStatus>,
    /// Callers of [`reload_in_background`] waiting for the next reload.
    flight: Mutex<Flight>,
}

impl LivePolicies {
    /// Loads `dir`; fails if the directory is not a valid policy set.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, LoadError> {
        let dir = dir.into();
        let mut cache = LoadCache::default();
        let snapshot = Arc::new(PolicySnapshot::load_with(&dir, Some(&mut cache), None)?);
        index_queries_in_background(&snapshot);
        Ok(Self {
            dir: Mutex::new(dir),
            current: ArcSwap::new(snapshot),
            reloading: Mutex::new(cache),
            status: Mutex::new(ReloadStatus::default()),
            flight: Mutex::new(Flight::default()),
        })
    }

    /// The live snapshot, for one decision: cheap, never blocks.
    pub fn load(&self) -> arc_swap::Guard<Arc<PolicySnapshot>> {
        self.current.load()
    }

    /// The live snapshot as an owned `Arc`.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    /// The policy directory reloads read.
    pub fn dir(&self) -> PathBuf {
        lock(&self.dir).clone()
    }

    /// The reload status.
    pub fn status(&self) -> ReloadStatus {
        lock(&self.status).clone()
    }

    /// The live snapshot and the reload status that describes it, read together (a reload
    /// swaps the snapshot and updates the status in one step).
    pub fn snapshot_and_status(&self) -> (Arc<PolicySnapshot>, ReloadStatus) {
        let status = lock(&self.status);
        (self.current.load_full(), status.clone())
    }

    /// Loads the directory again and swaps it in only if all of it is valid. Blocking and
    /// CPU-heavy: call it from a blocking thread. Concurrent calls run one after the other.
    pub fn reload(&self, trigger: Trigger) -> (ReloadOutcome, Vec<PolicyError>) {
        self.reload_at(None, trigger)
    }

    /// Like [`LivePolicies::reload`], from `dir` (a bundle just written out): `dir` becomes
    /// the directory later reloads read only if its set is valid.
    pub fn reload_from(&self, dir: &Path, trigger: Trigger) -> (ReloadOutcome, Vec<PolicyError>) {
        self.reload_at(Some(dir), trigger)
    }

    fn reload_at(
        &self,
        from: Option<&Path>,
        trigger: Trigger,
    ) -> (ReloadOutcome, Vec<PolicyError>) {
        let span = tracing::debug_span!(
            "policy.reload",
            trigger = ?trigger,
            result = tracing::field::Empty,
            policy_version = tracing::field::Empty,
        );
        let _entered = span.enter();
        let mut cache = lock(&self.reloading);
        let started = Instant::now();
        let live = self.current.load_full();
        let dir = from.map_or_else(|| self.dir(), Path::to_path_buf);
        let loaded = PolicySnapshot::load_with(&dir, Some(&mut cache), Some(&live));
        drop(live);
        let duration = started.elapsed();
        let live_version = self.current.load().version.clone();
        let mut to_store = None;
        let (result, version, errors) = match loaded {
            Ok(snapshot) if snapshot.version == live_version => {
                (ReloadResult::Unchanged, snapshot.version, Vec::new())
            }
            Ok(snapshot) => {
                let version = snapshot.version.clone();
                let count = snapshot.policy_count();
                for w in &snapshot.warnings {
                    tracing::warn!(warning = %w, "policy validation warning");
                }
                let snapshot = Arc::new(snapshot);
                index_queries_in_background(&snapshot);
                to_store = Some(snapshot);
                tracing::info!(
                    policy_version = %version,
                    previous = %live_version,
                    policy_count = count,
                    duration_ms = duration.as_millis() as u64,
                    trigger = ?trigger,
                    "policies reloaded"
                );
                (ReloadResult::Applied, version, Vec::new())
            }
            Err(e) => {
                for err in &e.errors {
                    tracing::warn!(
                        file = %err.file,
                        line = err.line.unwrap_or(0),
                        message = %err.message,
                        "invalid policy change ignored; the last good set stays live"
                    );
                }
                (ReloadResult::Failed, String::new(), e.errors)
            }
        };
        span.record("result", format_args!("{result:?}"));
        span.record("policy_version", version.as_str());
        let outcome = ReloadOutcome {
            result,
            trigger,
            at: SystemTime::now(),
            version,
            duration,
        };
        // The new set goes live and the status says so in one step for status readers.
        if result != ReloadResult::Failed {
            *lock(&self.dir) = dir;
        }
        let mut status = lock(&self.status);
        if let Some(snapshot) = to_store {
            self.current.store(snapshot);
        }
        match result {
            ReloadResult::Applied => status.counters.applied += 1,
            ReloadResult::Unchanged => status.counters.unchanged += 1,
            ReloadResult::Failed => status.counters.failed += 1,
        }
        match result {
            ReloadResult::Applied => crate::telemetry::metrics::METRICS.reload("applied"),
            ReloadResult::Unchanged => crate::telemetry::metrics::METRICS.reload("unchanged"),
            ReloadResult::Failed => crate::telemetry::metrics::METRICS.reload("failed"),
        }
        if result != ReloadResult::Failed {
            status.last_errors.clear();
        } else {
            status.last_errors = errors.clone();
        }
        status.last = Some(outcome.clone());
        if status.history.len() == RELOAD_HISTORY {
            status.history.pop_front();
        }
        let first_error = errors.first().map(ToString::to_string);
        status.history.push_back((outcome.clone(), first_error));
        (outcome, errors)
    }
}

/// One reload's outcome, shared by every caller that joined it.
pub type Reloaded = (ReloadOutcome, Vec<PolicyError>);

/// Callers waiting for the next reload, and whether the reload thread is running.
#[derive(Debug, Default)]
struct Flight {
    running: bool,
    waiting: Vec<(Trigger, tokio::sync::oneshot::Sender<Reloaded>)>,
}

/// Runs a reload off the async workers that serve decisions and waits for it. Reloads are
/// single-flight: callers arriving while one runs all join the next one (which starts after
/// they asked, so it sees their change), on the one reload thread; a burst of any size costs
/// at most two reloads and one thread. (Lowering that thread's OS priority was measured and
/// dropped: it barely changed decision latency during reloads and made the reload itself
/// much slower.)
pub async fn reload_in_background(store: Arc<LivePolicies>, trigger: Trigger) -> Option<Reloaded> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let start = {
        let mut flight = lock(&store.flight);
        flight.waiting.push((trigger, tx));
        !std::mem::replace(&mut flight.running, true)
    };
    if start {
        // The reload's span is a child of whatever asked for the first one (an admin RPC's).
        let caller = tracing::Span::current();
        let runner = store.clone();
        let spawned = std::thread::Builder::new()
            .name("policy-reload".into())
            .spawn(move || caller.in_scope(|| run_reloads(&runner)));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a policy reload thread");
            let mut flight = lock(&store.flight);
            flight.running = false;
            flight.waiting.clear();
            return None;
        }
    }
    rx.await.ok()
}

/// The reload thread: reloads once for every batch of callers, until none waits.
fn run_reloads(store: &LivePolicies) {
    loop {
        let batch = {
            let mut flight = lock(&store.flight);
            if flight.waiting.is_empty() {
                flight.running = false;
                return;
            }
            std::mem::take(&mut flight.waiting)
        };
        let trigger = batch.first().map_or(Trigger::Admin, |(t, _)| *t);
        let reloaded = store.reload(trigger);
        for (_, tx) in batch {
            let _ = tx.send(reloaded.clone());
        }
    }
}

/// Locks a mutex, recovering from poisoning: the data behind these locks stays consistent
/// even if a holder panicked (they only replace whole values).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a snapshot must stay live before its query index is built in the background: a
/// burst of reloads (an author saving file after file, a rollout) builds no index for the
/// snapshots it replaces, and the build never competes with the next reload for the CPU.
const QUERY_INDEX_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Builds a snapshot's query index off the decision path once it has stayed live for
/// [`QUERY_INDEX_DELAY`], so the first policy query after a load answers quickly; decisions
/// never wait for it, and a query asked sooner builds it then.
fn index_queries_in_background(snapshot: &Arc<PolicySnapshot>) {
    // A weak reference: once the snapshot is replaced (and its last decision has finished),
    // there is nothing left to index.
    let snapshot = Arc::downgrade(snapshot);
    let spawned = std::thread::Builder::new()
        .name("policy-query-index".into())
        .spawn(move || {
            std::thread::sleep(QUERY_INDEX_DELAY);
            if let Some(snapshot) = snapshot.upgrade() {
                snapshot.query_index();
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "query index will be built on first query");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bundled_copy;

    #[test]
    fn validation_errors_of_reused_files_are_located_exactly() {
        let dir = bundled_copy();
        let store = LivePolicies::open(dir.path()).unwrap();
        let items = dir.path().join("items.cedar");
        let text = std::fs::read_to_string(&items).unwrap();
        // Break the second policy of the file (its condition is on line 23).
        let broken = text.replace(
            "when { context.scopes.contains(\"read\") };",
            "when { context.scopes.contains(\"read\") && context.nope == 1 };",
        );
        assert_ne!(broken, text);
        std::fs::write(&items, &broken).unwrap();
        let (outcome, errors) = store.reload(Trigger::Admin);
        assert_eq!(outcome.result, ReloadResult::Failed);
        assert_eq!(
            (errors[0].file.as_str(), errors[0].line),
            ("items.cedar", Some(23)),
            "{errors:?}"
        );
        // The same text loaded cold reports the same place.
        let cold = PolicySnapshot::load(dir.path()).unwrap_err();
        assert_eq!(cold.errors[0], errors[0]);
        // Fixing it applies, and an untouched reload is unchanged.
        std::fs::write(&items, &text).unwrap();
        assert_eq!(
            store.reload(Trigger::Admin).0.result,
            ReloadResult::Unchanged
        );
    }

    #[test]
    fn a_schema_change_revalidates_every_policy() {
        let dir = bundled_copy();
        let store = LivePolicies::open(dir.path()).unwrap();
        let schema = dir.path().join("schema.cedarschema");
        let text = std::fs::read_to_string(&schema).unwrap();
        // guards.cedar compares `fraud_score` with a number; the unchanged file must still be
        // re-checked against the new type.
        std::fs::write(
            &schema,
            text.replace("    fraud_score?: Long,\n", "    fraud_score?: String,\n"),
        )
        .unwrap();
        let (outcome, errors) = store.reload(Trigger::Admin);
        assert_eq!(outcome.result, ReloadResult::Failed);
        assert!(
            errors
                .iter()
                .any(|e| e.file == "guards.cedar" && e.line == Some(6)),
            "{errors:?}"
        );
        std::fs::write(&schema, text).unwrap();
        assert_eq!(
            store.reload(Trigger::Admin).0.result,
            ReloadResult::Unchanged
        );
    }

    #[test]
    fn cached_reload_equals_a_cold_load() {
        let dir = bundled_copy();
        let store = LivePolicies::open(dir.path()).unwrap();
        let items = dir.path().join("items.cedar");
        let text = std::fs::read_to_string(&items).unwrap();
        std::fs::write(
            &items,
            // The annotations say what the conditions say, or the policy is refused.
            text.replace("contains(\"read\")", "contains(\"write\")")
                .replace("@scopes(\"read", "@scopes(\"write"),
        )
        .unwrap();
        assert_eq!(store.reload(Trigger::Admin).0.result, ReloadResult::Applied);
        let warm = store.snapshot();
        let cold = PolicySnapshot::load(dir.path()).unwrap();
        assert_eq!(warm.version, cold.version);
        assert_eq!(warm.policies.to_cedar(), cold.policies.to_cedar());
        let mut warm_meta: Vec<_> = warm
            .meta
            .iter()
            .map(|(id, m)| (id.to_string(), m.file.clone(), m.line))
            .collect();
        let mut cold_meta: Vec<_> = cold
            .meta
            .iter()
            .map(|(id, m)| (id.to_string(), m.file.clone(), m.line))
            .collect();
        warm_meta.sort();
        cold_meta.sort();
        assert_eq!(warm_meta, cold_meta);
    }
}
