//! The workbench: a web console on the HTTP listener (`/console`) where auditors and policy
//! authors see, question and prove the live policies. Part of the control plane (a module
//! of its own after `authzen`, whose search its Who-can screen runs): every screen is
//! rendered on the control plane's workers, proofs and searches run within their budgets,
//! and nothing here touches the threads that decide.
//!
//! Who may use which screen is itself a decision: each screen is an action on
//! `Console::"workbench"` asked of the decision point with the signed-in person's ID token
//! (OpenID Connect, code flow with PKCE, [`oidc`]), so the console is governed by the same
//! policies as any API. In development mode (loopback, no provider) everyone is the
//! configured development user with a development token.

mod access;
mod activity;
mod decisions;
mod oidc;
mod overview;
mod policies;
mod proofs;
mod routes;
mod session;
mod try_request;
mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Map;

use crate::audit::analysis::Analysis;
use crate::bundle::source::BundleSource;
use crate::config::Config;
use crate::decision::{AuthzRequest, EntityRef, Pdp};
use crate::token::keys::SigningKey;

pub(crate) use activity::Activity;
use session::{Session, Sessions};

/// The entity type every screen's action is on.
const CONSOLE_TYPE: &str = "Console";
/// The one console entity.
const CONSOLE_ID: &str = "workbench";

/// A screen of the console, and the action its use is decided as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Screen {
    Overview,
    Policies,
    Routes,
    Access,
    Try,
    Proofs,
    Decisions,
}

impl Screen {
    const ALL: [Screen; 7] = [
        Self::Overview,
        Self::Policies,
        Self::Routes,
        Self::Access,
        Self::Try,
        Self::Proofs,
        Self::Decisions,
    ];

    /// The Cedar action of using it.
    fn action(self) -> &'static str {
        match self {
            Self::Overview => "ViewOverview",
            Self::Policies => "ViewPolicies",
            Self::Routes => "ViewRoutes",
            Self::Access => "SearchAccess",
            Self::Try => "TryRequest",
            Self::Proofs => "RunProof",
            Self::Decisions => "ViewDecisions",
        }
    }

    /// Its tab's title.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Self::Overview => "Overview",
            Self::Policies => "Policies",
            Self::Routes => "Routes",
            Self::Access => "Who can",
            Self::Try => "Try",
            Self::Proofs => "Proofs",
            Self::Decisions => "Decisions",
        }
    }

    /// Where it is.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Overview => "/console",
            Self::Policies => "/console/policies",
            Self::Routes => "/console/routes",
            Self::Access => "/console/access",
            Self::Try => "/console/try",
            Self::Proofs => "/console/proofs",
            Self::Decisions => "/console/decisions",
        }
    }
}

/// How people sign in.
enum SignIn {
    /// At an OpenID provider.
    Provider(oidc::Provider),
    /// Development mode: as `user` of `department`, with a development token.
    Development {
        key: Arc<SigningKey>,
        issuer: String,
        audience: String,
        client_id: String,
        user: String,
        department: String,
    },
}

/// Everything the console's screens read.
pub(crate) struct ConsoleState {
    pdp: Arc<Pdp>,
    workers: Arc<crate::control::Workers>,
    proof_budget: Duration,
    searcher: crate::authzen::Searcher,
    bundles: Option<Arc<BundleSource>>,
    sessions: Sessions,
    sign_in: Option<SignIn>,
    activity: Arc<Activity>,
    /// The last analysis of the live set (its version, and what it found), for Routes.
    analysis: std::sync::Mutex<Option<(String, Arc<Analysis>)>>,
    /// `Console::"workbench"`, the resource of every screen's decision.
    console: EntityRef,
    /// Whether the development issuer is on (Try can mint tokens).
    dev_key: Option<(Arc<SigningKey>, String, String)>,
}

/// What the server hands the console.
pub(crate) struct ConsoleParts {
    pub(crate) pdp: Arc<Pdp>,
    pub(crate) workers: Arc<crate::control::Workers>,
    pub(crate) searcher: crate::authzen::Searcher,
    pub(crate) bundles: Option<Arc<BundleSource>>,
    pub(crate) dev_key: Option<Arc<SigningKey>>,
    pub(crate) activity: Arc<Activity>,
}

