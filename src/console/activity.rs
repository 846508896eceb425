//! The Overview's activity: decisions per second and denials by reason over the last hour,
//! sampled every ten seconds from the decision counters (off the decision path: a
//! background task reads counters the decisions keep anyway).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::decision::Reason;
use crate::telemetry::metrics::METRICS;

/// How often the counters are read.
pub(crate) const STEP: Duration = Duration::from_secs(10);
/// Samples kept: one hour.
const SAMPLES: usize = 360;

/// Every reason a decision can have, in the order the chart stacks them.
pub(crate) const REASONS: [Reason; Reason::ALL.len()] = Reason::ALL;

/// Decisions of one interval, by reason (in [`REASONS`] order).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interval {
    /// Decisions in it, by reason.
    pub(crate) by_reason: [u64; REASONS.len()],
}

/// The last hour of intervals.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    intervals: Mutex<(VecDeque<Interval>, Option<[u64; REASONS.len()]>)>,
}

impl Activity {
    /// Reads the counters and records the interval since the last reading.
    pub(crate) fn sample(&self) {
        let now = totals();
        let mut guard = self.intervals.lock().unwrap_or_else(|p| p.into_inner());
        let (intervals, last) = &mut *guard;
        if let Some(before) = last {
            let mut by_reason = [0; REASONS.len()];
            for (i, n) in by_reason.iter_mut().enumerate() {
                *n = now[i].saturating_sub(before[i]);
            }
            if intervals.len() == SAMPLES {
                intervals.pop_front();
            }
            intervals.push_back(Interval { by_reason });
        }
        *last = Some(now);
    }

    /// The intervals of the last hour, oldest first.
    pub(crate) fn intervals(&self) -> Vec<Interval> {
        let guard = self.intervals.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.iter().copied().collect()
    }

    /// Samples every [`STEP`] until `stop`.
    pub(crate) async fn run(self: std::sync::Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(STEP);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.sample(),
            }
        }
    }
}

/// The decision counters now, by reason.
fn totals() -> [u64; REASONS.len()] {
    let mut out = [0; REASONS.len()];
    for (i, reason) in REASONS.iter().enumerate() {
        let allowed = *reason == Reason::Allowed;
        out[i] = METRICS.decision_count(allowed, reason.as_str());
    }
    out
}
