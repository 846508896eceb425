//! A trusted issuer and the life of its keys: fetched at start, refreshed on an unknown `kid`
//! (at most once per cooldown, so a flood of bogus kids cannot hammer the issuer), refreshed
//! on the schedule its `Cache-Control: max-age` allows, and kept serving while a refresh fails.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::jwks::{Key, KeySet};
use crate::config::IssuerConfig;

/// How long a request waits for an on-demand refresh before it is denied.
const DEMAND_WAIT: Duration = Duration::from_secs(3);
/// Retry delay after a failed fetch, doubled up to the issuer's maximum refresh interval.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Keys given at start (the development issuer); never refreshed.
    Static,
    /// A shared HMAC secret from the configuration.
    Hmac,
    /// A JWKS document over HTTP(S).
    Url(String),
    /// A JWKS document on disk.
    File(PathBuf),
    /// No keys: every token of the issuer is introspected (its `[issuers.introspection]`).
    None,
}

/// A trusted issuer.
pub struct Issuer {
    /// The exact `iss` value.
    pub name: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Required `typ` header (e.g. `at+jwt`), if any.
    pub required_typ: Option<String>,
    /// Where keys come from.
    pub source: KeySource,
    /// Which claims name the client and the user.
    pub identity: super::IdentityClaims,
    hmac: Option<DecodingKey>,
    keys: ArcSwap<KeySet>,
    refresh: Refresh,
}

struct Refresh {
    cooldown: Duration,
    min_interval: Duration,
    max_interval: Duration,
    wake: Notify,
    /// Bumped after every fetch attempt, successful or not.
    attempts: watch::Sender<u64>,
    /// Milliseconds since `epoch` of the last on-demand refresh request.
    last_demand_ms: AtomicU64,
    epoch: Instant,
}

impl Issuer {
    /// An issuer from configuration; keys arrive with the first refresh.
    pub fn from_config(config: &IssuerConfig) -> Self {
        let (source, hmac) = if let Some(url) = &config.jwks_url {
            (KeySource::Url(url.clone()), None)
        } else if let Some(file) = &config.jwks_file {
            (KeySource::File(file.clone()), None)
        } else if let Some(secret) = &config.hmac_secret {
            (
                KeySource::Hmac,
                Some(DecodingKey::from_secret(secret.as_bytes())),
            )
        } else {
            (KeySource::None, None)
        };
        let mut issuer = Self::new(
            config.issuer.clone(),
            config.audiences.clone(),
            config.required_typ.clone(),
            source,
            hmac,
            KeySet::default(),
            Refresh::new(
                Duration::from_secs(config.jwks_refresh_cooldown_seconds),
                Duration::from_secs(config.jwks_min_refresh_seconds),
                Duration::from_secs(config.jwks_max_refresh_seconds),
            ),
        );
        issuer.identity = config.identity_claims();
        issuer
    }

    /// An issuer whose keys are fixed (the development issuer).
    pub fn with_static_keys(name: String, audiences: Vec<String>, keys: Vec<Key>) -> Self {
        Self::new(
            name,
            audiences,
            None,
            KeySource::Static,
            None,
            KeySet::from_keys(keys),
            Refresh::new(Duration::MAX, Duration::MAX, Duration::MAX),
        )
    }

    fn new(
        name: String,
        audiences: Vec<String>,
        required_typ: Option<String>,
        source: KeySource,
        hmac: Option<DecodingKey>,
        keys: KeySet,
        refresh: Refresh,
    ) -> Self {
        Self {
            name,
            audiences,
            required_typ,
            identity: super::IdentityClaims::default(),
            source,
            hmac,
            keys: ArcSwap::from_pointee(keys),
            refresh,
        }
    }

    /// Replaces the keys of an issuer whose keys live in this process (the paired
    /// authorization server, after a rotation).
    ///
    /// In-process key ids are RFC 7638 thumbprints, so the same ids are the same keys: the
    /// current set (and the cached tokens it verified) is kept when nothing changed.
    pub fn set_keys(&self, keys: Vec<Key>) {
        let current = self.keys.load();
        let same = current.len() == keys.len()
            && keys
                .iter()
                .all(|k| k.kid.is_some() && current.find(k.kid.as_deref()).is_some());
        if !same {
            self.keys.store(Arc::new(KeySet::from_keys(keys)));
        }
    }

