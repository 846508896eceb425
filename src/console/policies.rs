//! Policies: every policy with its file, line, effect and annotations, filtered by the same
//! attribute query as `arbiter policies query`; one policy with its source, the routes it
//! applies to, the test cases it determines and the properties bounding its routes.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use maud::html;
use serde::Deserialize;

use super::{admit, render, view, ConsoleState, Page, Screen};
use crate::policy::query::{self, Hit};

/// Policies on one page.
const PER_PAGE: usize = 50;

/// The filters, one value each (every given one must hold).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    annotation: String,
    #[serde(default)]
    attribute: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    effect: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    offset: usize,
}

impl Filters {
    fn query(&self) -> query::Query {
        let one = |v: &str| {
            let v = v.trim();
            if v.is_empty() {
                Vec::new()
            } else {
                vec![v.to_owned()]
            }
        };
        query::Query {
            annotations: one(&self.annotation),
            attributes: one(&self.attribute),
            values: one(&self.value),
            entities: one(&self.entity),
            actions: one(&self.action),
            endpoints: one(&self.endpoint),
            scopes: one(&self.scope),
            effect: Some(self.effect.trim().to_owned()).filter(|e| !e.is_empty()),
            files: one(&self.file),
        }
    }

    /// The filters as a query string (without the offset), for the pager.
    fn as_query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("annotation", &self.annotation),
            ("attribute", &self.attribute),
            ("value", &self.value),
            ("entity", &self.entity),
            ("action", &self.action),
            ("endpoint", &self.endpoint),
            ("scope", &self.scope),
            ("effect", &self.effect),
            ("file", &self.file),
        ] {
            if !v.trim().is_empty() {
                s.append_pair(k, v.trim());
            }
        }
        s.finish()
    }
}

