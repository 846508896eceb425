//! Who can: AuthZEN search as forms. Which subjects of a type may do an action on a
//! resource, which resources of a type a subject may act on, which actions a subject may do
//! on a resource: the same search as `/access/v1/search/*`, on the control plane's workers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{admit, admit_post, view, ConsoleState, Page, Screen};
use crate::authzen::search::Kind;

/// The search form.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    subject_type: String,
    #[serde(default)]
    subject_id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    context: String,
}

fn form(f: &SearchForm, csrf: &str) -> Markup {
    let input = |name: &'static str, label: &'static str, value: &str, hint: &'static str| {
        html! { div { label for=(name) { (label) } input id=(name) name=(name) value=(value) placeholder=(hint); } }
    };
    html! {
        h1 { "Who can" }
        p.muted { "AuthZEN search over the live policies: every candidate is decided like a request (subjects and resources are the entities " code { "entities.json" } " declares; a " code { "route" } " resource is every endpoint)." }
        form.grid.card method="post" action="/console/access" {
            (view::csrf(csrf))
            div { label for="kind" { "find" }
                select #kind name="kind" {
                    option value="subject" selected[f.kind == "subject" || f.kind.is_empty()] { "subjects who may" }
                    option value="resource" selected[f.kind == "resource"] { "resources a subject may act on" }
                    option value="action" selected[f.kind == "action"] { "actions a subject may do" }
                }
            }
            (input("subject_type", "subject type", &f.subject_type, "user"))
            (input("subject_id", "subject id (not for a subject search)", &f.subject_id, "alice"))
            (input("action", "action (not for an action search)", &f.action, "GET"))
            (input("resource_type", "resource type", &f.resource_type, "route"))
            (input("resource_id", "resource id (not for a resource search)", &f.resource_id, "/hr/employees/{id}/health"))
            div style="grid-column:1/-1" { label for="context" { "context (JSON)" }
                textarea #context name="context" rows="2" placeholder=r#"{"employee": {"nationality": "BR", "work_country": "NL"}}"# { (f.context) } }
            div { button.go type="submit" { "Search" } }
        }
    }
}

/// `GET /console/access`.
pub(super) async fn show(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Access).await?;
    let body = form(&SearchForm::default(), visit.csrf());
    Ok(visit.page(&state, body))
}

/// `POST /console/access`.
pub(super) async fn search(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::Form(f): axum::Form<SearchForm>,
) -> Page {
    let visit = admit_post(&state, &headers, &uri, Screen::Access, &f.csrf).await?;
    let found = match request(&f) {
        Err(e) => view::error(&e),
        Ok((kind, request)) => match state.searcher.search(kind, &request).await {
            Err(e) => view::error(&e),
            Ok(answer) => {
                let results = answer
                    .get("results")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let more = answer
                    .pointer("/page/next_token")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty());
                html! {
                    h2 { (results.len()) " result(s)" @if more { " (first page)" } }
                    table #results {
                        thead { tr { th { "type" } th { "id / name" } } }
                        tbody {
                            @if results.is_empty() { tr { td colspan="2" .muted { "None may." } } }
                            @for r in &results {
                                tr {
                                    td { (r.get("type").and_then(Value::as_str).unwrap_or("action")) }
                                    td.mono { (r.get("id").or_else(|| r.get("name")).and_then(Value::as_str).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                    details { summary { "AuthZEN request" } pre { (serde_json::to_string_pretty(&request).unwrap_or_default()) } }
                }
            }
        },
    };
    let body = html! { (form(&f, visit.csrf())) (found) };
    Ok(visit.page(&state, body))
}

/// The AuthZEN search request the form describes.
fn request(f: &SearchForm) -> Result<(Kind, Map<String, Value>), String> {
    let kind = match f.kind.as_str() {
        "" | "subject" => Kind::Subject,
        "resource" => Kind::Resource,
        "action" => Kind::Action,
        other => return Err(format!("unknown search `{other}`")),
    };
    let entity = |ty: &str, id: &str| {
        let mut e = json!({ "type": ty.trim() });
        if !id.trim().is_empty() {
            e["id"] = json!(id.trim());
        }
        e
    };
    let mut request = Map::new();
    request.insert("subject".into(), entity(&f.subject_type, &f.subject_id));
    request.insert("resource".into(), entity(&f.resource_type, &f.resource_id));
    if kind != Kind::Action {
        request.insert("action".into(), json!({ "name": f.action.trim() }));
    }
    if !f.context.trim().is_empty() {
        let context: Value = serde_json::from_str(&f.context)
            .map_err(|e| format!("the context is not JSON: {e}"))?;
        request.insert("context".into(), context);
    }
    Ok((kind, request))
}
