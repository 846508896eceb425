//! Decisions: the recent decisions (the last `[console] recent_decisions` lines of the
//! decision log, kept in memory by the log writer) filtered by principal, route, reason or
//! decision id; one decision opens its replay against the live set, with the explanation of
//! every policy of its route.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::{admit, render, view, ConsoleState, Page, Screen};
use crate::decision::Outcome;

/// Decisions on one page.
const PER_PAGE: usize = 50;

/// The filters (each a substring of its field; all must hold).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    offset: usize,
}

/// `s` as it appears inside a JSON string (quotes and backslashes escaped).
fn escaped(s: &str) -> String {
    let json = Value::String(s.to_owned()).to_string();
    json[1..json.len() - 1].to_owned()
}

fn field<'v>(line: &'v Value, name: &str) -> &'v str {
    line.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// `GET /console/decisions`.
pub(super) async fn list(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<Filters>,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Decisions).await?;
    let body = render(&state, move || {
        let Some(window) = crate::telemetry::recent::recent_decisions() else {
            return html! { h1 { "Decisions" } div.note { "This replica keeps no recent decisions: they are taken from its JSON decision log, so they need "
                code { "log_format = \"json\"" } " (or " code { "--log-format json" } ") and " code { "[console] recent_decisions" } " above 0." } };
        };
        let kept = window.len();
        let wanted = |line: &Value| {
            let route = format!("{} {} {}", field(line, "action"), field(line, "resource"), field(line, "path"));
            field(line, "principal").contains(f.principal.trim())
                && route.contains(f.route.trim())
                && (f.reason.trim().is_empty() || field(line, "reason") == f.reason.trim())
                && field(line, "decision_id").contains(f.id.trim())
        };
        // Unfiltered: only the page is copied and parsed. Filtered: a line is parsed only
        // when its text holds every filter's words (then checked field by field).
        let filters: Vec<&str> = [&f.principal, &f.route, &f.reason, &f.id]
            .into_iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        let parse = |l: &String| serde_json::from_str::<Value>(l).ok();
        let (lines, total, skip): (Vec<Value>, usize, usize) = if filters.is_empty() {
            let page = window.newest(f.offset, PER_PAGE, |_| true);
            (page.iter().filter_map(parse).collect(), kept, 0)
        } else {
            let raw = |l: &str| filters.iter().all(|w| l.contains(&escaped(w)));
            let all: Vec<Value> = window
                .newest(0, usize::MAX, raw)
                .iter()
                .filter_map(parse)
                .filter(wanted)
                .collect();
            let n = all.len();
            (all, n, f.offset)
        };
        let base = {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in [("principal", &f.principal), ("route", &f.route), ("reason", &f.reason), ("id", &f.id)] {
                if !v.trim().is_empty() {
                    s.append_pair(k, v.trim());
                }
            }
            format!("/console/decisions?{}", s.finish())
        };
        let input = |name: &'static str, label: &'static str, value: &str, hint: &'static str| {
            html! { div { label for=(name) { (label) } input id=(name) name=(name) value=(value) placeholder=(hint); } }
        };
        html! {
            h1 { "Decisions" }
            p.muted { "The last " (kept) " decisions of this replica (newest first), from its decision log." }
            form.grid.card method="get" action="/console/decisions" {
                (input("principal", "principal", &f.principal, "User::\"alice\""))
                (input("route", "route or path", &f.route, "/item/{id}"))
                div { label for="reason" { "reason" }
                    select #reason name="reason" {
                        option value="" { "any" }
                        @for r in super::activity::REASONS {
                            option value=(r.as_str()) selected[f.reason == r.as_str()] { (r.as_str()) }
                        }
                    }
                }
                (input("id", "decision id", &f.id, "0193…"))
                div { button.go type="submit" { "Filter" } }
            }
            (view::pager(&base, f.offset, PER_PAGE, total))
            table #decisions {
                thead { tr { th { "time" } th { "decision" } th { "reason" } th { "principal" } th { "request" } th { "policies" } th { "revision" } } }
                tbody {
                    @for line in lines.iter().skip(skip).take(PER_PAGE) {
                        tr {
                            td.mono { a href={ "/console/decisions/" (super::policies::encode(field(line, "decision_id"))) } { (field(line, "timestamp")) } }
                            td { (view::decision(field(line, "decision") == "allow")) }
                            td { (field(line, "reason")) }
                            td.mono { (field(line, "principal")) }
                            td.mono { (field(line, "action")) " " (if field(line, "path").is_empty() { field(line, "resource") } else { field(line, "path") }) }
                            td.mono { (line.get("policies").map(|p| match p { Value::String(s) => s.clone(), other => other.to_string() }).unwrap_or_default()) }
                            td.mono { (field(line, "policy_revision")) }
                        }
                    }
                }
            }
        }
    })
    .await;
    Ok(visit.rendered(&state, body))
}

/// `GET /console/decisions/{id}`.
pub(super) async fn one(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Decisions).await?;
    let snapshot = state.pdp.policies().snapshot();
    let body = render(&state, move || {
        let marker = format!("\"decision_id\":\"{id}\"");
        let line = crate::telemetry::recent::recent_decisions()
            .and_then(|w| w.newest(0, 1, |l| l.contains(&marker)).pop())?;
        let logged: Value = serde_json::from_str(&line).ok()?;
        let (decisions, _) = crate::audit::replay::parse_log(&line);
        let again = decisions
            .first()
            .map(|d| (d, crate::audit::replay::decide_again(&snapshot, d, true)));
        Some(html! {
            h1 { "Decision " code { (id) } }
            div.card {
                p { (view::decision(field(&logged, "decision") == "allow")) " · " (field(&logged, "reason"))
                    " · " code { (field(&logged, "principal")) } " · " code { (field(&logged, "action")) " " (field(&logged, "path")) }
                    " · revision " code { (field(&logged, "policy_revision")) } " · " (field(&logged, "timestamp")) }
            }
            @match again {
                None => p.note { "This line has no replay record (`decision_log_replay = false`), so it cannot be decided again." },
                Some((_, None)) => p.note { "Not replayable: the token was rejected before any policy was asked." },
                Some((d, Some(v))) => {
                    h2 { "Replayed against the live revision " code { (snapshot.revision) } }
                    p { "Now: " (view::decision(v.allowed)) " · " (v.reason.as_str())
                        @if (v.allowed) != (d.decision == "allow") { " " span.warn { "(differs from the logged decision: the policies changed since)" } } }
                    table #explanation {
                        thead { tr { th { "policy" } th { "outcome" } th { "why" } } }
                        tbody { @for x in &v.explanation {
                            tr {
                                td { a href={ "/console/policies/" (super::policies::encode(&x.policy_id)) } { (x.policy_id) } }
                                td { @match x.outcome { Outcome::Satisfied => span.allow { "applies" }, Outcome::NotSatisfied => span.muted { "does not apply" }, Outcome::Error => span.deny { "error" } } }
                                td { @if let Some(c) = &x.failed_condition { code { (c) } } @if let Some(e) = &x.error { span.deny { (e) } } }
                            }
                        } }
                    }
                    h2 { "What it saw" }
                    pre { (serde_json::to_string_pretty(&serde_json::json!({"method": d.method, "path": d.path, "context": d.context, "claims": d.claims})).unwrap_or_default()) }
                },
            }
        })
    })
    .await;
    let body = body?;
    Ok(match body {
        Some(body) => visit.page(&state, body),
        None => visit.not_found(
            &state,
            "No recent decision has this id (the window keeps only the newest).",
        ),
    })
}
