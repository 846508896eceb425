//! Proofs: the properties of the live set (proved or refuted with a counterexample), the
//! `analyze` findings, and `compare` of the live set with a candidate (an uploaded bundle or
//! directory archive, or the live set with one file replaced). Every proof runs on the
//! control plane's workers within `[admin] proof_timeout_seconds`, one at a time, and each
//! counterexample is shown as a test case ready to paste into `policies/tests/`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use maud::{html, Markup};

use super::{admit, admit_post, view, ConsoleState, CsrfForm, Page, Screen};
use crate::audit::analysis::Analysis;
use crate::audit::counterexample::Counterexample;
use crate::control::proofs::{self as jobs, ProofError};

/// Largest candidate upload (the route's body limit, and counted again as it is read).
pub(super) const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// The last analysis of the live set, if it was of `version`.
pub(super) fn last_analysis(state: &ConsoleState, version: &str) -> Option<Arc<Analysis>> {
    let last = state.analysis.lock().unwrap_or_else(|p| p.into_inner());
    last.as_ref()
        .filter(|(v, _)| v == version)
        .map(|(_, a)| a.clone())
}

/// Analyzes the live set (within the proof budget) and keeps the result for Routes.
pub(super) async fn analyze_live(state: &ConsoleState) -> Result<Arc<Analysis>, String> {
    let snapshot = state.pdp.policies().snapshot();
    let version = snapshot.version.clone();
    let analysis = jobs::analyze(&state.workers, state.proof_budget, snapshot)
        .await
        .map(Arc::new)
        .map_err(|e| proof_error(&e))?;
    *state.analysis.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, analysis.clone()));
    Ok(analysis)
}

fn proof_error(e: &ProofError) -> String {
    match e {
        ProofError::Job(crate::control::JobError::OverBudget(_)) => {
            format!("The proof was {e}; `[admin] proof_timeout_seconds` sets the budget.")
        }
        _ => e.to_string(),
    }
}

