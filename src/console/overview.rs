//! Overview: the live revision and when it loaded, what it holds, the reload history, and
//! the last hour of decisions by reason.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use maud::html;

use super::activity::{REASONS, STEP};
use super::{admit, render, view, ConsoleState, Page, Screen};
use crate::policy::ReloadResult;

/// `GET /console`.
pub(super) async fn show(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Overview).await?;
    let (snapshot, status) = state.pdp.policies().snapshot_and_status();
    let issuers = state.pdp.verifier().issuers().count();
    let intervals = state.activity.intervals();
    let source = state.bundles.as_ref().map(|b| b.status());
    let body = render(&state, move || {
        let step = STEP.as_secs_f64();
        let series: Vec<(&str, &str, Vec<f64>)> = REASONS
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    r.as_str(),
                    view::REASON_COLOURS[i],
                    intervals.iter().map(|t| t.by_reason[i] as f64 / step).collect(),
                )
            })
            .collect();
        let hour: Vec<u64> = (0..REASONS.len())
            .map(|i| intervals.iter().map(|t| t.by_reason[i]).sum())
            .collect();
        let total: u64 = hour.iter().sum();
        html! {
            h1 { "Overview" }
            div.stats {
                div.stat { b.mono { (snapshot.revision) } span { "live revision" } }
                div.stat { b { (ago(snapshot.loaded_at)) } span { "loaded" } }
                div.stat { b { (snapshot.policy_count()) } span { "policies" } }
                div.stat { b { (snapshot.routes.endpoints().len()) } span { "routes" } }
                div.stat { b { (issuers) } span { "trusted issuers" } }
                div.stat { b { (total) } span { "decisions in the last hour" } }
            }
            p.muted { "Source " code { (snapshot.source.display()) } " · version " code { (snapshot.version) }
                @if let Some(s) = &source { " · bundle from " code { (s.location) } ", last fetch " (s.last_result) } }
            @if !snapshot.warnings.is_empty() {
                div.note { (snapshot.warnings.len()) " validation warning(s): "
                    @for w in snapshot.warnings.iter().take(5) { br; code { (w) } } }
            }
            h2 { "Decisions per second, last hour" }
            div.card {
                @if intervals.is_empty() {
                    p.muted { "The first ten-second interval is still being counted." }
                } @else {
                    (view::stacked_bars(&series, 900, 180, "decisions/s"))
                }
            }
            h2 { "Denials by reason, last hour" }
            table {
                thead { tr { th { "reason" } th { "decisions" } th { "share" } } }
                tbody {
                    @for (i, r) in REASONS.iter().enumerate() {
                        @if hour[i] > 0 {
                            tr {
                                td { span style={ "color:" (view::REASON_COLOURS[i]) } { "■ " } (r.as_str()) }
                                td { (hour[i]) }
                                td { (format!("{:.1} %", hour[i] as f64 * 100.0 / total.max(1) as f64)) }
                            }
                        }
                    }
                }
            }
            h2 { "Reload history" }
            p.muted { "Since start: " (status.counters.applied) " applied, " (status.counters.unchanged)
                " unchanged, " (status.counters.failed) " failed (the last good set keeps serving)." }
            table {
                thead { tr { th { "when" } th { "trigger" } th { "outcome" } th { "version" } th { "took" } th { "error" } } }
                tbody {
                    @if status.history.is_empty() {
                        tr { td colspan="6" .muted { "No reload since start." } }
                    }
                    @for (o, error) in status.history.iter().rev() {
                        tr {
                            td { (ago(o.at)) }
                            td { (format!("{:?}", o.trigger).to_lowercase()) }
                            td {
                                @match o.result {
                                    ReloadResult::Applied => span.allow { "applied" },
                                    ReloadResult::Unchanged => span.muted { "unchanged" },
                                    ReloadResult::Failed => span.deny { "failed" },
                                }
                            }
                            td.mono { (o.version) }
                            td { (format!("{:.0} ms", o.duration.as_secs_f64() * 1000.0)) }
                            td.mono { (error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    })
    .await;
    Ok(visit.rendered(&state, body))
}

/// `12 s ago`, `3 min ago`, `2 h ago`.
pub(super) fn ago(at: SystemTime) -> String {
    let s = SystemTime::now()
        .duration_since(at)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}
