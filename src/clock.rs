//! The one clock: seconds since the Unix epoch. Everything that expires (token caches,
//! decision TTLs, keys, statements, revocations) reads it here. Components that tests drive
//! through time hold a [`Clock`] handle, which a test makes [`Clock::manual`] and advances
//! instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, by the system clock.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// [`now`] as a signed number, for the store's columns.
pub fn now_i64() -> i64 {
    i64::try_from(now()).unwrap_or(i64::MAX)
}

/// A clock a component reads: the system clock, or a manual one a test sets.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stands at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: u64) -> Self {
        Self(Some(Arc::new(AtomicU64::new(start))))
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::Relaxed),
            None => now(),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, seconds: u64) {
        if let Some(t) = &self.0 {
            t.fetch_add(seconds, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(30);
        assert_eq!(clock.now(), 1_030);
        let system = Clock::system();
        system.advance(1_000_000);
        assert!(system.now().abs_diff(now()) < 5);
    }
}
