//! The rollout report: the disagreements a shadow candidate met on live traffic (read back
//! from the decision log), grouped by method and route, and joined with the proof of where
//! the two sets differ (`compare`): every allow/deny disagreement observed must fall where
//! the proof says the sets differ, and the proof names the differences traffic has not hit.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::compare::RouteComparison;

/// The log message of a disagreement (see `shadow`).
pub const DISAGREEMENT: &str = "shadow disagreement";

/// One disagreement read from a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// The live decision's id.
    pub decision_id: String,
    /// Upper-case method.
    pub method: String,
    /// The route template, or `(none)`.
    pub route: String,
    /// `allow` or `deny:reason`, as the live set answered.
    pub live: String,
    /// As the candidate answered.
    pub candidate: String,
}

impl Disagreement {
    /// The disagreement a JSON log line records, if it is one.
    pub fn from_log_line(line: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(line).ok()?;
        let field = |name: &str| {
            v.get(name)
                .or_else(|| v.get("fields").and_then(|f| f.get(name)))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if field("message")? != DISAGREEMENT {
            return None;
        }
        Some(Self {
            decision_id: field("decision_id")?,
            method: field("method")?.to_ascii_uppercase(),
            route: field("route")?,
            live: field("live")?,
            candidate: field("candidate")?,
        })
    }
}

/// Disagreements on one method and route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteDisagreements {
    /// `GET`, …
    pub method: String,
    /// The route template.
    pub route: String,
    /// How many, by `live -> candidate` answers.
    pub answers: BTreeMap<String, u64>,
    /// All of them.
    pub count: u64,
    /// A few decision ids to look up (`arbiter policies replay`).
    pub samples: Vec<String>,
    /// Where the proof stands on it: `explained` (the proof finds the sets differ there in
    /// that direction), `reason-only` (both deny, for other reasons: not what the proof
    /// compares), `UNEXPLAINED` (the proof says they decide alike), or `not-proved` (no
    /// proof was asked for).
    pub proof: &'static str,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    /// Disagreements observed, by method and route.
    pub observed: Vec<RouteDisagreements>,
    /// Routes the proof says differ that no observed disagreement hit yet.
    pub not_hit_yet: Vec<RouteComparison>,
    /// Every observed disagreement is explained by the proof (or reason-only).
    pub consistent: bool,
}

/// Groups `seen` by method and route (keeping `samples` ids each), and joins them with
/// `proof` (the candidate compared with the live set) when given.
pub fn report(
    seen: impl IntoIterator<Item = Disagreement>,
    proof: Option<&[RouteComparison]>,
    samples: usize,
) -> RolloutReport {
    let mut groups: BTreeMap<(String, String), RouteDisagreements> = BTreeMap::new();
    for d in seen {
        let g = groups
            .entry((d.method.clone(), d.route.clone()))
            .or_insert_with(|| RouteDisagreements {
                method: d.method.clone(),
                route: d.route.clone(),
                answers: BTreeMap::new(),
                count: 0,
                samples: Vec::new(),
                proof: "not-proved",
            });
        g.count += 1;
        *g.answers
            .entry(format!("{} -> {}", d.live, d.candidate))
            .or_default() += 1;
        if g.samples.len() < samples {
            g.samples.push(d.decision_id);
        }
    }
    let mut observed: Vec<RouteDisagreements> = groups.into_values().collect();
    let mut not_hit_yet = Vec::new();
    if let Some(proof) = proof {
        for g in &mut observed {
            let differs = proof
                .iter()
                .find(|r| r.method == g.method && r.route == g.route);
            let explained = g.answers.keys().all(|answers| {
                let (live, candidate) = answers.split_once(" -> ").unwrap_or((answers, ""));
                match (live == "allow", candidate == "allow") {
                    (true, false) => differs.is_some_and(|r| r.only_old_allows.is_some()),
                    (false, true) => differs.is_some_and(|r| r.only_new_allows.is_some()),
                    _ => true,
                }
            });
            let reason_only = g
                .answers
                .keys()
                .all(|a| !a.starts_with("allow") && !a.ends_with("-> allow"));
            g.proof = match (reason_only, explained) {
                (true, _) => "reason-only",
                (false, true) => "explained",
                (false, false) => "UNEXPLAINED",
            };
        }
        not_hit_yet = proof
            .iter()
            .filter(|r| r.relation != "equivalent")
            .filter(|r| {
                !observed
                    .iter()
                    .any(|g| g.method == r.method && g.route == r.route)
            })
            .cloned()
            .collect();
    }
    RolloutReport {
        consistent: observed.iter().all(|g| g.proof != "UNEXPLAINED"),
        observed,
        not_hit_yet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, method: &str, route: &str, live: &str, candidate: &str) -> Disagreement {
        Disagreement {
            decision_id: id.into(),
            method: method.into(),
            route: route.into(),
            live: live.into(),
            candidate: candidate.into(),
        }
    }

    #[test]
    fn reads_its_own_log_line() {
        let line = r#"{"timestamp":"t","level":"INFO","message":"shadow disagreement","decision_id":"d1","method":"get","path":"/item/1","route":"/item/{id}","live":"allow","candidate":"deny:not_permitted","target":"arbiter::shadow"}"#;
        assert_eq!(
            Disagreement::from_log_line(line),
            Some(seen(
                "d1",
                "GET",
                "/item/{id}",
                "allow",
                "deny:not_permitted"
            ))
        );
        assert_eq!(
            Disagreement::from_log_line(r#"{"message":"decision"}"#),
            None
        );
    }

    #[test]
    fn groups_and_flags_what_the_proof_does_not_explain() {
        let observed = vec![
            seen("a", "GET", "/item/{id}", "allow", "deny:not_permitted"),
            seen("b", "GET", "/item/{id}", "allow", "deny:not_permitted"),
            seen("c", "GET", "/health", "allow", "deny:not_permitted"),
            seen(
                "d",
                "POST",
                "/items",
                "deny:insufficient_scope",
                "deny:not_permitted",
            ),
        ];
        let r = report(observed, Some(&[]), 1);
        let got: Vec<(&str, u64, &str, usize)> = r
            .observed
            .iter()
            .map(|g| (g.route.as_str(), g.count, g.proof, g.samples.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/health", 1, "UNEXPLAINED", 1),
                ("/item/{id}", 2, "UNEXPLAINED", 1),
                ("/items", 1, "reason-only", 1),
            ]
        );
        assert!(!r.consistent);
    }
}
