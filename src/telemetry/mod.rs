//! Logging: the tracing subscriber (text or JSON) and the one structured line every
//! decision writes. A leaf module: nothing here decides anything.

pub mod metrics;

use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::decision::{Answer, AuthzRequest};
use crate::token::VerifiedToken;

/// Keeps the background log writer alive; dropping it flushes every pending line.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber; `RUST_LOG` overrides the default `info` level.
///
/// Lines go to stderr through a background writer, so a decision never waits on a write
/// system call; the writer applies back-pressure rather than dropping lines when it falls
/// behind (decision lines are an audit trail).
pub fn init(format: LogFormat) -> LogGuard {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard(guard)
}

/// Whether decision log lines carry the `replay` record (`decision_log_replay`, on unless
/// configured off); one setting per process, like the log format.
static REPLAY_RECORD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the `replay` record of decision log lines on or off.
pub fn set_replay_record(on: bool) {
    REPLAY_RECORD.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Writes the decision log line (target `arbiter::decision`). Never the raw token: the
/// `replay` field carries what the decision used instead (method, path, the caller's
/// context and the verified claims), so `arbiter policies replay` can decide it again
/// against a candidate policy set. It is serialized only when the line is written, and left
/// out when [`set_replay_record`] turned it off.
pub fn log_decision(
    answer: &Answer,
    req: &AuthzRequest<'_>,
    token: Option<&VerifiedToken>,
    latency: Duration,
) {
    let v = &answer.verdict;
    tracing::info!(
        target: "arbiter::decision",
        decision_id = %answer.decision_id,
        principal = answer.principal.as_ref().map_or("Anonymous", |p| p.entity.as_str()),
        token = token.map(VerifiedToken::log_name).as_deref().unwrap_or(if req.token.is_empty() { "" } else { "rejected" }),
        action = %req.method,
        resource = v.route.as_deref().unwrap_or(""),
        path = %truncate(req.path, 256),
        decision = if v.allowed { "allow" } else { "deny" },
        reason = v.reason.as_str(),
        policies = ?v.policy_ids,
        errors = ?v.errors,
        policy_version = %answer.policy_version,
        latency_us = latency.as_micros() as u64,
        replay = REPLAY_RECORD
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| tracing::field::display(Replay { req, token })),
        "decision"
    );
}

/// The request as the decision saw it, as one JSON object.
struct Replay<'a> {
    req: &'a AuthzRequest<'a>,
    token: Option<&'a VerifiedToken>,
}

impl std::fmt::Display for Replay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[derive(serde::Serialize)]
        struct Record<'a> {
            method: &'a str,
            path: &'a str,
            context: &'a serde_json::Map<String, serde_json::Value>,
            claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
            token_given: bool,
        }
        let record = Record {
            method: self.req.method,
            path: self.req.path,
            context: self.req.context,
            claims: self.token.map(|t| &t.claims),
            token_given: !self.req.token.is_empty(),
        };
        let text = serde_json::to_string(&record).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
