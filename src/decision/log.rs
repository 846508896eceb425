//! The decision log: one structured line per decision (target `arbiter::decision`), never a
//! raw token, and the replay record it carries — written and read by the same type, so
//! `arbiter policies replay` decides exactly what the line says the decision saw.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Answer, AuthzRequest, EntityRef, Subject};
use crate::telemetry::printable;
use crate::token::VerifiedToken;

/// Whether decision log lines carry the `replay` record (`decision_log_replay`, on unless
/// configured off); one setting per process, like the log format.
static REPLAY_RECORD: AtomicBool = AtomicBool::new(true);

/// Turns the `replay` record of decision log lines on or off.
pub fn set_replay_record(on: bool) {
    REPLAY_RECORD.store(on, Ordering::Relaxed);
}

/// What a decision used, as the `replay` field of its log line: the request (method or
/// action, path, an asserted subject or named resource), the caller's context and the
/// verified claims — never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayRecord<'a> {
    /// HTTP method or action.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// Request path (empty for a named resource).
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    /// A subject the caller asserted (AuthZEN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<ReplayEntity>,
    /// A resource the caller named (AuthZEN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ReplayEntity>,
    /// The caller's context.
    pub context: Cow<'a, Map<String, Value>>,
    /// The verified claims, when a token was accepted.
    pub claims: Option<Cow<'a, Map<String, Value>>>,
    /// Whether a token was sent at all.
    pub token_given: bool,
}

/// An entity of a [`ReplayRecord`]: `Type::"id"` and the attributes the caller gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayEntity {
    /// `Type::"id"` as Cedar writes it.
    pub uid: String,
    /// The caller's attributes.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// For a client the authorization server authenticated: its issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl ReplayEntity {
    fn of(e: &EntityRef) -> Self {
        Self {
            uid: e.uid.to_string(),
            properties: e.properties.clone(),
            issuer: None,
        }
    }

    fn of_subject(s: Subject<'_>) -> Self {
        match s {
            Subject::Asserted(e) => Self::of(e),
            Subject::Client { issuer, client } => Self {
                issuer: Some(issuer.to_owned()),
                ..Self::of(client)
            },
        }
    }

    /// The entity again, or why it cannot be read.
    pub fn entity(&self) -> Result<EntityRef, String> {
        Ok(EntityRef {
            uid: self
                .uid
                .parse()
                .map_err(|e| format!("`{}`: {e}", self.uid))?,
            properties: self.properties.clone(),
        })
    }
}

impl<'a> ReplayRecord<'a> {
    /// The record of a request as the decision saw it: the path without its query string
    /// (decisions never read it, and it can carry a token: `access_token=…`).
    pub fn of(req: &AuthzRequest<'a>, token: Option<&'a VerifiedToken>) -> Self {
        Self {
            method: Cow::Borrowed(req.method),
            path: Cow::Borrowed(without_query(req.path)),
            subject: req.subject.map(ReplayEntity::of_subject),
            resource: req.resource.map(ReplayEntity::of),
            context: Cow::Borrowed(req.context),
            claims: token.map(|t| Cow::Borrowed(&t.claims)),
            token_given: !req.token.is_empty(),
        }
    }

    /// Reads the `replay` field of a log line.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Writes the decision log line. It is serialized only when the line is written, and the
/// `replay` record is left out when [`set_replay_record`] turned it off.
pub fn log_decision(
    answer: &Answer,
    req: &AuthzRequest<'_>,
    token: Option<&VerifiedToken>,
    latency: Duration,
) {
    let v = &answer.verdict;
    let resource = match (&v.route, req.resource) {
        (Some(route), _) => Cow::Borrowed(route.as_str()),
        (None, Some(r)) => Cow::Owned(r.uid.to_string()),
        (None, None) => Cow::Borrowed(""),
    };
    tracing::info!(
        target: "arbiter::decision",
        decision_id = %answer.decision_id,
        principal = %printable(truncate(
            answer.principal.as_ref().map_or("Anonymous", |p| p.entity.as_str()),
            256
        )),
        token = token.map(VerifiedToken::log_name).as_deref().unwrap_or(if req.token.is_empty() { "" } else { "rejected" }),
        action = %loggable(req.method, 64),
        resource = %loggable(&resource, 256),
        path = %loggable_path(req.path),
        decision = if v.allowed { "allow" } else { "deny" },
        reason = v.reason.as_str(),
        policies = ?v.policy_ids,
        errors = ?v.errors,
        policy_version = %answer.policy_version,
        policy_revision = %answer.policy_revision,
        latency_us = latency.as_micros() as u64,
        replay = REPLAY_RECORD
            .load(Ordering::Relaxed)
            .then(|| tracing::field::display(Replay(ReplayRecord::of(req, token)))),
        "decision"
    );
}

/// Serializes the record as JSON only when the line is written.
struct Replay<'a>(ReplayRecord<'a>);

impl std::fmt::Display for Replay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(&self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// The path a decision read: without `?query` or `#fragment`.
fn without_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or_default()
}

/// A caller-chosen value as a log field: at most `max` bytes, control characters escaped.
pub(crate) fn loggable(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    printable(truncate(s, max))
}

/// A request path as a log field: without its query (which may carry a token), at most 256
/// bytes, control characters escaped.
pub(crate) fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    loggable(without_query(path), 256)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_fields_hold_no_query_and_no_control_characters() {
        assert_eq!(without_query("/item/7?access_token=eyJ.x.y"), "/item/7");
        assert_eq!(without_query("/item/7#frag"), "/item/7");
        assert_eq!(printable("GET"), "GET");
        assert_eq!(printable("GET\nINFO forged"), "GET\\u{a}INFO forged");
        let Value::Object(context) = json!({}) else {
            unreachable!()
        };
        let req = AuthzRequest {
            token: "",
            subject: None,
            method: "GET",
            path: "/item/7?access_token=secret",
            resource: None,
            context: &context,
            explain: false,
            client_cert_sha256: "",
        };
        assert_eq!(ReplayRecord::of(&req, None).path, "/item/7");
    }

    #[test]
    fn the_record_reads_back_what_it_wrote() {
        let Value::Object(context) = json!({"ip": "192.0.2.1", "n": 3}) else {
            unreachable!()
        };
        let resource = EntityRef {
            uid: r#"Todo::"t1""#.parse().unwrap(),
            properties: json!({"ownerID": "x"}).as_object().unwrap().clone(),
        };
        let req = AuthzRequest {
            token: "",
            subject: None,
            method: "can_read_todos",
            path: "",
            resource: Some(&resource),
            context: &context,
            explain: false,
            client_cert_sha256: "",
        };
        let text = serde_json::to_string(&ReplayRecord::of(&req, None)).unwrap();
        let back = ReplayRecord::parse(&text).unwrap();
        assert_eq!(back.method, "can_read_todos");
        assert_eq!(*back.context, context);
        assert!(!back.token_given && back.claims.is_none());
        let r = back.resource.unwrap().entity().unwrap();
        assert_eq!((r.uid, r.properties), (resource.uid, resource.properties));
    }
}
