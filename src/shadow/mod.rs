//! Shadow rollout: a candidate policy set loaded beside the live one decides again a share of
//! live decisions, on a thread of its own behind a bounded queue (when the queue is full the
//! sample is dropped and counted; a decision never waits). Each disagreement — allow against
//! deny, or another reason — is counted by route and logged with both answers and the
//! decision id, for `arbiter rollout report`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::decision::log::{loggable, loggable_path};
use crate::decision::tap::{DecisionSample, DecisionTap};
use crate::decision::{verdict_for_verified, AuthzRequest, Verdict};
use crate::policy::LivePolicies;
use crate::telemetry::metrics::METRICS;
use prometheus_client::metrics::counter::Counter;

/// The route label of a decision no route matched.
pub const NO_ROUTE: &str = "(none)";

/// The tap that feeds the candidate.
pub struct Shadow {
    every: u64,
    seen: AtomicU64,
    queue: SyncSender<DecisionSample>,
    dropped: Counter,
}

impl DecisionTap for Shadow {
    fn wants(&self) -> bool {
        self.seen.fetch_add(1, Ordering::Relaxed) % self.every == 0
    }

    fn offer(&self, sample: DecisionSample) {
        match self.queue.try_send(sample) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

/// Starts evaluating `share` (0 to 1) of live decisions against `candidate`, with at most
/// `queue` waiting.
pub fn start(
    candidate: Arc<LivePolicies>,
    share: f64,
    queue: usize,
) -> std::io::Result<Arc<Shadow>> {
    let (tx, rx) = sync_channel(queue.max(1));
    std::thread::Builder::new()
        .name("shadow".into())
        .spawn(move || {
            idle_priority();
            run(&candidate, &rx);
        })?;
    Ok(Arc::new(Shadow {
        every: every(share),
        seen: AtomicU64::new(0),
        queue: tx,
        dropped: METRICS.shadow_counter("dropped"),
    }))
}

/// Gives the calling thread the lowest normal priority (nice 19): under saturation it gets a
/// sliver of CPU, its queue fills and samples are dropped (counted) rather than decisions
/// slowed. Not `SCHED_IDLE`: starved outright, a shadow thread preempted inside a lock the
/// decision threads also take (the log writer, a metrics family) stalled them — measured:
/// a 0.3 s and a 1.3 s maximum in two 10 s saturated runs, against 25 ms at nice 19.
/// Where the OS refuses, it runs at normal priority and says so.
fn idle_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
        if let Err(e) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        {
            tracing::warn!(error = ?e, "the shadow thread runs at normal priority");
        }
    }
}

/// One decision in `every` for a share (the nearest whole ratio; at least every one).
fn every(share: f64) -> u64 {
    if share >= 1.0 || share.is_nan() {
        1
    } else if share <= 0.0 {
        u64::MAX
    } else {
        (1.0 / share).round().max(1.0) as u64
    }
}

/// How long the shadow thread sleeps when its queue is empty. It polls rather than blocks:
/// a receiver blocked in `recv` makes every `try_send` on the decision path a futex wake
/// (a system call and a context switch per sample), measured at 12 to 17 % of throughput
/// at a share of 0.1 on two cores; polling leaves the decision path one lock-free push.
const IDLE: std::time::Duration = std::time::Duration::from_millis(5);

fn run(candidate: &LivePolicies, samples: &Receiver<DecisionSample>) {
    let (agreed, disagreed) = (
        METRICS.shadow_counter("agree"),
        METRICS.shadow_counter("disagree"),
    );
    loop {
        let sample = match samples.try_recv() {
            Ok(sample) => sample,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                std::thread::sleep(IDLE);
                continue;
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
        };
        let snapshot = candidate.load();
        let verdict = decide_again(&snapshot, &sample);
        let live = answer(sample.allowed, sample.reason);
        let shadow = answer(verdict.allowed, verdict.reason.as_str());
        if live == shadow {
            agreed.inc();
            continue;
        }
        disagreed.inc();
        let route = sample
            .route
            .as_deref()
            .or(verdict.route.as_deref())
            .unwrap_or(NO_ROUTE);
        METRICS.shadow_disagreement(route, &live, &shadow);
        tracing::info!(
            target: "arbiter::shadow",
            decision_id = %sample.decision_id,
            method = %loggable(&sample.method, 64),
            path = %loggable_path(&sample.path),
            route,
            live = %live,
            live_policies = ?sample.policy_ids,
            live_revision = %sample.revision,
            candidate = %shadow,
            candidate_policies = ?verdict.policy_ids,
            candidate_revision = %snapshot.revision,
            "{}",
            crate::audit::rollout::DISAGREEMENT
        );
    }
}

/// The candidate's verdict on a sampled request (its token already verified live).
pub fn decide_again(candidate: &crate::policy::PolicySnapshot, sample: &DecisionSample) -> Verdict {
    let req = AuthzRequest {
        token: "",
        subject: None,
        method: &sample.method,
        path: &sample.path,
        resource: None,
        context: &sample.context,
        explain: false,
        client_cert_sha256: &sample.client_cert_sha256,
    };
    verdict_for_verified(candidate, &req, sample.token.as_deref())
}

/// `allow`, or `deny:` and the reason.
fn answer(allowed: bool, reason: &str) -> String {
    if allowed {
        "allow".into()
    } else {
        format!("deny:{reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_become_whole_ratios() {
        assert_eq!(every(1.0), 1);
        assert_eq!(every(0.5), 2);
        assert_eq!(every(0.1), 10);
        assert_eq!(every(0.3), 3);
        assert_eq!(every(0.0), u64::MAX);
    }

    #[test]
    fn a_full_queue_drops_and_never_blocks() {
        let (tx, _rx) = sync_channel(1);
        let shadow = Shadow {
            every: 1,
            seen: AtomicU64::new(0),
            queue: tx,
            dropped: METRICS.shadow_counter("dropped"),
        };
        let sample = DecisionSample {
            decision_id: "d".into(),
            token: None,
            method: "GET".into(),
            path: "/".into(),
            context: serde_json::Map::new(),
            client_cert_sha256: String::new(),
            allowed: true,
            reason: "allowed",
            policy_ids: Vec::new(),
            route: None,
            revision: "r".into(),
        };
        let before = METRICS.encode("v", "r");
        for _ in 0..3 {
            assert!(shadow.wants());
            shadow.offer(sample.clone());
        }
        let after = METRICS.encode("v", "r");
        let dropped = |text: &str| {
            text.lines()
                .find(|l| l.starts_with("arbiter_shadow_decisions_total{outcome=\"dropped\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        assert!(dropped(&after) - dropped(&before) >= 2.0, "{after}");
    }
}
