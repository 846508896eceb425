//! Formal analysis of one policy set (`arbiter policies analyze`): which routes no request
//! can ever reach (with a request their permits were written for, and the forbids that deny
//! it), whether the token endpoint can ever issue a scope, and, per policy, whether it can
//! ever apply, whether it can error, and whether it changes any decision at all (a permit
//! others make redundant, a forbid that never fires).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cedar_policy::{Effect, PolicyId, PolicySet};
use cedar_policy_symcc::CompiledPolicySet;

use super::cases::Expectation;
use super::counterexample::Counterexample;
use super::prover::{
    concrete_decision, pinned_route, restrict, route_slice, AnalysisError, Prover,
};
use crate::policy::{Endpoint, PolicySnapshot, ENDPOINT_TYPE, SCOPE_TYPE};

/// One route and method some permit is written for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteFinding {
    /// `GET`, `POST`, …
    pub method: String,
    /// The route template.
    pub route: String,
    /// Whether some request can be allowed (for some principal type).
    pub reachable: bool,
    /// The permits written for it, `file:line`.
    pub permits: Vec<String>,
    /// For an unreachable route: a request its permits allow, and what denies it.
    pub shadowed: Option<Shadowed>,
}

/// Why a route's permits never take effect.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shadowed {
    /// The policies that deny the request (`file:line`); empty when the permits themselves
    /// can never apply.
    pub by: Vec<String>,
    /// A request the route's permits allow, which the set denies.
    pub counterexample: Option<Counterexample>,
}

/// What is wrong with one policy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyFinding {
    /// The policy's id.
    pub policy: String,
    /// `file:line`.
    pub at: String,
    /// `never-applies`, `may-error`, `redundant-permit` or `dead-forbid`.
    pub finding: &'static str,
    /// What it means, in a sentence.
    pub detail: String,
    /// For `may-error`: a request on which it errors.
    pub counterexample: Option<Counterexample>,
}

/// What the analysis found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Analysis {
    /// Every route × method a permit names, reachable or not.
    pub routes: Vec<RouteFinding>,
    /// Whether the token endpoint can ever issue a scope (`IssueScope`).
    pub issue_scope_reachable: Option<bool>,
    /// Findings on single policies, in file order.
    pub policies: Vec<PolicyFinding>,
    /// Solver queries run.
    pub queries: usize,
}

impl Analysis {
    /// The routes no request can reach.
    pub fn unreachable(&self) -> impl Iterator<Item = &RouteFinding> {
        self.routes.iter().filter(|r| !r.reachable)
    }

    /// Whether nothing was found.
    pub fn clean(&self) -> bool {
        self.unreachable().next().is_none()
            && self.issue_scope_reachable != Some(false)
            && self.policies.is_empty()
    }
}

/// Analyzes a loaded policy set.
pub async fn analyze(snapshot: &PolicySnapshot) -> Result<Analysis, AnalysisError> {
    let mut prover = Prover::new(&snapshot.schema)?;
    let mut analysis = Analysis::default();
    for endpoint in snapshot.routes.endpoints() {
        let slice = route_slice(snapshot, &endpoint.template)?;
        for (method, permits) in methods_of(snapshot, endpoint) {
            let envs = prover.envs(ENDPOINT_TYPE, Some(&method));
            let mut reachable = false;
            for env in &envs {
                let compiled = prover.compile_set(&slice, env)?;
                if prover.allowed_request(&compiled).await?.is_some() {
                    reachable = true;
                    break;
                }
            }
            let shadowed = if reachable {
                None
            } else {
                Some(shadow(&mut prover, snapshot, endpoint, &method, &slice).await?)
            };
            analysis.routes.push(RouteFinding {
                method,
                route: endpoint.template.clone(),
                reachable,
                permits: permits.iter().map(|id| at(snapshot, id)).collect(),
                shadowed,
            });
        }
    }
    let mut issue = None;
    for env in prover.envs(SCOPE_TYPE, Some("IssueScope")) {
        let compiled = prover.compile_set(&snapshot.policies, &env)?;
        let allowed = prover.allowed_request(&compiled).await?.is_some();
        issue = Some(issue.unwrap_or(false) || allowed);
    }
    analysis.issue_scope_reachable = issue;
    analysis.policies = policy_findings(&mut prover, snapshot).await?;
    analysis.queries = prover.queries;
    Ok(analysis)
}

/// A request the permits of an unreachable route allow on their own, and what denies it.
async fn shadow(
    prover: &mut Prover<'_>,
    snapshot: &PolicySnapshot,
    endpoint: &Endpoint,
    method: &str,
    slice: &PolicySet,
) -> Result<Shadowed, AnalysisError> {
    let mut permits = PolicySet::new();
    let ids = methods_of(snapshot, endpoint)
        .into_iter()
        .filter(|(m, _)| m == method)
        .flat_map(|(_, ids)| ids);
    for policy in ids.filter_map(|id| snapshot.policies.policy(&id)) {
        permits
            .add(policy.clone())
            .map_err(|e| AnalysisError::Compile(endpoint.template.clone(), e.to_string()))?;
    }
    let uid = &endpoint.uid;
    let permits = restrict(
        &permits,
        "arbiter-analysis-route",
        &format!("resource == {uid}"),
        &endpoint.template,
    )?;
    for env in prover.envs(ENDPOINT_TYPE, Some(method)) {
        let compiled = prover.compile_set(&permits, &env)?;
        let Some(example) = prover.allowed_request(&compiled).await? else {
            continue;
        };
        let (_, by) = concrete_decision(slice, &example);
        let name = format!("{method} {} is unreachable", endpoint.template);
        return Ok(Shadowed {
            by: by.iter().map(|id| at(snapshot, id)).collect(),
            counterexample: Some(Counterexample::new(
                &example,
                snapshot,
                false,
                name,
                Expectation::Deny,
            )),
        });
    }
    Ok(Shadowed {
        by: Vec::new(),
        counterexample: None,
    })
}

