//! The recent decisions: the last lines of the decision log (target `arbiter::decision`),
//! kept in memory for the workbench's Decisions screen. They are taken on the log writer's
//! own thread, from the JSON lines it writes anyway, so keeping them costs a decision
//! nothing. Text log lines keep none.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// The marker of a decision line in the JSON format.
const DECISION_TARGET: &str = "\"target\":\"arbiter::decision\"";

/// The last decision log lines, newest last.
#[derive(Debug)]
pub struct RecentDecisions {
    lines: Mutex<VecDeque<Box<str>>>,
    capacity: usize,
}

static WINDOW: OnceLock<Arc<RecentDecisions>> = OnceLock::new();

/// The process's window, when the log keeps one (`telemetry::init` with a capacity).
pub fn recent_decisions() -> Option<Arc<RecentDecisions>> {
    WINDOW.get().cloned()
}

impl RecentDecisions {
    /// A window of at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
        }
    }

    /// Installs `self` as the process's window (the first one wins).
    pub(super) fn install(self: &Arc<Self>) {
        let _ = WINDOW.set(self.clone());
    }

    /// Keeps `line` if it is a decision line (a JSON line of target `arbiter::decision`).
    pub fn offer(&self, line: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return;
        };
        if !text.contains(DECISION_TARGET) {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(text.trim_end().into());
    }

    /// The lines kept, newest first, that `keep` accepts, at most `limit` of them after
    /// skipping `skip`, and how many were examined in all. The lock is held only while the
    /// lines are copied out.
    pub fn newest(&self, skip: usize, limit: usize, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .rev()
            .filter(|l| keep(l))
            .skip(skip)
            .take(limit)
            .map(|l| l.to_string())
            .collect()
    }

    /// Lines kept now.
    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The log writer's sink: every line goes to `inner`, decision lines are also kept in the
/// window. One `write` is one line (the writer thread writes each line whole).
pub(super) struct Tee<W> {
    pub(super) inner: W,
    pub(super) window: Option<Arc<RecentDecisions>>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write_all(buf)?;
        if let Some(window) = &self.window {
            window.offer(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_decision_lines_and_only_the_newest() {
        let w = RecentDecisions::new(2);
        for i in 0..3 {
            w.offer(format!("{{\"target\":\"arbiter::decision\",\"n\":{i}}}\n").as_bytes());
        }
        w.offer(b"{\"target\":\"arbiter::server\"}\n");
        let lines = w.newest(0, 10, |_| true);
        assert_eq!(
            lines,
            [
                "{\"target\":\"arbiter::decision\",\"n\":2}",
                "{\"target\":\"arbiter::decision\",\"n\":1}"
            ]
        );
        assert_eq!(w.newest(1, 10, |_| true).len(), 1);
        assert_eq!(w.newest(0, 10, |l| l.contains("\"n\":1")).len(), 1);
    }
}
