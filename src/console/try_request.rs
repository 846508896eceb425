//! Try: a request builder answered with the decision, the explanation of every policy of
//! the route's slice (with the first failed condition) and the outputs. The request is
//! decided by the one decision entry with an explanation, unlogged (it is a question about
//! the policies, not traffic). With the development issuer on, a token can be minted here
//! for any subject, scopes and claims.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{admit, admit_post, view, ConsoleState, Page, Screen};
use crate::decision::{AuthzRequest, Outcome};

/// The request builder.
#[derive(Debug, Deserialize)]
pub(super) struct TryForm {
    #[serde(default)]
    csrf: String,
    /// A token to decide with as is.
    #[serde(default)]
    token: String,
    /// Or a development token for this subject…
    #[serde(default)]
    sub: String,
    /// …issued to this client…
    #[serde(default)]
    client_id: String,
    /// …with these scopes (space-separated)…
    #[serde(default)]
    scopes: String,
    /// …and these claims (JSON object).
    #[serde(default)]
    claims: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    path: String,
    /// The caller's context (JSON object).
    #[serde(default)]
    context: String,
}

impl Default for TryForm {
    fn default() -> Self {
        Self {
            csrf: String::new(),
            token: String::new(),
            sub: "alice".into(),
            client_id: "web".into(),
            scopes: "read".into(),
            claims: String::new(),
            method: "GET".into(),
            path: "/item/42".into(),
            context: r#"{"ip": "192.0.2.10"}"#.into(),
        }
    }
}

fn form(f: &TryForm, csrf: &str, can_mint: bool) -> Markup {
    let input = |name: &'static str, label: &'static str, value: &str| {
        html! { div { label for=(name) { (label) } input id=(name) name=(name) value=(value); } }
    };
    html! {
        h1 { "Try a request" }
        form.grid.card method="post" action="/console/try" {
            (view::csrf(csrf))
            @if can_mint {
                (input("sub", "subject (development token)", &f.sub))
                (input("client_id", "client", &f.client_id))
                (input("scopes", "scopes (space-separated)", &f.scopes))
                (input("claims", "further claims (JSON)", &f.claims))
            }
            div style="grid-column:1/-1" { label for="token" { "or a bearer token (used as is; shown nowhere)" }
                input #token name="token" type="password" autocomplete="off"; }
            (input("method", "method", &f.method))
            (input("path", "path", &f.path))
            div style="grid-column:1/-1" { label for="context" { "context (JSON)" }
                textarea #context name="context" rows="2" { (f.context) } }
            div { button.go #decide type="submit" { "Decide" } }
        }
        @if !can_mint { p.muted { "The development issuer is off on this server: paste a token to try a request." } }
    }
}

/// `GET /console/try`.
pub(super) async fn show(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Page {
    let visit = admit(&state, &headers, &uri, Screen::Try).await?;
    let body = form(&TryForm::default(), visit.csrf(), state.dev_key.is_some());
    Ok(visit.page(&state, body))
}

/// `POST /console/try`.
pub(super) async fn decide(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    uri: Uri,
    axum::Form(f): axum::Form<TryForm>,
) -> Page {
    let visit = admit_post(&state, &headers, &uri, Screen::Try, &f.csrf).await?;
    let answer = match ask(&state, &f).await {
        Ok(a) => a,
        Err(e) => view::error(&e),
    };
    let body = html! { (form(&f, visit.csrf(), state.dev_key.is_some())) (answer) };
    Ok(visit.page(&state, body))
}

fn object(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("the {what} must be a JSON object")),
        Err(e) => Err(format!("the {what} is not JSON: {e}")),
    }
}

async fn ask(state: &ConsoleState, f: &TryForm) -> Result<Markup, String> {
    let context = object(&f.context, "context")?;
    let token = if !f.token.trim().is_empty() {
        f.token.trim().to_owned()
    } else if f.sub.trim().is_empty() {
        String::new()
    } else {
        let Some((key, issuer, audience)) = &state.dev_key else {
            return Err("The development issuer is off: paste a token.".into());
        };
        let extra = object(&f.claims, "claims")?;
        crate::token::mint::mint(
            key,
            issuer,
            audience,
            &crate::token::mint::DevTokenRequest {
                client_id: f.client_id.trim().to_owned(),
                sub: Some(f.sub.trim().to_owned()),
                scopes: f.scopes.split_whitespace().map(str::to_owned).collect(),
                ttl: Duration::from_secs(300),
                extra,
            },
        )
        .map_err(|e| format!("cannot mint a development token: {e}"))?
    };
    let answer = state
        .pdp
        .authorize_unlogged(AuthzRequest {
            token: &token,
            subject: None,
            method: f.method.trim(),
            path: f.path.trim(),
            resource: None,
            context: &context,
            explain: true,
            client_cert_sha256: "",
        })
        .await;
    let v = &answer.verdict;
    let o = &v.outputs;
    Ok(html! {
        div.card #verdict {
            h2 { "Decision: " (view::decision(v.allowed)) }
            p { "reason " code #reason { (v.reason.as_str()) }
                @if let Some(r) = &v.route { " · route " code { (r) } }
                @if let Some(p) = &answer.principal { " · principal " code { (p.entity) } }
                " · revision " code { (answer.policy_revision) } }
            @if !v.policy_ids.is_empty() { p { "determined by " @for p in &v.policy_ids { a.pill href={ "/console/policies/" (super::policies::encode(p)) } { (p) } } } }
            @if !v.required_scopes.is_empty() { p { "would be allowed with scopes " code { (v.required_scopes.join(" ")) } } }
            @for e in &v.errors { p.deny { (e) } }
        }
        @if !v.explanation.is_empty() {
            h2 { "Every policy of the route" }
            table #explanation {
                thead { tr { th { "policy" } th { "effect" } th { "outcome" } th { "why" } th { "file" } } }
                tbody { @for x in &v.explanation {
                    tr {
                        td { a href={ "/console/policies/" (super::policies::encode(&x.policy_id)) } { (x.policy_id) } }
                        td { (view::effect(if x.effect == cedar_policy::Effect::Permit { "permit" } else { "forbid" })) }
                        td { @match x.outcome {
                            Outcome::Satisfied => span.allow { "applies" },
                            Outcome::NotSatisfied => span.muted { "does not apply" },
                            Outcome::Error => span.deny { "error" },
                        } }
                        td {
                            @if !x.scope_matched { span.muted { "principal, action or resource do not match" } }
                            @if let Some(c) = &x.failed_condition { code.failed-condition { (c) } }
                            @if !x.missing_scopes.is_empty() { div { "missing scopes " code { (x.missing_scopes.join(" ")) } } }
                            @if let Some(e) = &x.error { div.deny { (e) } }
                        }
                        td.mono { (x.file) ":" (x.line) }
                    }
                } }
            }
        }
        @if !o.headers.is_empty() || !o.metadata.is_empty() || o.deny_status.is_some() {
            h2 { "Outputs" }
            pre #outputs { (serde_json::to_string_pretty(o).unwrap_or_default()) }
        }
    })
}
