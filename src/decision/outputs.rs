//! The outputs of one decision: the determining policies' annotations (see
//! [`crate::policy::outputs`]) filled from what the decision verified, merged in a fixed
//! order. A value that cannot be filled, or is not a valid header value, makes the decision a
//! deny: a gateway never forwards a request without the headers its policies promised.

use std::collections::BTreeMap;

use cedar_policy::{Effect, PolicyId};

use crate::policy::outputs::Verified;
use crate::policy::{Endpoint, PolicySnapshot};

/// What the determining policies ask the gateway to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    /// Headers for the upstream, by lower-case name, on an allow. They replace any copy the
    /// client sent.
    pub headers: Vec<(String, String)>,
    /// Headers the upstream must not receive from the client: every header the endpoint's
    /// policies can set that this decision did not.
    pub remove_headers: Vec<String>,
    /// Envoy `dynamic_metadata` entries, by key.
    pub metadata: Vec<(String, String)>,
    /// The HTTP status to answer a deny with (the gateway's own default when `None`).
    pub deny_status: Option<u16>,
    /// The body to answer a deny with.
    pub deny_message: Option<String>,
}

impl Outputs {
    /// Whether there is nothing for a gateway to do.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
            && self.remove_headers.is_empty()
            && self.metadata.is_empty()
            && self.deny_status.is_none()
            && self.deny_message.is_none()
    }
}

/// Fills and merges the outputs of the determining policies of a decision that came out
/// `allowed` (permits determine) or not (forbids do).
pub(crate) fn render(
    snapshot: &PolicySnapshot,
    endpoint: Option<&Endpoint>,
    determining: &[String],
    allowed: bool,
    verified: &Verified<'_>,
) -> Result<Outputs, String> {
    let effect = if allowed {
        Effect::Permit
    } else {
        Effect::Forbid
    };
    let mut headers: BTreeMap<&str, (String, &str)> = BTreeMap::new();
    let mut metadata: BTreeMap<&str, (String, &str)> = BTreeMap::new();
    let mut out = Outputs::default();
    let mut status_from: Option<&str> = None;
    for id in determining {
        let Some(meta) = snapshot.meta.get(&PolicyId::new(id)) else {
            continue;
        };
        let Some(o) = meta.outputs.as_deref().filter(|_| meta.effect == effect) else {
            continue;
        };
        // The label is only written out for an error: a decision that fills its outputs
        // allocates nothing for it.
        let fill = |what: &dyn Fn() -> String, t: &crate::policy::outputs::Template| {
            t.render(verified)
                .map_err(|e| format!("output {} of `{id}`: {e}", what()))
        };
        for (name, t) in &o.headers {
            let Some(value) = fill(&|| format!("header `{name}`"), t)? else {
                continue;
            };
            if axum::http::HeaderValue::from_str(&value).is_err() {
                return Err(format!(
                    "output header `{name}` of `{id}`: the value is not a valid header value"
                ));
            }
            merge(&mut headers, name, value, id, "header")?;
        }
        for (key, t) in &o.metadata {
            let Some(value) = fill(&|| format!("metadata `{key}`"), t)? else {
                continue;
            };
            merge(&mut metadata, key, value, id, "metadata")?;
        }
        if let Some(s) = o.deny_status {
            match (out.deny_status, status_from) {
                (Some(old), Some(other)) if old != s => {
                    return Err(format!(
                        "`{id}` and `{other}` give the deny different statuses"
                    ));
                }
                _ => {
                    out.deny_status = Some(s);
                    status_from = Some(id);
                }
            }
        }
        if let Some(t) = &o.deny_message {
            let Some(message) = fill(&|| "@deny_message".to_owned(), t)? else {
                continue;
            };
            if out.deny_message.as_ref().is_some_and(|m| *m != message) {
                return Err(format!(
                    "`{id}` gives the deny a message other policies do not"
                ));
            }
            out.deny_message = Some(message);
        }
    }
    out.headers = headers
        .into_iter()
        .map(|(k, (v, _))| (k.to_owned(), v))
        .collect();
    out.metadata = metadata
        .into_iter()
        .map(|(k, (v, _))| (k.to_owned(), v))
        .collect();
    if allowed {
        if let Some(e) = endpoint {
            out.remove_headers = e
                .output_headers
                .iter()
                .filter(|h| !out.headers.iter().any(|(n, _)| n == *h))
                .cloned()
                .collect();
        }
    }
    Ok(out)
}

/// Adds one output; two determining policies with different values for it are an error (the
/// loader refuses such sets for endpoints; this catches decisions on other resources).
fn merge<'a>(
    into: &mut BTreeMap<&'a str, (String, &'a str)>,
    name: &'a str,
    value: String,
    id: &'a str,
    what: &str,
) -> Result<(), String> {
    match into.get(name) {
        Some((old, other)) if *old != value => Err(format!(
            "`{id}` and `{other}` give {what} `{name}` different values"
        )),
        Some(_) => Ok(()),
        None => {
            into.insert(name, (value, id));
            Ok(())
        }
    }
}
