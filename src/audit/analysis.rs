//! Formal analysis of a policy set with Cedar's symbolic compiler (`cedar-policy-symcc`,
//! checks proved correct in Lean) and the cvc5 SMT solver: which routes no request can ever
//! reach, and whether the token endpoint can ever issue a scope.
//!
//! The solver quantifies over every well-formed request, entity store and context of the
//! schema, which include every request Arbiter can make: "never allowed" is a proof about
//! Arbiter's real decisions too. cvc5 is the executable `CVC5` names (default `cvc5` on the
//! `PATH`), version 1.3.

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::{Effect, EntityUid, Policy, PolicySet, RequestEnv};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicySet};

use crate::policy::{Endpoint, PolicySnapshot, ENDPOINT_TYPE, SCOPE_TYPE};

/// Why the analysis could not run.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// cvc5 could not be started or failed.
    #[error("the cvc5 solver (set CVC5 to a cvc5 1.3 executable): {0}")]
    Solver(String),
    /// The policies could not be compiled for a request type.
    #[error("compiling the policies for {0}: {1}")]
    Compile(String, String),
}

/// One route and method some permit is written for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteFinding {
    /// `GET`, `POST`, …
    pub method: String,
    /// The route template.
    pub route: String,
    /// Whether some request can be allowed (for some principal type).
    pub reachable: bool,
    /// The permits written for it, `file:line`.
    pub permits: Vec<String>,
}

/// What the analysis found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Analysis {
    /// Every route × method a permit names, reachable or not.
    pub routes: Vec<RouteFinding>,
    /// Whether the token endpoint can ever issue a scope (`IssueScope`).
    pub issue_scope_reachable: Option<bool>,
    /// Solver queries run.
    pub queries: usize,
}

impl Analysis {
    /// The routes no request can reach.
    pub fn unreachable(&self) -> impl Iterator<Item = &RouteFinding> {
        self.routes.iter().filter(|r| !r.reachable)
    }
}

/// Analyzes a loaded policy set.
pub async fn analyze(snapshot: &PolicySnapshot) -> Result<Analysis, AnalysisError> {
    let solver = LocalSolver::cvc5().map_err(|e| AnalysisError::Solver(e.to_string()))?;
    let mut symcc =
        CedarSymCompiler::new(solver).map_err(|e| AnalysisError::Solver(e.to_string()))?;
    let envs: Vec<RequestEnv> = snapshot.schema.request_envs().collect();
    let mut analysis = Analysis::default();
    for endpoint in snapshot.routes.endpoints() {
        let pinned = pin_resource(&snapshot.policies, &endpoint.uid)?;
        for (method, permits) in methods_of(snapshot, endpoint) {
            let mut reachable = false;
            for env in envs.iter().filter(|e| {
                e.resource().to_string() == ENDPOINT_TYPE
                    && e.action().id().unescaped() == method.as_str()
            }) {
                analysis.queries += 1;
                if !always_denies(&mut symcc, &pinned, env, &snapshot.schema).await? {
                    reachable = true;
                    break;
                }
            }
            analysis.routes.push(RouteFinding {
                method,
                route: endpoint.template.clone(),
                reachable,
                permits,
            });
        }
    }
    let mut issue = None;
    for env in envs.iter().filter(|e| {
        e.resource().to_string() == SCOPE_TYPE && e.action().id().unescaped() == "IssueScope"
    }) {
        analysis.queries += 1;
        let denies = always_denies(&mut symcc, &snapshot.policies, env, &snapshot.schema).await?;
        issue = Some(issue.unwrap_or(false) || !denies);
    }
    analysis.issue_scope_reachable = issue;
    Ok(analysis)
}

async fn always_denies(
    symcc: &mut CedarSymCompiler<LocalSolver>,
    policies: &PolicySet,
    env: &RequestEnv,
    schema: &cedar_policy::Schema,
) -> Result<bool, AnalysisError> {
    let name = || format!("{} {} {}", env.principal(), env.action(), env.resource());
    let compiled = CompiledPolicySet::compile(policies, env, schema)
        .map_err(|e| AnalysisError::Compile(name(), e.to_string()))?;
    symcc
        .check_always_denies_opt(&compiled)
        .await
        .map_err(|e| AnalysisError::Solver(format!("{}: {e}", name())))
}