    /// The current keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// The HMAC key, for an issuer configured with a shared secret.
    pub fn hmac_key(&self, alg: Algorithm) -> Option<&DecodingKey> {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self.hmac.as_ref(),
            _ => None,
        }
    }

    /// The validation rules for a token of this issuer signed with `alg`.
    pub fn validation(&self, alg: Algorithm, leeway: u64) -> Validation {
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.name]);
        v.set_audience(&self.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = leeway;
        v
    }

    /// Whether keys come from a source that can be refreshed.
    pub fn refreshable(&self) -> bool {
        matches!(self.source, KeySource::Url(_) | KeySource::File(_))
    }

    /// Asks for a refresh because a token named an unknown `kid`, and waits for it. Returns
    /// `false` at once when the cooldown has not passed since the last such request.
    pub async fn refresh_on_demand(&self) -> bool {
        if !self.refreshable() {
            return false;
        }
        let r = &self.refresh;
        let now = r.epoch.elapsed().as_millis() as u64;
        let last = r.last_demand_ms.load(Ordering::Acquire);
        let cooldown = r.cooldown.as_millis() as u64;
        if last != 0 && now.saturating_sub(last) < cooldown {
            return false;
        }
        if r.last_demand_ms
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another request just asked; wait for the same refresh.
        }
        let mut rx = r.attempts.subscribe();
        rx.borrow_and_update();
        r.wake.notify_one();
        tokio::time::timeout(DEMAND_WAIT, rx.changed())
            .await
            .is_ok()
    }

    /// Runs the refresh loop until `shutdown`; a no-op for static and HMAC issuers.
    pub async fn run_refresher(
        self: Arc<Self>,
        http: reqwest::Client,
        shutdown: CancellationToken,
    ) {
        if !self.refreshable() {
            return;
        }
        let r = &self.refresh;
        let mut next = Instant::now();
        let mut retry = FIRST_RETRY;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = r.wake.notified() => {}
                _ = shutdown.cancelled() => return,
            }
            match self.fetch(&http).await {
                Ok((set, skipped, max_age)) => {
                    let interval = max_age
                        .unwrap_or(r.max_interval)
                        .clamp(r.min_interval, r.max_interval);
                    tracing::info!(
                        issuer = %self.name,
                        keys = set.len(),
                        skipped = ?skipped,
                        next_refresh_s = interval.as_secs(),
                        "jwks refreshed"
                    );
                    self.keys.store(Arc::new(set));
                    next = Instant::now() + interval;
                    retry = FIRST_RETRY;
                }
                Err(why) => {
                    let stale = self.keys.load().len();
                    tracing::warn!(
                        issuer = %self.name,
                        error = %why,
                        stale_keys_kept = stale,
                        retry_in_s = retry.as_secs(),
                        "jwks refresh failed"
                    );
                    next = Instant::now() + retry;
                    retry = (retry * 2).min(r.max_interval);
                }
            }
            r.attempts.send_modify(|n| *n += 1);
        }
    }

    /// Waits until the first fetch attempt finished (or `limit` passed).
    pub async fn wait_first_attempt(&self, limit: Duration) {
        if !self.refreshable() {
            return;
        }
        let mut rx = self.refresh.attempts.subscribe();
        if *rx.borrow_and_update() > 0 {
            return;
        }
        let _ = tokio::time::timeout(limit, rx.changed()).await;
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
    ) -> Result<(KeySet, Vec<String>, Option<Duration>), String> {
        match &self.source {
            KeySource::Url(url) => fetch_jwks(http, url).await,
            KeySource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("read `{}`: {e}", path.display()))?;
                let (set, skipped) = usable_keys(&bytes)?;
                Ok((set, skipped, None))
            }
            KeySource::Static | KeySource::Hmac | KeySource::None => Err("not refreshable".into()),
        }
    }
}

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Fetches a JWKS document: its usable keys, what was skipped, and the `Cache-Control`
/// max-age. Shared by issuers, clients registered with a `jwks_uri`, and `--check-config`.
pub async fn fetch_jwks(
    http: &reqwest::Client,
    url: &str,
) -> Result<(KeySet, Vec<String>, Option<Duration>), String> {
    let (bytes, max_age) = fetch_jwks_document(http, url).await?;
    let (set, skipped) = usable_keys(&bytes)?;
    Ok((set, skipped, max_age))
}

/// Fetches a JWKS document as it is (at most [`MAX_JWKS_BYTES`]), with its `Cache-Control`
/// max-age.
pub async fn fetch_jwks_document(
    http: &reqwest::Client,
    url: &str,
) -> Result<(axum::body::Bytes, Option<Duration>), String> {
    let resp = http
        .get(url)
        .header("accept", "application/jwk-set+json, application/json")
        .send()
        .await
        .map_err(|e| format!("GET `{url}`: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET `{url}`: HTTP {}", resp.status()));
    }
    let max_age = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let bytes = read_bounded(resp, MAX_JWKS_BYTES)
        .await
        .map_err(|e| format!("GET `{url}`: {e}"))?;
    Ok((axum::body::Bytes::from(bytes), max_age))
}

/// A response body, read as it arrives and refused past `max` bytes: a chunked response
/// declares no length, and must not grow without limit for as long as the request may take.
pub async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("document larger than {max} bytes"));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > max {
            return Err(format!("document larger than {max} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The keys of a JWKS document; an error when none is usable.
pub fn usable_keys(bytes: &[u8]) -> Result<(KeySet, Vec<String>), String> {
    let (set, skipped) = KeySet::from_jwks(bytes)?;
    if set.is_empty() {
        return Err(format!("no usable keys (skipped: {})", skipped.join("; ")));
    }
    Ok((set, skipped))
}

impl Refresh {
    fn new(cooldown: Duration, min_interval: Duration, max_interval: Duration) -> Self {
        Self {
            cooldown,
            min_interval,
            max_interval,
            wake: Notify::new(),
            attempts: watch::Sender::new(0),
            last_demand_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// `max-age` from a `Cache-Control` header, unless the response forbids caching.
fn max_age(header: &str) -> Option<Duration> {
    let mut age = None;
    for directive in header.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }
}
