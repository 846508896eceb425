//! Routes: the route × method table with the scope expression each needs, read from the
//! permits' Cedar conditions (and `@scopes`), and each route's reachability from the last
//! `analyze` of the live set, with the counterexample request of an unreachable one.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect};
use cedar_policy::Effect;
use maud::html;

use super::policies::encode;
use super::{admit, admit_post, proofs, render, view, ConsoleState, CsrfForm, Page, Screen};
use crate::policy::PolicySnapshot;

/// Routes on one page (each with its methods).
const PER_PAGE: usize = 100;

/// One route × method: the scope expression of each permit written for it.
struct Row {
    route: String,
    method: String,
    /// `(policy id, scope expression or empty for none)`.
    permits: Vec<(String, String)>,
}

/// The table, from the route index and each permit's scope requirement.
fn rows(snapshot: &PolicySnapshot) -> Vec<Row> {
    let mut out = Vec::new();
    for endpoint in snapshot.routes.endpoints() {
        let mut by_method: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for id in &endpoint.policy_ids {
            let Some(meta) = snapshot.meta.get(id) else {
                continue;
            };
            if meta.effect != Effect::Permit {
                continue;
            }
            let scopes = meta
                .scopes
                .as_ref()
                .map(|s| s.source().to_owned())
                .unwrap_or_default();
            let methods = meta.actions.clone().unwrap_or_else(|| vec!["*".into()]);
            for m in methods {
                by_method
                    .entry(m)
                    .or_default()
                    .push((id.to_string(), scopes.clone()));
            }
        }
        for (method, permits) in by_method {
            out.push(Row {
                route: endpoint.template.clone(),
                method,
                permits,
            });
        }
    }
    out
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Paging {
    #[serde(default)]
    offset: usize,
}

/// `GET /console/routes`.
pub(super) async fn show(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::extract::Query(page): axum::extract::Query<Paging>,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Routes).await?;
    let snapshot = state.pdp.policies().snapshot();
    let analysis = proofs::last_analysis(&state, &snapshot.version);
    let may_prove = visit.allowed.contains(&Screen::Proofs);
    let csrf = visit.csrf().to_owned();
    let body = render(&state, move || {
        let rows = rows(&snapshot);
        let reach = |route: &str, method: &str| {
            analysis.as_ref().and_then(|a| {
                a.routes
                    .iter()
                    .find(|r| r.route == route && (r.method == method || method == "*"))
            })
        };
        html! {
            h1 { "Routes" }
            p.muted { "The scopes each route and method needs, read from the permits' conditions: OAuth scopes as the prime factors of the API. A request needs one permit's expression to hold (and no forbid to apply)." }
            @if may_prove {
                form.card method="post" action="/console/routes/analyze" {
                    (view::csrf(&csrf))
                    @if analysis.is_some() { span.muted { "Reachability proved on this revision. " } }
                    @else { span.muted { "Reachability is not proved on this revision yet. " } }
                    button.go type="submit" { "Prove reachability (analyze)" }
                }
            }
            (view::pager("/console/routes", page.offset, PER_PAGE, rows.len()))
            table #routes {
                thead { tr { th { "route" } th { "method" } th { "scope expression" } th { "permits" } th { "reachable" } } }
                tbody {
                    @for r in rows.iter().skip(page.offset).take(PER_PAGE) {
                        @let expression = r.permits.iter().map(|(_, s)| if s.is_empty() { "(none)".to_owned() } else if r.permits.len() > 1 && s.contains("||") { format!("({s})") } else { s.clone() }).collect::<Vec<_>>().join(" || ");
                        tr id=(encode(&r.route)) {
                            td.mono { (r.route) }
                            td.mono { (r.method) }
                            td { code.scope-expression { (expression) } }
                            td { @for (id, _) in &r.permits { a.pill href={ "/console/policies/" (encode(id)) } { (id) } } }
                            td {
                                @match reach(&r.route, &r.method) {
                                    None => span.muted { "—" },
                                    Some(f) if f.reachable => span.allow { "reachable" },
                                    Some(f) => {
                                        span.deny { "unreachable" }
                                        @if let Some(s) = &f.shadowed {
                                            @if !s.by.is_empty() { div.muted { "denied by " (s.by.join(", ")) } }
                                            @if let Some(c) = &s.counterexample {
                                                details { summary { "counterexample" } pre { (c.yaml) } }
                                            }
                                        }
                                    },
                                }
                            }
                        }
                    }
                }
            }
        }
    })
    .await;
    Ok(visit.rendered(&state, body))
}

/// `POST /console/routes/analyze`: proves reachability (needs the proof action), then back.
pub(super) async fn analyze(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Page {
    let visit = admit_post(&state, &headers, &uri, Screen::Proofs, &form.csrf).await?;
    Ok(match proofs::analyze_live(&state).await {
        Ok(_) => Redirect::to("/console/routes").into_response(),
        Err(e) => visit.page(&state, view::error(&e)),
    })
}