/// `GET /console/policies`.
pub(super) async fn list(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    Query(f): Query<Filters>,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Policies).await?;
    let snapshot = state.pdp.policies().snapshot();
    let body = render(&state, move || {
        let hits: Result<Vec<Hit>, String> = query::query(&snapshot, &f.query());
        let base = format!("/console/policies?{}", f.as_query());
        let field = |name: &'static str, label: &'static str, value: &str, hint: &'static str| {
            html! {
                div { label for=(name) { (label) }
                    input id=(name) name=(name) value=(value) placeholder=(hint); }
            }
        };
        html! {
            h1 { "Policies" }
            form.grid.card method="get" action="/console/policies" {
                (field("annotation", "annotation", &f.annotation, "tag=healthcare"))
                (field("attribute", "attribute read", &f.attribute, "nationality"))
                (field("value", "value compared", &f.value, "HR"))
                (field("entity", "entity named", &f.entity, "User::alice"))
                (field("action", "action", &f.action, "GET"))
                (field("endpoint", "applies to request", &f.endpoint, "GET /item/42"))
                (field("scope", "scope", &f.scope, "hr.health.read"))
                div { label for="effect" { "effect" }
                    select id="effect" name="effect" {
                        option value="" selected[f.effect.is_empty()] { "any" }
                        option value="permit" selected[f.effect == "permit"] { "permit" }
                        option value="forbid" selected[f.effect == "forbid"] { "forbid" }
                    }
                }
                (field("file", "file", &f.file, "hr*.cedar"))
                div { button.go type="submit" { "Find policies" } }
            }
            @match hits {
                Err(e) => (view::error(&e)),
                Ok(hits) => {
                    p.muted { (hits.len()) " of " (snapshot.policy_count()) " policies match." }
                    (view::pager(&base, f.offset, PER_PAGE, hits.len()))
                    table #policies {
                        thead { tr { th { "policy" } th { "effect" } th { "file" } th { "annotations" } th { "matched" } } }
                        tbody {
                            @for h in hits.iter().skip(f.offset).take(PER_PAGE) {
                                tr {
                                    td { a href={ "/console/policies/" (encode(&h.facts.id)) } { (h.facts.id) } }
                                    td { (view::effect(h.facts.effect)) }
                                    td.mono { (h.facts.file) ":" (h.facts.line) }
                                    td { @for (k, v) in &h.facts.annotations { @if k != "id" { span.pill { "@" (k) "(" (v) ")" } } } }
                                    td.muted { (h.why.join("; ")) }
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

/// `GET /console/policies/{id}`.
pub(super) async fn one(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Policies).await?;
    let snapshot = state.pdp.policies().snapshot();
    let found = render(&state, move || {
        let facts = snapshot
            .query_index()
            .facts()
            .iter()
            .find(|f| f.id == id)?
            .clone();
        let pid = cedar_policy::PolicyId::new(&id);
        let routes: Vec<String> = snapshot
            .routes
            .endpoints()
            .iter()
            .filter(|e| e.policy_ids.binary_search(&pid).is_ok() || e.policy_ids.contains(&pid))
            .map(|e| e.template.clone())
            .collect();
        let scopes = snapshot
            .meta
            .get(&pid)
            .and_then(|m| m.scopes.as_ref())
            .map(|s| s.source().to_owned());
        let cases = crate::audit::cases::test_files(&snapshot.source)
            .and_then(|files| crate::audit::cases::run(&snapshot, &files));
        let properties = crate::audit::properties::load(&snapshot.source, &snapshot.schema);
        Some(html! {
            h1 { "Policy " code { (facts.id) } }
            p { (view::effect(facts.effect)) " " span.mono { (facts.file) ":" (facts.line) }
                @if let Some(s) = &scopes { " · needs scopes " code { (s) } } }
            p { @for (k, v) in &facts.annotations { span.pill { "@" (k) "(\"" (v) "\")" } } }
            pre #source { (facts.text) }
            h2 { "Routes it applies to" }
            @if routes.is_empty() { p.muted { "No route of the index (it decides named resources, or every route through a wildcard resource)." } }
            @else { p { @for r in &routes { a.pill href={ "/console/routes#" (encode(r)) } { (r) } } } }
            h2 { "Test cases it determines" }
            @match &cases {
                Err(e) => (view::error(&e.to_string())),
                Ok(results) => {
                    @let mine: Vec<_> = results.iter().filter(|c| c.determining.contains(&facts.id)).collect();
                    @if mine.is_empty() { p.warn { "No test case has this policy determining its decision." } }
                    @else {
                        ul { @for c in mine {
                            li { (c.name) " " span.muted.mono { (c.file.strip_prefix(&snapshot.source).unwrap_or(&c.file).display()) }
                                @if !c.passed() { " " span.deny { "failing" } } }
                        } }
                    }
                }
            }
            h2 { "Properties bounding its routes" }
            @match &properties {
                Err(e) => (view::error(&e.to_string())),
                Ok(props) => {
                    @let mine: Vec<_> = props.iter().filter_map(|p| bounds(&p.policy, &snapshot, &routes, facts.actions.as_deref()).map(|how| (p, how))).collect();
                    @if mine.is_empty() { p.muted { "None." } }
                    @else { ul { @for (p, how) in mine {
                        li { code { (p.id) } " " span.muted.mono { (p.file) ":" (p.line) } " " span.muted { "(" (how) ")" } }
                    } } }
                    p { a href="/console/proofs" { "Prove the properties →" } }
                }
            }
        })
    })
    .await;
    let body = found?;
    Ok(match body {
        Some(body) => visit.page(&state, body),
        None => visit.not_found(&state, "No policy of the live set has this id."),
    })
}

/// Whether a property bounds requests on some of `routes` that a policy of `actions`
/// (`None`: any) can decide, and how: `this route`, `routes under …`, `every route`.
fn bounds(
    property: &cedar_policy::Policy,
    snapshot: &crate::policy::PolicySnapshot,
    routes: &[String],
    actions: Option<&[String]>,
) -> Option<String> {
    use cedar_policy::{ActionConstraint, ResourceConstraint};
    let action_ids: Option<Vec<String>> = match property.action_constraint() {
        ActionConstraint::Any => None,
        ActionConstraint::Eq(a) => Some(vec![a.id().unescaped().to_owned()]),
        ActionConstraint::In(list) => {
            Some(list.iter().map(|a| a.id().unescaped().to_owned()).collect())
        }
    };
    let actions_meet = match (&action_ids, actions) {
        (Some(p), Some(mine)) => p.iter().any(|a| mine.contains(a)),
        (Some(p), None) => p.iter().any(|a| a.chars().all(|c| c.is_ascii_uppercase())),
        (None, _) => true,
    };
    if !actions_meet || routes.is_empty() {
        return None;
    }
    match property.resource_constraint() {
        ResourceConstraint::Eq(uid) => {
            let id = uid.id().unescaped();
            (uid.type_name().basename() == crate::policy::ENDPOINT_TYPE
                && routes.iter().any(|r| r == id))
            .then(|| "this route".to_owned())
        }
        ResourceConstraint::In(uid) => routes
            .iter()
            .filter_map(|r| snapshot.routes.by_template(r))
            .any(|e| e.entities.iter().any(|x| x.uid() == uid))
            .then(|| format!("routes in {uid}")),
        ResourceConstraint::Is(ty) | ResourceConstraint::IsIn(ty, _) => {
            (ty.basename() == crate::policy::ENDPOINT_TYPE).then(|| "every route".to_owned())
        }
        ResourceConstraint::Any => Some("every route".to_owned()),
    }
}

/// What a path segment or fragment keeps as is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment or fragment, percent-encoded.
pub(super) fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}