/// The set with one more forbid that holds for every resource but `resource`: what it
/// allows, it allows on that resource alone.
fn pin_resource(policies: &PolicySet, resource: &EntityUid) -> Result<PolicySet, AnalysisError> {
    let pin: Policy = format!(
        "@id(\"arbiter-analysis-pin\")\nforbid (principal, action, resource) unless {{ resource == {resource} }};"
    )
    .parse()
    .map_err(|e: cedar_policy::ParseErrors| AnalysisError::Compile(resource.to_string(), e.to_string()))?;
    let mut pinned = policies.clone();
    pinned
        .add(pin)
        .map_err(|e| AnalysisError::Compile(resource.to_string(), e.to_string()))?;
    Ok(pinned)
}

/// The methods a route's permits are written for, each with those permits (`file:line`).
fn methods_of(snapshot: &PolicySnapshot, endpoint: &Endpoint) -> Vec<(String, Vec<String>)> {
    let mut by_method: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
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
                .insert(format!("{}:{}", meta.file, meta.line));
        }
    }
    by_method
        .into_iter()
        .map(|(m, p)| (m, p.into_iter().collect()))
        .collect()
}

/// How two policy sets relate on one route and method.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteComparison {
    /// `GET`, `POST`, …
    pub method: String,
    /// The route template.
    pub route: String,
    /// `equivalent`, `narrower` (the new set allows a subset), `wider` (a superset) or
    /// `incomparable`.
    pub relation: &'static str,
    /// A request the old set allows and the new one denies, if there is one.
    pub only_old_allows: Option<String>,
    /// A request the new set allows and the old one denies, if there is one.
    pub only_new_allows: Option<String>,
}

/// Every route × method of either set, compared by the solver under the new set's schema.
pub async fn compare(
    old: &PolicySnapshot,
    new: &PolicySnapshot,
) -> Result<Vec<RouteComparison>, AnalysisError> {
    let solver = LocalSolver::cvc5().map_err(|e| AnalysisError::Solver(e.to_string()))?;
    let mut symcc =
        CedarSymCompiler::new(solver).map_err(|e| AnalysisError::Solver(e.to_string()))?;
    let schema = &new.schema;
    let envs: Vec<RequestEnv> = schema.request_envs().collect();
    let mut targets: BTreeMap<(String, String), EntityUid> = BTreeMap::new();
    for snapshot in [old, new] {
        for endpoint in snapshot.routes.endpoints() {
            for (method, _) in methods_of(snapshot, endpoint) {
                targets.insert((endpoint.template.clone(), method), endpoint.uid.clone());
            }
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for ((route, method), uid) in targets {
        let (old_set, new_set) = (
            pin_resource(&old.policies, &uid)?,
            pin_resource(&new.policies, &uid)?,
        );
        let (mut only_old, mut only_new) = (None, None);
        for env in envs.iter().filter(|e| {
            e.resource().to_string() == ENDPOINT_TYPE && e.action().id().unescaped() == method
        }) {
            let name = || format!("{} {} {}", env.principal(), env.action(), env.resource());
            let compile = |set: &PolicySet, which: &str| {
                CompiledPolicySet::compile(set, env, schema)
                    .map_err(|e| AnalysisError::Compile(name(), format!("{which} set: {e}")))
            };
            let (o, n) = (compile(&old_set, "old")?, compile(&new_set, "new")?);
            let solver_error = |e: cedar_policy_symcc::err::Error| {
                AnalysisError::Solver(format!("{}: {e}", name()))
            };
            if only_old.is_none() {
                only_old = symcc
                    .check_implies_with_counterexample_opt(&o, &n)
                    .await
                    .map_err(solver_error)?
                    .map(|env| describe(&env));
            }
            if only_new.is_none() {
                only_new = symcc
                    .check_implies_with_counterexample_opt(&n, &o)
                    .await
                    .map_err(solver_error)?
                    .map(|env| describe(&env));
            }
        }
        let relation = match (&only_old, &only_new) {
            (None, None) => "equivalent",
            (Some(_), None) => "narrower",
            (None, Some(_)) => "wider",
            (Some(_), Some(_)) => "incomparable",
        };
        out.push(RouteComparison {
            method,
            route,
            relation,
            only_old_allows: only_old,
            only_new_allows: only_new,
        });
    }
    Ok(out)
}

/// A counterexample as the solver concretized it, without the action entities every
/// request store holds: the request, its context, and the entities it needs.
fn describe(env: &cedar_policy_symcc::Env) -> String {
    env.to_string()
        .lines()
        .filter(|l| !l.trim_start().starts_with("Action::"))
        .collect::<Vec<_>>()
        .join("\n")
}
