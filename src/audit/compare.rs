//! Whether two policy sets decide alike (`arbiter policies compare`): per route and method
//! of either, the solver proves each implies the other or finds a request one allows and the
//! other denies.

use std::collections::BTreeSet;

use super::analysis::methods_of;
use super::cases::Expectation;
use super::counterexample::Counterexample;
use super::prover::{route_slice, AnalysisError, Prover};
use crate::policy::{PolicySnapshot, ENDPOINT_TYPE};

/// How two policy sets relate on one route and method.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteComparison {
    /// `GET`, `POST`, …
    pub method: String,
    /// The route template.
    pub route: String,
    /// `equivalent`, `narrower` (the new set allows a subset), `wider` (a superset) or
    /// `incomparable`.
    pub relation: &'static str,
    /// A request the old set allows and the new one denies, if there is one.
    pub only_old_allows: Option<Counterexample>,
    /// A request the new set allows and the old one denies, if there is one.
    pub only_new_allows: Option<Counterexample>,
}

/// Every route × method of either set, compared by the solver under the new set's schema.
/// Counterexamples are cases for the new set (and replayed through it).
pub async fn compare(
    old: &PolicySnapshot,
    new: &PolicySnapshot,
) -> Result<(Vec<RouteComparison>, usize), AnalysisError> {
    let mut prover = Prover::new(&new.schema)?;
    let mut targets: BTreeSet<(String, String)> = BTreeSet::new();
    for snapshot in [old, new] {
        for endpoint in snapshot.routes.endpoints() {
            for (method, _) in methods_of(snapshot, endpoint) {
                targets.insert((endpoint.template.clone(), method));
            }
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for (route, method) in targets {
        let (old_set, new_set) = (route_slice(old, &route)?, route_slice(new, &route)?);
        let (mut only_old, mut only_new) = (None, None);
        for env in prover.envs(ENDPOINT_TYPE, Some(&method)) {
            let (o, n) = (
                prover.compile_set(&old_set, &env)?,
                prover.compile_set(&new_set, &env)?,
            );
            if only_old.is_none() {
                only_old = prover.allowed_only_by(&o, &n).await?.map(|example| {
                    let name = format!("{method} {route}: the change denies what was allowed");
                    Counterexample::new(&example, new, false, name, Expectation::Deny)
                });
            }
            if only_new.is_none() {
                only_new = prover.allowed_only_by(&n, &o).await?.map(|example| {
                    let name = format!("{method} {route}: the change allows what was denied");
                    Counterexample::new(&example, new, true, name, Expectation::Allow)
                });
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
    Ok((out, prover.queries))
}