/// Per policy, over the request types its scope can match: whether it ever applies, whether
/// it can error, and whether removing it would change any decision of the set Arbiter
/// evaluates where it applies (its route's policies, or all of them).
async fn policy_findings(
    prover: &mut Prover<'_>,
    snapshot: &PolicySnapshot,
) -> Result<Vec<PolicyFinding>, AnalysisError> {
    let mut ordered: Vec<_> = snapshot.meta.iter().collect();
    ordered.sort_by(|a, b| (&a.1.file, a.1.line).cmp(&(&b.1.file, b.1.line)));
    let mut sets: HashMap<Option<String>, PolicySet> = HashMap::new();
    let mut compiled: HashMap<(Option<String>, usize), CompiledPolicySet> = HashMap::new();
    let mut findings = Vec::new();
    for (id, meta) in ordered {
        let Some(policy) = snapshot.policies.policy(id) else {
            continue;
        };
        let route = pinned_route(policy);
        if !sets.contains_key(&route) {
            let set = match &route {
                Some(t) => route_slice(snapshot, t)?,
                None => snapshot.policies.clone(),
            };
            sets.insert(route.clone(), set);
        }
        let set = &sets[&route];
        let mut without = set.clone();
        // a policy that cannot be taken out (none today) is never called redundant
        let removable = without.remove_static(id.clone()).is_ok();
        let finding = |kind: &'static str, detail: String, counterexample| PolicyFinding {
            policy: id.to_string(),
            at: format!("{}:{}", meta.file, meta.line),
            finding: kind,
            detail,
            counterexample,
        };
        let envs: Vec<(usize, cedar_policy::RequestEnv)> = prover
            .all_envs()
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                meta.actions
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|a| a == e.action().id().unescaped()))
            })
            .map(|(i, e)| (i, e.clone()))
            .collect();
        let (mut applies, mut changes_something, mut erring) = (false, !removable, None);
        for (i, env) in envs {
            let single = prover.compile(policy, &env)?;
            if prover.never_matches(&single).await? {
                continue;
            }
            applies = true;
            if erring.is_none() {
                if let Some(example) = prover.erring_request(&single).await? {
                    let (allowed, _) = concrete_decision(set, &example);
                    let name = format!("{id} errors on this request");
                    let expect = if allowed {
                        Expectation::Allow
                    } else {
                        Expectation::Deny
                    };
                    erring = Some(Counterexample::new(
                        &example, snapshot, allowed, name, expect,
                    ));
                }
            }
            if !changes_something {
                let key = (route.clone(), i);
                if !compiled.contains_key(&key) {
                    compiled.insert(key.clone(), prover.compile_set(set, &env)?);
                }
                let with = &compiled[&key];
                let without = prover.compile_set(&without, &env)?;
                let (wider, narrower) = match meta.effect {
                    Effect::Permit => (with, &without),
                    Effect::Forbid => (&without, with),
                };
                changes_something = prover.allowed_only_by(wider, narrower).await?.is_some();
            }
        }
        if !applies {
            findings.push(finding(
                "never-applies",
                "no request satisfies its scope and conditions".into(),
                None,
            ));
            continue;
        }
        if let Some(example) = erring {
            findings.push(finding(
                "may-error",
                "evaluating it can error (Cedar then ignores it)".into(),
                Some(example),
            ));
        }
        if !changes_something {
            let (kind, detail) = match meta.effect {
                Effect::Permit => (
                    "redundant-permit",
                    "every request it allows is allowed without it",
                ),
                Effect::Forbid => (
                    "dead-forbid",
                    "it never fires: every request it denies is denied without it",
                ),
            };
            findings.push(finding(kind, detail.into(), None));
        }
    }
    Ok(findings)
}

/// `file:line` of a policy.
fn at(snapshot: &PolicySnapshot, id: &PolicyId) -> String {
    snapshot
        .meta
        .get(id)
        .map_or_else(|| id.to_string(), |m| format!("{}:{}", m.file, m.line))
}

/// The methods a route's permits are written for, each with those permits.
pub(crate) fn methods_of(
    snapshot: &PolicySnapshot,
    endpoint: &Endpoint,
) -> Vec<(String, Vec<PolicyId>)> {
    let mut by_method: BTreeMap<String, BTreeSet<PolicyId>> = BTreeMap::new();
    for id in &endpoint.policy_ids {
        let Some(meta) = snapshot.meta.get(id) else {
            continue;
        };
        let (Effect::Permit, Some(actions)) = (meta.effect, &meta.actions) else {
            continue;
        };
        for action in actions {
            by_method
                .entry(action.clone())
                .or_default()
                .insert(id.clone());
        }
    }
    by_method
        .into_iter()
        .map(|(m, p)| (m, p.into_iter().collect()))
        .collect()
}
