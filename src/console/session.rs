//! Who is signed in to the workbench: server-side sessions behind an HttpOnly, SameSite
//! cookie (Secure and `__Host-` prefixed when the console is reached over HTTPS), the
//! sign-ins in progress, and the CSRF token every form carries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// How long a sign-in may take at the provider.
const SIGN_IN_WINDOW: Duration = Duration::from_secs(600);
/// Sign-ins in progress kept at most (the oldest are forgotten past it).
const MAX_PENDING: usize = 10_000;

/// A signed-in person.
#[derive(Debug)]
pub(crate) struct Session {
    /// The ID token (or, in development mode, a development token) every screen's decision
    /// is asked with.
    pub(crate) token: String,
    /// What the header shows: the principal.
    pub(crate) who: String,
    /// The token every form of this session sends back.
    pub(crate) csrf: String,
    /// When the session ends (the token's `exp`, or the configured length).
    pub(crate) until: Instant,
}

/// A sign-in in progress: what the callback must see again.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The PKCE verifier whose S256 challenge went to the provider.
    pub(crate) verifier: String,
    /// The nonce the ID token must carry.
    pub(crate) nonce: String,
    /// The console page to return to.
    pub(crate) next: String,
    started: Instant,
}

/// The sessions and sign-ins of one server. Keyed by the SHA-256 of the cookie's value, so
/// memory never holds a usable session id.
pub(crate) struct Sessions {
    sessions: quick_cache::sync::Cache<[u8; 32], Arc<Session>>,
    pending: quick_cache::sync::Cache<[u8; 32], Pending>,
    lifetime: Duration,
    secure: bool,
}

impl Sessions {
    /// At most `max` sessions of at most `lifetime`; `secure` when the console's public URL
    /// is `https`.
    pub(crate) fn new(max: usize, lifetime: Duration, secure: bool) -> Self {
        Self {
            sessions: quick_cache::sync::Cache::new(max.max(1)),
            pending: quick_cache::sync::Cache::new(MAX_PENDING),
            lifetime,
            secure,
        }
    }

    fn session_cookie(&self) -> &'static str {
        if self.secure {
            "__Host-arbiter-console"
        } else {
            "arbiter-console"
        }
    }

    fn login_cookie(&self) -> &'static str {
        if self.secure {
            "__Host-arbiter-login"
        } else {
            "arbiter-login"
        }
    }

    /// The session the request's cookie names, if it is still valid.
    pub(crate) fn current(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        let id = cookie(headers, self.session_cookie())?;
        let key = digest(id);
        let session = self.sessions.get(&key)?;
        if session.until <= Instant::now() {
            self.sessions.remove(&key);
            return None;
        }
        Some(session)
    }

    /// Starts a session for `token` that lasts until `expires_in` from now at most; the
    /// `Set-Cookie` value that carries it (`None`: no randomness to make one from).
    pub(crate) fn start(
        &self,
        token: String,
        who: String,
        expires_in: Duration,
    ) -> Option<HeaderValue> {
        let id = random_token()?;
        let session = Session {
            token,
            who,
            csrf: random_token()?,
            until: Instant::now() + expires_in.min(self.lifetime),
        };
        self.sessions.insert(digest(&id), Arc::new(session));
        Some(self.set_cookie(self.session_cookie(), &id, "Lax", None))
    }

    /// Ends the request's session; the `Set-Cookie` value that clears it.
    pub(crate) fn end(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(id) = cookie(headers, self.session_cookie()) {
            self.sessions.remove(&digest(id));
        }
        self.set_cookie(self.session_cookie(), "", "Lax", Some(0))
    }

    /// Records a sign-in about to go to the provider: its `state` and the cookie that binds
    /// it to this browser.
    pub(crate) fn begin_sign_in(&self, next: String) -> Option<(String, Pending, HeaderValue)> {
        let state = random_token()?;
        let pending = Pending {
            verifier: random_token()?,
            nonce: random_token()?,
            next,
            started: Instant::now(),
        };
        self.pending.insert(digest(&state), pending.clone());
        let cookie = self.set_cookie(
            self.login_cookie(),
            &state,
            "Lax",
            Some(SIGN_IN_WINDOW.as_secs()),
        );
        Some((state, pending, cookie))
    }

    /// The sign-in `state` names, once, if this browser started it and it is recent.
    pub(crate) fn finish_sign_in(&self, headers: &HeaderMap, state: &str) -> Option<Pending> {
        let bound = cookie(headers, self.login_cookie())?;
        if !same(bound.as_bytes(), state.as_bytes()) {
            return None;
        }
        let (_, pending) = self.pending.remove(&digest(state))?;
        (pending.started.elapsed() < SIGN_IN_WINDOW).then_some(pending)
    }

    /// The `Set-Cookie` value that clears the sign-in cookie.
    pub(crate) fn clear_sign_in(&self) -> HeaderValue {
        self.set_cookie(self.login_cookie(), "", "Lax", Some(0))
    }

    fn set_cookie(
        &self,
        name: &str,
        value: &str,
        same_site: &str,
        max_age: Option<u64>,
    ) -> HeaderValue {
        let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
        if let Some(age) = max_age {
            text.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            text.push_str("; Secure");
        }
        // Built from our own random base64url values: always a valid header.
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
    }
}

impl Session {
    /// Whether `sent` is this session's CSRF token.
    pub(crate) fn csrf_matches(&self, sent: &str) -> bool {
        same(self.csrf.as_bytes(), sent.as_bytes())
    }
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub(crate) fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// 32 random bytes, base64url: session ids, CSRF tokens, PKCE verifiers, states, nonces.
/// `None` if the system's generator fails: nobody is signed in through that.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(set: &HeaderValue) -> HeaderMap {
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        h
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends() {
        let s = Sessions::new(10, Duration::from_secs(60), true);
        let set = s
            .start("tok".into(), "User::\"a\"".into(), Duration::from_secs(30))
            .unwrap();
        let text = set.to_str().unwrap();
        assert!(text.starts_with("__Host-arbiter-console="), "{text}");
        assert!(
            text.contains("HttpOnly") && text.contains("Secure") && text.contains("SameSite=Lax")
        );
        let headers = with_cookie(&set);
        let session = s.current(&headers).unwrap();
        assert_eq!(session.token, "tok");
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("forged"));
        s.end(&headers);
        assert!(s.current(&headers).is_none());
    }

    #[test]
    fn a_sign_in_finishes_once_and_only_in_the_browser_that_began_it() {
        let s = Sessions::new(10, Duration::from_secs(60), false);
        let (state, _, set) = s.begin_sign_in("/console".into()).unwrap();
        assert!(s.finish_sign_in(&HeaderMap::new(), &state).is_none());
        let headers = with_cookie(&set);
        assert!(s.finish_sign_in(&headers, "another").is_none());
        assert!(s.finish_sign_in(&headers, &state).is_some());
        assert!(s.finish_sign_in(&headers, &state).is_none());
    }

    #[test]
    fn the_challenge_is_rfc_7636s() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
