//! Logging: the tracing subscriber (text or JSON) and the one structured line every
//! decision writes. A leaf module: nothing here decides anything.

use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::decision::{Answer, AuthzRequest};
use crate::token::VerifiedToken;

/// Installs the global subscriber; `RUST_LOG` overrides the default `info` level.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Writes the decision log line (target `arbiter::decision`). Never the raw token.
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
        "decision"
    );
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