impl ConsoleState {
    /// The console as `config` describes it; logs how people sign in.
    pub(crate) fn new(config: &Config, parts: ConsoleParts) -> Self {
        let console = &config.console;
        let redirect_url = console.redirect_url.clone().unwrap_or_else(|| {
            format!(
                "{}/console/callback",
                config.oauth.issuer.trim_end_matches('/')
            )
        });
        let secure = redirect_url.starts_with("https://");
        let dev_issuer = parts.dev_key.clone().map(|k| {
            (
                k,
                config.dev_issuer.issuer.clone(),
                config.dev_issuer.audience.clone(),
            )
        });
        let sign_in = match (&console.issuer, config.console_dev_mode(), &dev_issuer) {
            (_, true, Some((key, issuer, audience))) => {
                tracing::warn!(
                    user = %console.dev_user,
                    "the workbench (/console) is in development mode: no sign-in, everyone is the development user (`[console] dev_mode = false` or an `issuer` turns it off)"
                );
                Some(SignIn::Development {
                    key: key.clone(),
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                    client_id: console.client_id.clone(),
                    user: console.dev_user.clone(),
                    department: console.dev_department.clone(),
                })
            }
            (Some(issuer), false, _) => {
                if !secure {
                    tracing::warn!(redirect_url = %redirect_url, "the workbench is reached over plain HTTP: its session cookie is not `Secure`");
                }
                Some(SignIn::Provider(oidc::Provider::new(
                    console,
                    issuer,
                    redirect_url,
                    parts.pdp.verifier().clone(),
                )))
            }
            _ => {
                tracing::info!("the workbench (/console) has no way to sign in, so it admits nobody: set `[console] issuer` (an OpenID provider), or `[console] enabled = false`");
                None
            }
        };
        Self {
            pdp: parts.pdp,
            workers: parts.workers,
            proof_budget: Duration::from_secs(config.admin.proof_timeout_seconds),
            searcher: parts.searcher,
            bundles: parts.bundles,
            sessions: Sessions::new(
                console.max_sessions,
                Duration::from_secs(console.session_minutes * 60),
                secure,
            ),
            sign_in,
            activity: parts.activity,
            analysis: std::sync::Mutex::new(None),
            console: EntityRef {
                uid: crate::decision::context::entity_uid(CONSOLE_TYPE, CONSOLE_ID)
                    .unwrap_or_else(|e| unreachable!("{e}")),
                properties: Map::new(),
            },
            dev_key: dev_issuer,
        }
    }

    fn dev_mode(&self) -> bool {
        matches!(self.sign_in, Some(SignIn::Development { .. }))
    }
}

/// The console's routes.
pub(crate) fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .route("/console", get(overview::show))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/policies", get(policies::list))
        .route("/console/policies/{id}", get(policies::one))
        .route("/console/routes", get(routes::show))
        .route("/console/routes/analyze", post(routes::analyze))
        .route("/console/access", get(access::show).post(access::search))
        .route(
            "/console/try",
            get(try_request::show).post(try_request::decide),
        )
        .route("/console/proofs", get(proofs::show))
        .route("/console/proofs/properties", post(proofs::properties))
        .route("/console/proofs/analyze", post(proofs::analyze))
        .route(
            "/console/proofs/compare",
            post(proofs::compare).layer(axum::extract::DefaultBodyLimit::max(
                proofs::MAX_UPLOAD_BYTES,
            )),
        )
        .route("/console/decisions", get(decisions::list))
        .route("/console/decisions/{id}", get(decisions::one))
        .route("/console/login", get(login))
        .route("/console/callback", get(callback))
        .route("/console/logout", post(logout))
        .with_state(state)
}

/// What a screen's handler answers: its page, or (through `?`) the page that refused or
/// redirected the visit.
type Page = Result<Response, Response>;

/// A person admitted to a screen.
pub(crate) struct Visit {
    session: Arc<Session>,
    allowed: Vec<Screen>,
    screen: Screen,
    revision: String,
}

impl Visit {
    /// The page of this visit around `body`.
    fn page(&self, state: &ConsoleState, body: Markup) -> Response {
        let shell = view::Shell {
            screen: self.screen,
            allowed: &self.allowed,
            who: &self.session.who,
            revision: &self.revision,
            csrf: &self.session.csrf,
            dev_mode: state.dev_mode(),
        };
        no_store(view::page(&shell, body).into_response())
    }

