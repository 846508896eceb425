//! The `[console]` section: the workbench, a web console on the HTTP listener (`/console`),
//! and how a person signs in to it.

use serde::Deserialize;

/// The workbench and its sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve `/console` on the HTTP listener (default on).
    pub enabled: bool,
    /// The OpenID provider people sign in at (its exact `iss`). Its ID tokens are verified
    /// like any token, so an `[[issuers]]` entry with this issuer must list `client_id` in
    /// its audiences. Unset: no sign-in; the console then serves only in development mode.
    pub issuer: Option<String>,
    /// The console's client id at the provider.
    pub client_id: String,
    /// The client secret for a confidential client (sent with HTTP Basic at the token
    /// endpoint); unset for a public client, which PKCE alone protects.
    pub client_secret: Option<String>,
    /// Where the provider sends people back: `<public URL>/console/callback`. Unset:
    /// `[oauth] issuer` (the HTTP listener's own URL unless configured) + `/console/callback`.
    /// An `https` URL makes the session cookie `Secure` and `__Host-` prefixed.
    pub redirect_url: Option<String>,
    /// Scopes asked for at sign-in (`openid` is always asked).
    pub scopes: Vec<String>,
    /// Development mode: no sign-in, every visitor is `dev_user` with a development token
    /// (needs the development issuer). Unset: on only when no `issuer` is set and the HTTP
    /// listener is on loopback; always logged as a warning.
    pub dev_mode: Option<bool>,
    /// The user development mode signs everyone in as.
    pub dev_user: String,
    /// The `department` claim of the development user (what the bundled console policies
    /// read).
    pub dev_department: String,
    /// Longest a session lasts, in minutes (it also ends when its ID token expires).
    pub session_minutes: u64,
    /// Sessions kept at most; the oldest is signed out past it.
    pub max_sessions: usize,
    /// Recent decisions the Decisions screen keeps in memory (the newest first).
    pub recent_decisions: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            issuer: None,
            client_id: "arbiter-console".into(),
            client_secret: None,
            redirect_url: None,
            scopes: vec!["profile".into(), "email".into()],
            dev_mode: None,
            dev_user: "developer".into(),
            dev_department: "Security".into(),
            session_minutes: 8 * 60,
            max_sessions: 10_000,
            recent_decisions: 10_000,
        }
    }
}

impl ConsoleConfig {
    /// What is wrong with the section, if anything.
    pub(super) fn invalid(&self) -> Option<String> {
        if self.client_id.trim().is_empty() {
            return Some("[console] `client_id` must not be empty".into());
        }
        if self.session_minutes == 0 || self.session_minutes > 7 * 24 * 60 {
            return Some("[console] `session_minutes` must be 1 to 10080".into());
        }
        if self.max_sessions == 0 || self.recent_decisions > 1_000_000 {
            return Some(
                "[console] `max_sessions` must be at least 1 and `recent_decisions` at most 1000000"
                    .into(),
            );
        }
        if let Some(url) = &self.redirect_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Some("[console] `redirect_url` must be an http(s) URL".into());
            }
        }
        None
    }
}

impl super::Config {
    /// What is wrong with the console's sign-in given the trusted issuers: its provider must
    /// be one of them, with the console's client id among the audiences (the ID token is
    /// verified like any token).
    pub(super) fn console_invalid(&self) -> Option<String> {
        let console = &self.console;
        let issuer = console.issuer.as_ref().filter(|_| console.enabled)?;
        let trusted = self.issuers.iter().find(|i| &i.issuer == issuer);
        match trusted {
            None => Some(format!(
                "[console] issuer `{issuer}` needs an [[issuers]] entry with that issuer (its ID tokens are verified like any token)"
            )),
            Some(i) if !i.audiences.contains(&console.client_id) => Some(format!(
                "[console] the [[issuers]] entry of `{issuer}` must list the console's client id `{}` in its audiences",
                console.client_id
            )),
            Some(_) => None,
        }
    }

    /// How people sign in to the workbench, in a phrase (for `--check-config`).
    pub fn console_sign_in(&self) -> String {
        match (&self.console.issuer, self.console.enabled) {
            (_, false) => "off".into(),
            (Some(issuer), true) => {
                format!("sign-in at {issuer} as client {}", self.console.client_id)
            }
            (None, true) if self.console_dev_mode() => {
                "development mode: no sign-in, everyone is the development user".into()
            }
            (None, true) => "no sign-in configured: it admits nobody".into(),
        }
    }

    /// Whether the workbench skips sign-in (everyone is the development user): as
    /// configured, else only without an OpenID provider and on a loopback HTTP listener.
    pub fn console_dev_mode(&self) -> bool {
        self.console
            .dev_mode
            .unwrap_or_else(|| self.console.issuer.is_none() && self.http_addr.ip().is_loopback())
    }
}
