//! The outputs of one decision: the determining policies' annotations (see
//! [`crate::policy::outputs`]) filled from what the decision verified, merged by name. A
//! value that cannot be filled, or is not a valid header value, makes the decision a deny: a
//! gateway never forwards a request without the headers its policies promised.

use std::collections::BTreeMap;

use cedar_policy::{Effect, PolicyId};
use serde::Serialize;

use crate::policy::outputs::{Template, Verified};
use crate::policy::PolicySnapshot;

/// What the determining policies ask the gateway to do (serialized as AuthZEN's
/// `context.outputs`, empty parts left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outputs {
    /// Headers for the upstream, by lower-case name, on an allow. They replace any copy the
    /// client sent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Headers the upstream must not receive from the client: every header some policy of
    /// the set can set that this decision did not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove_headers: Vec<String>,
    /// Envoy `dynamic_metadata` entries, by key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The HTTP status to answer a deny with (the gateway's own default when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_status: Option<u16>,
    /// The body to answer a deny with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_message: Option<String>,
}

impl Outputs {
    /// Whether there is nothing for a gateway to do.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Fills and merges the outputs of the determining policies of a decision that came out
/// `allowed` (permits determine) or not (forbids do).
pub(crate) fn render(
    snapshot: &PolicySnapshot,
    determining: &[String],
    allowed: bool,
    verified: &Verified<'_>,
) -> Result<Outputs, String> {
    let effect = if allowed {
        Effect::Permit
    } else {
        Effect::Forbid
    };
    let mut out = Outputs::default();
    // Which policy gave each output, for the error when another gives it otherwise (the
    // loader refuses such sets for endpoints; this catches decisions on other resources).
    let mut from: BTreeMap<String, &str> = BTreeMap::new();
    for id in determining {
        let Some(meta) = snapshot.meta.get(&PolicyId::new(id)) else {
            continue;
        };
        let Some(o) = meta.outputs.as_deref().filter(|_| meta.effect == effect) else {
            continue;
        };
        let fill = |t: &Template, what: &str| {
            t.render(verified)
                .map_err(|e| format!("output {what} of `{id}`: {e}"))
        };
        for (name, t) in &o.headers {
            let what = format!("header `{name}`");
            let Some(value) = fill(t, &what)? else {
                continue;
            };
            if axum::http::HeaderValue::from_str(&value).is_err() {
                return Err(format!(
                    "output {what} of `{id}`: the value is not a valid header value"
                ));
            }
            merge(&mut out.headers, name, value, what, id, &mut from)?;
        }
        for (key, t) in &o.metadata {
            let what = format!("metadata `{key}`");
            let Some(value) = fill(t, &what)? else {
                continue;
            };
            merge(&mut out.metadata, key, value, what, id, &mut from)?;
        }
        if let Some(s) = o.deny_status {
            merge_one(&mut out.deny_status, s, "@deny_status", id, &mut from)?;
        }
        if let Some(t) = &o.deny_message {
            if let Some(message) = fill(t, "@deny_message")? {
                merge_one(
                    &mut out.deny_message,
                    message,
                    "@deny_message",
                    id,
                    &mut from,
                )?;
            }
        }
    }
    Ok(out)
}

/// Every header some policy of the set can set, except those this decision sets: a client's
/// own copies are dropped on every forwarded request, not only where a policy sets them.
pub(super) fn settable_headers_not_set(
    snapshot: &PolicySnapshot,
    set: &BTreeMap<String, String>,
) -> Vec<String> {
    snapshot
        .output_headers
        .iter()
        .filter(|h| !set.contains_key(*h))
        .cloned()
        .collect()
}

/// Adds one named output.
fn merge<'a>(
    into: &mut BTreeMap<String, String>,
    name: &str,
    value: String,
    what: String,
    id: &'a str,
    from: &mut BTreeMap<String, &'a str>,
) -> Result<(), String> {
    match into.get(name) {
        Some(old) if *old != value => Err(conflict(&what, id, from)),
        Some(_) => Ok(()),
        None => {
            into.insert(name.to_owned(), value);
            from.insert(what, id);
            Ok(())
        }
    }
}

/// Sets a single-valued output.
fn merge_one<'a, T: PartialEq>(
    into: &mut Option<T>,
    value: T,
    what: &str,
    id: &'a str,
    from: &mut BTreeMap<String, &'a str>,
) -> Result<(), String> {
    match into {
        Some(old) if *old != value => Err(conflict(what, id, from)),
        Some(_) => Ok(()),
        None => {
            *into = Some(value);
            from.insert(what.to_owned(), id);
            Ok(())
        }
    }
}

fn conflict(what: &str, id: &str, from: &BTreeMap<String, &str>) -> String {
    let other = from.get(what).copied().unwrap_or("another policy");
    format!("`{id}` and `{other}` give {what} different values")
}