    /// A 404 page saying what was not found.
    fn not_found(&self, state: &ConsoleState, what: &str) -> Response {
        let mut r = self.page(state, view::error(what));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    }

    /// The page around a body [`render`] built (or its failure).
    fn rendered(&self, state: &ConsoleState, body: Result<Markup, Response>) -> Response {
        match body {
            Ok(body) => self.page(state, body),
            Err(r) => r,
        }
    }

    /// The session's CSRF token.
    fn csrf(&self) -> &str {
        &self.session.csrf
    }
}

/// Pages are personal: never cached, never framed.
fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert("x-frame-options", header::HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        "referrer-policy",
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// Admits the request to `screen`: its session, and a decision permitting the screen's
/// action on `Console::"workbench"` for the session's principal. Without a session: to the
/// sign-in (a development session is started on the spot); refused: a 403 page that says
/// which action the policies did not permit.
async fn admit(
    state: &ConsoleState,
    headers: &HeaderMap,
    uri: &Uri,
    screen: Screen,
) -> Result<Visit, Response> {
    let Some(session) = state.sessions.current(headers) else {
        return Err(to_sign_in(uri));
    };
    let console = &state.console;
    let context = Map::new();
    let ask = |action: &'static str| AuthzRequest {
        token: &session.token,
        subject: None,
        method: action,
        path: "",
        resource: Some(console),
        context: &context,
        explain: false,
        client_cert_sha256: "",
    };
    // The screen itself is a logged decision; the tabs shown are decided unlogged.
    let answer = state.pdp.authorize(ask(screen.action())).await;
    if answer.verdict.reason == crate::decision::Reason::InvalidToken {
        // Expired or no longer trusted: sign in again.
        return Err(to_sign_in(uri));
    }
    let mut allowed = Vec::new();
    for s in Screen::ALL {
        let ok = if s == screen {
            answer.verdict.allowed
        } else {
            state
                .pdp
                .authorize_unlogged(ask(s.action()))
                .await
                .verdict
                .allowed
        };
        if ok {
            allowed.push(s);
        }
    }
    let visit = Visit {
        session,
        allowed,
        screen,
        revision: answer.policy_revision.clone(),
    };
    if !answer.verdict.allowed {
        let why = answer.verdict.errors.join("; ");
        let body = html! {
            h1 { "Not permitted" }
            div.error role="alert" {
                "Your policies do not permit " code { "Action::\"" (screen.action()) "\"" }
                " on " code { "Console::\"workbench\"" } " for " code { (visit.session.who) } "."
            }
            p.muted { "Decision " code { (answer.decision_id) } ": " (answer.verdict.reason.as_str())
                @if !why.is_empty() { " (" (why) ")" } }
        };
        let mut r = visit.page(state, body);
        *r.status_mut() = StatusCode::FORBIDDEN;
        return Err(r);
    }
    Ok(visit)
}

/// Admits a form post: the screen's decision, and the session's CSRF token in the form.
async fn admit_post(
    state: &ConsoleState,
    headers: &HeaderMap,
    uri: &Uri,
    screen: Screen,
    csrf: &str,
) -> Result<Visit, Response> {
    let Some(session) = state.sessions.current(headers) else {
        return Err(to_sign_in(uri));
    };
    if !session.csrf_matches(csrf) {
        return Err(forged_form());
    }
    admit(state, headers, uri, screen).await
}

/// The answer to a form that does not carry the session's CSRF token.
fn forged_form() -> Response {
    no_store(
        (
            StatusCode::FORBIDDEN,
            view::bare(
                "Form expired",
                view::error("This form does not belong to your session: open the page again."),
            ),
        )
            .into_response(),
    )
}

fn server_error() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "the console failed").into_response()
}

fn to_sign_in(uri: &Uri) -> Response {
    let next = uri.path();
    let next = if next.starts_with("/console") {
        next
    } else {
        "/console"
    };
    let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    no_store(Redirect::to(&format!("/console/login?next={encoded}")).into_response())
}

