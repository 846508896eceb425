//! Replay before rollout: decisions from the decision log (JSON lines) decided again
//! against a candidate policy directory, reporting every decision that would change. The
//! log never holds a raw token; each line's `replay` field holds what the decision used
//! (method, path, the caller's context and the verified claims).

use serde_json::{Map, Value};

use crate::decision::log::{ReplayEntity, ReplayRecord};
use crate::decision::{verdict_for_verified, AuthzRequest, Subject};
use crate::policy::PolicySnapshot;
use crate::token::VerifiedToken;

/// One decision read from the log.
#[derive(Debug, Clone)]
pub struct LoggedDecision {
    /// `decision_id`.
    pub decision_id: String,
    /// The principal it named.
    pub principal: String,
    /// HTTP method, or the action of a named resource.
    pub method: String,
    /// Request path.
    pub path: String,
    /// The subject the caller asserted (AuthZEN).
    pub subject: Option<crate::decision::log::ReplayEntity>,
    /// The resource the caller named (AuthZEN).
    pub resource: Option<crate::decision::log::ReplayEntity>,
    /// The caller's context.
    pub context: Map<String, Value>,
    /// The verified claims, if a token was accepted.
    pub claims: Option<Map<String, Value>>,
    /// Whether a token was sent at all.
    pub token_given: bool,
    /// `allow` or `deny`.
    pub decision: String,
    /// The logged reason.
    pub reason: String,
    /// The determining policies.
    pub policies: Vec<String>,
    /// The policy version that decided.
    pub policy_version: String,
}

/// A decision that comes out differently.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// The logged decision's id.
    pub decision_id: String,
    /// `METHOD /path`.
    pub request: String,
    /// The principal.
    pub principal: String,
    /// Logged: decision, reason, policies.
    pub before: Outcome,
    /// With the candidate.
    pub after: Outcome,
    /// Whether allow/deny flipped (otherwise only the reason or policies changed).
    pub decision_changed: bool,
}

/// One side of a [`Change`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// `allow` or `deny`.
    pub decision: String,
    /// The reason.
    pub reason: String,
    /// The determining policies, sorted.
    pub policies: Vec<String>,
}

/// What a replay found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// Decision lines read.
    pub decisions: usize,
    /// Decided again.
    pub replayed: usize,
    /// Refused before any policy (a rejected token): the candidate cannot change them.
    pub not_replayable: usize,
    /// Lines that were not decisions, or decisions without a `replay` field (older logs, or
    /// a server with `decision_log_replay = false`).
    pub skipped_lines: usize,
    /// Decisions whose allow/deny flips.
    pub decision_changes: usize,
    /// Every decision that comes out differently (decision, reason or policies).
    pub changes: Vec<Change>,
}

/// Reads the decisions of a JSON-lines log.
pub fn parse_log(text: &str) -> (Vec<LoggedDecision>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(line) {
            Some(d) => out.push(d),
            None => skipped += 1,
        }
    }
    (out, skipped)
}

fn parse_line(line: &str) -> Option<LoggedDecision> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v.get("message").and_then(Value::as_str) != Some("decision") {
        return None;
    }
    let replay = ReplayRecord::parse(v.get("replay")?.as_str()?).ok()?;
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let policies = match v.get("policies") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => serde_json::from_str::<Vec<String>>(s).unwrap_or_default(),
        _ => Vec::new(),
    };
    Some(LoggedDecision {
        decision_id: text(&v, "decision_id"),
        principal: text(&v, "principal"),
        method: replay.method.into_owned(),
        path: replay.path.into_owned(),
        subject: replay.subject,
        resource: replay.resource,
        context: replay.context.into_owned(),
        claims: replay.claims.map(std::borrow::Cow::into_owned),
        token_given: replay.token_given,
        decision: text(&v, "decision"),
        reason: text(&v, "reason"),
        policies,
        policy_version: text(&v, "policy_version"),
    })
}

/// Decides one logged decision again against `snapshot` (with the explanation of every
/// policy of the slice when `explain`); `None` when it cannot be (a rejected token, an entity
/// that no longer reads).
pub fn decide_again(
    snapshot: &PolicySnapshot,
    d: &LoggedDecision,
    explain: bool,
) -> Option<crate::decision::Verdict> {
    let token = match (&d.claims, d.token_given) {
        (Some(claims), _) => Some(VerifiedToken::from_verified_claims(claims.clone()).ok()?),
        (None, true) => return None,
        (None, false) => None,
    };
    let subject = d
        .subject
        .as_ref()
        .map(ReplayEntity::entity)
        .transpose()
        .ok()?;
    let resource = d
        .resource
        .as_ref()
        .map(ReplayEntity::entity)
        .transpose()
        .ok()?;
    Some(verdict_for_verified(
        snapshot,
        &AuthzRequest {
            subject: subject.as_ref().map(|s| {
                match d.subject.as_ref().and_then(|r| r.issuer.as_deref()) {
                    Some(issuer) => Subject::Client { issuer, client: s },
                    None => Subject::Asserted(s),
                }
            }),
            resource: resource.as_ref(),
            token: "",
            method: &d.method,
            path: &d.path,
            context: &d.context,
            explain,
            client_cert_sha256: "",
        },
        token.as_ref(),
    ))
}

/// Decides every logged decision again against `candidate`.
pub fn replay(
    candidate: &PolicySnapshot,
    decisions: &[LoggedDecision],
    skipped: usize,
) -> ReplayReport {
    let mut report = ReplayReport {
        decisions: decisions.len(),
        skipped_lines: skipped,
        ..ReplayReport::default()
    };
    for d in decisions {
        let Some(verdict) = decide_again(candidate, d, false) else {
            report.not_replayable += 1;
            continue;
        };
        report.replayed += 1;
        let mut before_policies = d.policies.clone();
        before_policies.sort();
        let mut after_policies = verdict.policy_ids.clone();
        after_policies.sort();
        let before = Outcome {
            decision: d.decision.clone(),
            reason: d.reason.clone(),
            policies: before_policies,
        };
        let after = Outcome {
            decision: if verdict.allowed { "allow" } else { "deny" }.into(),
            reason: verdict.reason.as_str().into(),
            policies: after_policies,
        };
        if before != after {
            let decision_changed = before.decision != after.decision;
            report.decision_changes += usize::from(decision_changed);
            report.changes.push(Change {
                decision_id: d.decision_id.clone(),
                request: format!("{} {}", d.method, d.path),
                principal: d.principal.clone(),
                before,
                after,
                decision_changed,
            });
        }
    }
    report
}