/// The three forms, above whatever a proof found.
fn forms(csrf: &str, found: Markup) -> Markup {
    html! {
        h1 { "Proofs" }
        div.stats {
            form.card method="post" action="/console/proofs/properties" {
                (view::csrf(csrf))
                p { "Prove the " code { "properties/" } " of the live set." }
                button.go type="submit" { "Prove properties" }
            }
            form.card method="post" action="/console/proofs/analyze" {
                (view::csrf(csrf))
                p { "Find unreachable routes, shadowed, redundant and erroring policies." }
                button.go type="submit" { "Analyze" }
            }
        }
        form.card method="post" action="/console/proofs/compare" enctype="multipart/form-data" {
            (view::csrf(csrf))
            p { "Compare the live set with a candidate: upload a bundle (" code { ".cjar" } " or zip of a policy directory), or replace one file of the live set." }
            div.grid style="display:grid;grid-template-columns:1fr 1fr;gap:1rem" {
                div { label for="bundle" { "candidate bundle" } input #bundle type="file" name="bundle" accept=".cjar,.zip"; }
                div { label for="file_name" { "or replace file (relative to the policy directory)" } input #file_name name="file_name" placeholder="items.cedar"; }
            }
            label for="file_text" { "its new text" }
            textarea #file_text name="file_text" rows="10" placeholder="permit (principal, action, resource) when { … };" {}
            p { button.go #compare type="submit" { "Compare" } }
        }
        (found)
    }
}

/// `GET /console/proofs`.
pub(super) async fn show(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Proofs).await?;
    let body = forms(visit.csrf(), html! {});
    Ok(visit.page(&state, body))
}

/// `POST /console/proofs/properties`.
pub(super) async fn properties(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Page {
    let visit = admit_post(&state, &headers, &uri, Screen::Proofs, &form.csrf).await?;
    let snapshot = state.pdp.policies().snapshot();
    let proved = state
        .workers
        .prove(state.proof_budget, async move {
            let properties = crate::audit::properties::load(&snapshot.source, &snapshot.schema)?;
            crate::audit::properties::prove(&snapshot, &properties).await
        })
        .await;
    let found = match proved {
        Err(e) => view::error(&proof_error(&ProofError::Job(e))),
        Ok(Err(e)) => view::error(&e.to_string()),
        Ok(Ok((results, queries))) => html! {
            h2 { "Properties" }
            p.muted { (results.iter().filter(|r| r.holds).count()) " of " (results.len()) " proved (" (queries) " solver queries)." }
            table #properties {
                thead { tr { th { "property" } th { "where" } th { "result" } } }
                tbody { @for r in &results {
                    tr {
                        td.mono { (r.id) }
                        td.mono { (r.at) }
                        td { @if r.holds { span.allow { "proved" } } @else { span.deny { "fails" } (example(r.counterexample.as_ref())) } }
                    }
                } }
            }
        },
    };
    Ok(visit.page(&state, forms(visit.csrf(), found)))
}

/// `POST /console/proofs/analyze`.
pub(super) async fn analyze(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Page {
    let visit = admit_post(&state, &headers, &uri, Screen::Proofs, &form.csrf).await?;
    let found = match analyze_live(&state).await {
        Err(e) => view::error(&e),
        Ok(a) => html! {
            h2 { "Analysis" }
            p.muted { (a.routes.len()) " route × method pairs, " (a.unreachable().count()) " unreachable; "
                (a.policies.len()) " policy findings (" (a.queries) " solver queries). "
                a href="/console/routes" { "Reachability per route →" } }
            @if a.policies.is_empty() && a.unreachable().count() == 0 { p.allow { "Nothing found: every route is reachable and every policy can matter." } }
            table #findings {
                thead { tr { th { "what" } th { "where" } th { "finding" } } }
                tbody {
                    @for r in a.unreachable() {
                        tr { td.mono { (r.method) " " (r.route) } td.mono { (r.permits.join(", ")) }
                            td { span.deny { "unreachable" } @if let Some(s) = &r.shadowed { (example(s.counterexample.as_ref())) } } }
                    }
                    @for f in &a.policies {
                        tr { td.mono { (f.policy) } td.mono { (f.at) }
                            td { span.warn { (f.finding) } " " (f.detail) (example(f.counterexample.as_ref())) } }
                    }
                }
            }
        },
    };
    Ok(visit.page(&state, forms(visit.csrf(), found)))
}

/// `POST /console/proofs/compare` (multipart: `csrf`, and `bundle` or `file_name` +
/// `file_text`).
pub(super) async fn compare(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    multipart: Multipart,
) -> Page {
    // Who asks is known before the upload is read: nobody else makes the server take it in.
    let visit = admit(&state, &headers, &uri, Screen::Proofs).await?;
    let form = read_compare_form(multipart).await.map_err(|e| {
        super::no_store(
            (
                axum::http::StatusCode::BAD_REQUEST,
                view::bare("Compare", view::error(&e)),
            )
                .into_response(),
        )
    })?;
    if !visit.session.csrf_matches(&form.csrf) {
        return Err(super::forged_form());
    }
    let live = state.pdp.policies().snapshot();
    let found = match candidate_files(&state, &live, form).await {
        Err(e) => view::error(&e),
        Ok(files) => {
            match jobs::compare(&state.workers, state.proof_budget, live.clone(), files).await {
                Err(e) => view::error(&proof_error(&e)),
                Ok((candidate_version, routes, queries)) => html! {
                    h2 { "Compare" }
                    p.muted { "Live " code { (live.version) } " against candidate " code { (candidate_version) } " (" (queries) " solver queries)." }
                    table #comparison {
                        thead { tr { th { "route" } th { "relation" } th { "only the live set allows" } th { "only the candidate allows" } } }
                        tbody { @for r in &routes {
                            tr {
                                td.mono { (r.method) " " (r.route) }
                                td { @if r.relation == "equivalent" { span.muted { (r.relation) } } @else { b { (r.relation) } } }
                                td { (example(r.only_old_allows.as_ref())) }
                                td { (example(r.only_new_allows.as_ref())) }
                            }
                        } }
                    }
                },
            }
        }
    };
    Ok(visit.page(&state, forms(visit.csrf(), found)))
}

/// A counterexample as a ready-to-paste test case.
fn example(c: Option<&Counterexample>) -> Markup {
    html! {
        @if let Some(c) = c {
            details.counterexample open {
                summary { "counterexample" @if !c.reproduced { " " span.warn { "(not reproduced by the decision path)" } } }
                pre { (c.yaml) }
                @if let Some(check) = &c.check { pre { (check) } }
            }
        }
    }
}

/// The compare form as posted.
struct CompareForm {
    csrf: String,
    bundle: Option<Vec<u8>>,
    file_name: String,
    file_text: String,
}

async fn read_compare_form(mut multipart: Multipart) -> Result<CompareForm, String> {
    let mut form = CompareForm {
        csrf: String::new(),
        bundle: None,
        file_name: String::new(),
        file_text: String::new(),
    };
    let mut total = 0usize;
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|e| e.body_text())?;
        total += bytes.len();
        if total > MAX_UPLOAD_BYTES {
            return Err(format!("the form is larger than {MAX_UPLOAD_BYTES} bytes"));
        }
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        match name.as_str() {
            "csrf" => form.csrf = text(),
            "bundle" if !bytes.is_empty() => form.bundle = Some(bytes.to_vec()),
            "file_name" => form.file_name = text().trim().to_owned(),
            "file_text" => form.file_text = text(),
            _ => {}
        }
    }
    Ok(form)
}

/// The candidate's files: the uploaded archive's, or the live set's with one replaced.
async fn candidate_files(
    state: &ConsoleState,
    live: &Arc<crate::policy::PolicySnapshot>,
    form: CompareForm,
) -> Result<HashMap<String, String>, String> {
    let source = live.source.clone();
    let files = state
        .workers
        .blocking(move || -> Result<crate::bundle::archive::Files, String> {
            match (form.bundle, form.file_name.is_empty()) {
                (Some(bytes), _) => {
                    crate::bundle::archive::read_zip(&bytes).map_err(|e| e.to_string())
                }
                (None, false) => {
                    crate::bundle::archive::safe_name(&form.file_name)
                        .map_err(|e| e.to_string())?;
                    let mut files =
                        crate::bundle::archive::read_dir(&source).map_err(|e| e.to_string())?;
                    files.insert(form.file_name, form.file_text.into_bytes());
                    Ok(files)
                }
                (None, true) => Err(
                    "Give a candidate: a bundle to upload, or a file name and its new text.".into(),
                ),
            }
        })
        .await
        .map_err(|e| e.to_string())??;
    files
        .into_iter()
        .map(|(name, bytes)| {
            String::from_utf8(bytes)
                .map(|text| (name.clone(), text))
                .map_err(|_| format!("`{name}` is not UTF-8 text"))
        })
        .collect()
}