/// Runs `render` on the control plane's workers (a page of 10 000 policies is built there,
/// never on a thread that decides).
async fn render<T: Send + 'static>(
    state: &ConsoleState,
    render: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    state
        .workers
        .blocking(render)
        .await
        .map_err(|_| server_error())
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// `GET /console/login`: to the provider (or, in development mode, a session at once).
async fn login(State(state): State<Arc<ConsoleState>>, Query(q): Query<LoginQuery>) -> Response {
    let next = q
        .next
        .filter(|n| {
            n.starts_with("/console") && !n.starts_with("//") && !n.contains(['\\', '\r', '\n'])
        })
        .unwrap_or_else(|| "/console".into());
    match &state.sign_in {
        None => no_store(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                view::bare(
                    "No sign-in",
                    view::error("This server has no way to sign in to the workbench: set `[console] issuer`, or use development mode on loopback."),
                ),
            )
                .into_response(),
        ),
        Some(SignIn::Development {
            key,
            issuer,
            audience,
            client_id,
            user,
            department,
        }) => {
            let mut extra = Map::new();
            extra.insert("department".into(), department.clone().into());
            let ttl = Duration::from_secs(3600);
            let minted = crate::token::mint::mint(
                key,
                issuer,
                audience,
                &crate::token::mint::DevTokenRequest {
                    client_id: client_id.clone(),
                    sub: Some(user.clone()),
                    scopes: Vec::new(),
                    ttl,
                    extra,
                },
            );
            let Ok(token) = minted else { return server_error() };
            let Some(cookie) = state.sessions.start(token, format!("User::\"{user}\""), ttl) else {
                return server_error();
            };
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().append(header::SET_COOKIE, cookie);
            no_store(r)
        }
        Some(SignIn::Provider(provider)) => {
            let Some((state_value, pending, cookie)) = state.sessions.begin_sign_in(next) else {
                return server_error();
            };
            match provider
                .authorization_url(&state_value, &pending.nonce, &pending.verifier)
                .await
            {
                Ok(url) => {
                    let mut r = Redirect::to(&url).into_response();
                    r.headers_mut().append(header::SET_COOKIE, cookie);
                    no_store(r)
                }
                Err(e) => sign_in_failed(&e.to_string()),
            }
        }
    }
}

fn sign_in_failed(why: &str) -> Response {
    tracing::warn!(error = %why, "workbench sign-in failed");
    no_store(
        (
            StatusCode::BAD_GATEWAY,
            view::bare(
                "Sign-in failed",
                html! { (view::error(why)) p { a href="/console/login" { "Try again" } } },
            ),
        )
            .into_response(),
    )
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /console/callback`: the provider sends the browser back with a code.
async fn callback(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(SignIn::Provider(provider)) = &state.sign_in else {
        return sign_in_failed("this server signs nobody in through a provider");
    };
    if let Some(e) = q.error {
        let said: String = format!("{e}: {}", q.error_description.unwrap_or_default())
            .chars()
            .take(200)
            .collect();
        return sign_in_failed(&format!(
            "the provider refused: {}",
            crate::telemetry::printable(&said)
        ));
    }
    let (Some(code), Some(state_value)) = (q.code, q.state) else {
        return sign_in_failed("the callback has no `code` and `state`");
    };
    let Some(pending) = state.sessions.finish_sign_in(&headers, &state_value) else {
        return sign_in_failed("this sign-in was not started in this browser, or it took too long");
    };
    match provider
        .redeem(&code, &pending.verifier, &pending.nonce)
        .await
    {
        Ok((id_token, verified)) => {
            let left = verified.exp.saturating_sub(crate::clock::now());
            let who = verified.identity.entity();
            let Some(cookie) =
                state
                    .sessions
                    .start(id_token, who.clone(), Duration::from_secs(left))
            else {
                return server_error();
            };
            tracing::info!(principal = %crate::telemetry::printable(&who), "signed in to the workbench");
            let mut r = Redirect::to(&pending.next).into_response();
            r.headers_mut().append(header::SET_COOKIE, cookie);
            r.headers_mut()
                .append(header::SET_COOKIE, state.sessions.clear_sign_in());
            no_store(r)
        }
        Err(e) => sign_in_failed(&e.to_string()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `POST /console/logout`.
async fn logout(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(session) = state.sessions.current(&headers) {
        if !session.csrf_matches(&form.csrf) {
            return (StatusCode::FORBIDDEN, "not this session's form").into_response();
        }
    }
    let mut r = no_store(
        view::bare(
            "Signed out",
            html! { p { "You are signed out. " a href="/console" { "Sign in again" } } },
        )
        .into_response(),
    );
    r.headers_mut()
        .append(header::SET_COOKIE, state.sessions.end(&headers));
    r
}
