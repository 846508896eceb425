//! How many registrations (RFC 7591) are admitted: one token bucket over all callers, so a
//! burst of anonymous registrations cannot fill the store (or the metrics) faster than the
//! configured rate.

/// A token bucket over all registrations: a burst of `per_minute`, refilled at that rate.
#[derive(Debug)]
pub struct RegistrationRate {
    per_minute: f64,
    bucket: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl RegistrationRate {
    /// `per_minute` registrations a minute (0: none at all).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute),
            bucket: std::sync::Mutex::new((f64::from(per_minute), std::time::Instant::now())),
        }
    }

    /// Takes one registration's place, or says how many seconds until there is one.
    pub(super) fn admit(&self) -> Result<(), u64> {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = &mut *bucket;
        let now = std::time::Instant::now();
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_minute / 60.0)
            .min(self.per_minute);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        if self.per_minute <= 0.0 {
            return Err(60);
        }
        Err(((1.0 - *tokens) * 60.0 / self.per_minute).ceil() as u64)
    }
}
