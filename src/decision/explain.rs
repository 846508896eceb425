//! Explain mode: how each policy of the slice fared on one request and, for those that did
//! not apply, the first part of their conditions that failed. Slow by design; only when a
//! caller asks.

use cedar_policy::{PolicyId, PolicySet};

use super::{action_applies, Explanation, Outcome, Prepared, Target, AUTHORIZER};
use crate::policy::PolicySnapshot;

pub(super) fn explain(
    snapshot: &PolicySnapshot,
    target: Target<'_>,
    method: &str,
    prepared: &Prepared,
    has: &dyn Fn(&str) -> bool,
) -> Vec<Explanation> {
    let mut out = Vec::new();
    let (ids, set): (Vec<&PolicyId>, &PolicySet) = match target.endpoint() {
        Some(endpoint) => (endpoint.policy_ids.iter().collect(), &endpoint.policies),
        None => {
            let mut ids: Vec<&PolicyId> = snapshot.meta.keys().collect();
            ids.sort();
            (ids, &snapshot.policies)
        }
    };
    for id in ids {
        let (Some(meta), Some(policy)) = (snapshot.meta.get(id), set.policy(id)) else {
            continue;
        };
        if !action_applies(meta.actions.as_deref(), method) {
            continue;
        }
        let single = match PolicySet::from_policies([policy.clone()]) {
            Ok(s) => s,
            Err(_) => continue,
        };
        let response =
            AUTHORIZER.is_authorized(&prepared.request, &single, prepared.entities.get());
        let error = response
            .diagnostics()
            .errors()
            .next()
            .map(ToString::to_string);
        let satisfied = response.diagnostics().reason().next().is_some();
        let missing_scopes = meta
            .scopes
            .as_ref()
            .and_then(|e| e.closest(has))
            .map(|(_, missing)| missing.into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let (scope_matched, failed_condition) = if satisfied {
            (true, None)
        } else {
            why_not(policy, prepared)
        };
        out.push(Explanation {
            policy_id: id.to_string(),
            effect: meta.effect,
            outcome: match (&error, satisfied) {
                (Some(_), _) => Outcome::Error,
                (None, true) => Outcome::Satisfied,
                (None, false) => Outcome::NotSatisfied,
            },
            file: meta.file.clone(),
            line: meta.line,
            scopes: meta.scopes.as_ref().map(|s| s.source().to_owned()),
            missing_scopes,
            error,
            scope_matched,
            failed_condition,
            outputs: meta
                .outputs
                .as_deref()
                .map(crate::policy::outputs::PolicyOutputs::annotations)
                .unwrap_or_default(),
        });
    }
    out
}

/// Why a policy did not apply: whether its scope matched, and if so the first part of its
/// conditions that failed (each `when` split at its top-level `&&`, each `unless` whole),
/// found by evaluating each part alone in the same request. Explain mode only.
fn why_not(policy: &cedar_policy::Policy, prepared: &Prepared) -> (bool, Option<String>) {
    let Ok(mut est) = policy.to_json() else {
        return (false, None);
    };
    let conditions = match est.get_mut("conditions") {
        Some(serde_json::Value::Array(list)) => std::mem::take(list),
        _ => Vec::new(),
    };
    if let Some(annotations) = est.get_mut("annotations") {
        *annotations = serde_json::Value::Object(serde_json::Map::new());
    }
    let holds = |est: &serde_json::Value| -> Option<bool> {
        let p = cedar_policy::Policy::from_json(None, est.clone()).ok()?;
        let set = PolicySet::from_policies([p]).ok()?;
        let r = AUTHORIZER.is_authorized(&prepared.request, &set, prepared.entities.get());
        if r.diagnostics().errors().next().is_some() {
            return Some(false);
        }
        let held = r.diagnostics().reason().next().is_some();
        Some(held)
    };
    // Always "permit" for the probes, so a forbid's parts are judged the same way.
    est["effect"] = serde_json::Value::from("permit");
    if holds(&est) != Some(true) {
        return (false, None);
    }
    for condition in conditions {
        let kind = condition
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("when")
            .to_owned();
        let Some(body) = condition.get("body") else {
            continue;
        };
        let parts = if kind == "when" {
            let mut parts = Vec::new();
            conjuncts(body, &mut parts);
            parts
        } else {
            vec![body.clone()]
        };
        for part in parts {
            let mut probe = est.clone();
            probe["conditions"] = serde_json::json!([{ "kind": kind, "body": part }]);
            if holds(&probe) == Some(false) {
                let text = cedar_policy::Policy::from_json(None, probe)
                    .map(|p| condition_text(&p.to_string(), &kind))
                    .unwrap_or_default();
                let verdict = if kind == "when" { "was false" } else { "held" };
                return (true, Some(format!("{kind} {{ {text} }} {verdict}")));
            }
        }
    }
    (true, None)
}

/// The top-level operands of `&&` in an EST expression, in order.
fn conjuncts(expr: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match expr.get("&&") {
        Some(and) => {
            if let Some(l) = and.get("left") {
                conjuncts(l, out);
            }
            if let Some(r) = and.get("right") {
                conjuncts(r, out);
            }
        }
        None => out.push(expr.clone()),
    }
}

/// The expression of a printed one-condition policy: what follows `when {` (or `unless {`).
fn condition_text(policy: &str, kind: &str) -> String {
    let marker = format!("{kind} {{");
    match policy.rfind(&marker) {
        Some(at) => policy[at + marker.len()..]
            .trim()
            .trim_end_matches(';')
            .trim_end()
            .trim_end_matches('}')
            .trim()
            .to_owned(),
        None => String::new(),
    }
}
