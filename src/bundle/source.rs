//! Where a replica's policies come from when they are a bundle rather than a directory it
//! watches: an HTTP(S) URL, an S3-compatible bucket (or any store `object_store` reaches), or
//! a local `.cjar` file. The source is polled with `If-None-Match`; a bundle is used only once
//! it is whole and verified; the last one applied is kept under the data directory, so a
//! replica restarted while its source is down serves it, and says so.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use object_store::{GetOptions, ObjectStore};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use super::archive::MAX_UNPACKED_BYTES;
use super::{Bundle, BundleError, Trust, Verified};
use crate::policy::{LivePolicies, ReloadResult, Trigger};

/// The last verified bundle, kept for a restart while the source is down.
const PERSISTED_FILE: &str = "last-good.cjar";
/// The folder (under the data directory) of everything bundle sources keep.
const BUNDLES_DIR: &str = "bundles";
/// Written-out bundles kept besides the live one (the one before it, for a reload that
/// still reads it).
const KEEP_PREVIOUS: usize = 1;

/// Whether `policies` names a bundle (a URL, or a `.cjar`/`.zip` file) rather than a
/// directory to watch.
pub fn is_bundle_location(policies: &Path) -> bool {
    let text = policies.to_string_lossy();
    text.contains("://")
        || policies
            .extension()
            .is_some_and(|e| e == "cjar" || e == "zip")
}

/// How the last fetch went, for `Status` and the fleet.
#[derive(Debug, Clone, Default)]
pub struct FetchStatus {
    /// The source, credentials removed.
    pub location: String,
    /// When the last fetch finished.
    pub last_fetch_at: Option<SystemTime>,
    /// `applied`, `unchanged`, `not_modified` or `failed`.
    pub last_result: &'static str,
    /// Why the last fetch failed.
    pub last_error: String,
    /// Serving the persisted bundle: the source could not be reached at start.
    pub serving_persisted: bool,
    /// The `kid` that signed the live bundle.
    pub signed_by: Option<String>,
}

/// What one fetch found.
#[derive(Debug)]
pub enum Fetched {
    /// The source answered `304 Not Modified` (or the same ETag).
    NotModified,
    /// A whole, verified bundle (maybe the same revision as live), with its bytes.
    Bundle(Box<Verified>, Vec<u8>),
}

/// One bundle source.
#[derive(Debug)]
pub struct BundleSource {
    location: String,
    store: Box<dyn ObjectStore>,
    path: object_store::path::Path,
    trust: Trust,
    /// How long the first fetch may take before the persisted bundle is served.
    first_wait: Duration,
    state: PathBuf,
    etag: Mutex<Option<String>>,
    /// The manifest checksum of the bundle live now: the same bundle fetched again (a
    /// server without ETags) is not written out and reloaded again.
    applied: Mutex<Option<String>>,
    status: Mutex<FetchStatus>,
    /// One poll at a time (the timer's and an admin `Reload`'s): they write out and reload
    /// the same directories.
    polling: tokio::sync::Mutex<()>,
}

impl BundleSource {
    /// The source `location` names, trusted and timed as `[bundles]` says (the keys file
    /// read, unsigned bundles allowed only if configured, with a warning); what it keeps goes
    /// under `data_dir/bundles/`. The server and `--check-config` both start from it.
    pub fn configured(
        location: &Path,
        bundles: &crate::config::BundlesConfig,
        data_dir: &Path,
    ) -> Result<Self, BundleError> {
        let trust = Trust::from_jwks_file(bundles.keys.as_deref(), bundles.allow_unsigned)?;
        if trust.allow_unsigned {
            tracing::warn!(
                "[bundles] allow_unsigned: policy bundles without a signature are accepted"
            );
        }
        Self::with_first_wait(
            &location.to_string_lossy(),
            trust,
            data_dir,
            Duration::from_secs(bundles.first_fetch_timeout_seconds),
        )
    }

    /// A source for `location`: `http(s)://…`, `s3://bucket/key` (credentials and endpoint
    /// from the usual `AWS_*` variables), `file:///…`, or a path to a local file. What it
    /// keeps goes under `data_dir/bundles/`.
    fn with_first_wait(
        location: &str,
        trust: Trust,
        data_dir: &Path,
        first_wait: Duration,
    ) -> Result<Self, BundleError> {
        let url = match url::Url::parse(location) {
            Ok(u) if u.scheme().len() > 1 => u,
            _ => {
                let absolute = std::path::absolute(location)
                    .map_err(|e| BundleError::Io(format!("{location}: {e}")))?;
                url::Url::from_file_path(&absolute)
                    .map_err(|()| BundleError::Io(format!("{location}: not a usable path")))?
            }
        };
        let shown = redacted(&url);
        let mut options: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        if url.scheme() == "http" {
            // The operator wrote `http://`; object stores otherwise insist on TLS. (An S3
            // endpoint over plain HTTP takes `AWS_ALLOW_HTTP=true`, as the AWS tools do.)
            options.push(("allow_http".into(), "true".into()));
        }
        let (store, path) = object_store::parse_url_opts(&url, options)
            .map_err(|e| BundleError::Fetch(format!("{shown}: {e}")))?;
        let key = super::manifest::short_checksum(shown.as_bytes());
        Ok(Self {
            status: Mutex::new(FetchStatus {
                location: shown.clone(),
                ..FetchStatus::default()
            }),
            location: shown,
            store,
            path,
            trust,
            first_wait,
            state: data_dir.join(BUNDLES_DIR).join(key),
            etag: Mutex::new(None),
            applied: Mutex::new(None),
            polling: tokio::sync::Mutex::new(()),
        })
    }

    /// The source as shown in logs and status.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// How the last fetch went.
    pub fn status(&self) -> FetchStatus {
        lock(&self.status).clone()
    }

    /// Fetches the bundle unless it is unchanged since the last fetch, and verifies it.
    pub async fn fetch(&self) -> Result<Fetched, BundleError> {
        let options = GetOptions {
            if_none_match: lock(&self.etag).clone(),
            ..GetOptions::default()
        };
        let fail = |e: object_store::Error| {
            BundleError::Fetch(format!("{}: {}", self.location, with_causes(&e)))
        };
        let got = match self.store.get_opts(&self.path, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::NotModified),
            Err(e) => return Err(fail(e)),
        };
        if got.meta.size > MAX_UNPACKED_BYTES {
            return Err(BundleError::TooLarge(format!("{} bytes", got.meta.size)));
        }
        let etag = got.meta.e_tag.clone();
        let expected = got.meta.size;
        let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.map_err(fail)?);
            if bytes.len() as u64 > MAX_UNPACKED_BYTES {
                return Err(BundleError::TooLarge(format!(
                    "more than {MAX_UNPACKED_BYTES} bytes"
                )));
            }
        }
        if bytes.len() as u64 != expected {
            return Err(BundleError::Fetch(format!(
                "{}: {} of {expected} bytes arrived",
                self.location,
                bytes.len()
            )));
        }
        let (verified, bytes) = self.verify(bytes).await?;
        *lock(&self.etag) = etag;
        Ok(Fetched::Bundle(Box::new(verified), bytes))
    }

    /// Reads and verifies bundle bytes off the async workers (inflating is CPU work).
    async fn verify(&self, bytes: Vec<u8>) -> Result<(Verified, Vec<u8>), BundleError> {
        let trust = self.trust.clone();
        tokio::task::spawn_blocking(move || {
            let verified = Bundle::from_zip(&bytes)?.verify(&trust)?;
            Ok((verified, bytes))
        })
        .await
        .map_err(|e| BundleError::Io(e.to_string()))?
    }

    /// The persisted bundle, verified again (keys may have changed since it was kept).
    pub async fn persisted(&self) -> Result<Option<Verified>, BundleError> {
        let path = self.state.join(PERSISTED_FILE);
        match tokio::fs::read(&path).await {
            Ok(bytes) => self.verify(bytes).await.map(|(v, _)| Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BundleError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes a verified bundle out as a directory of its own; returns it.
    pub fn write_out(&self, verified: &Verified) -> Result<PathBuf, BundleError> {
        let digest = &verified.digest;
        let dir = self.state.join(format!("rev-{digest}"));
        if dir.is_dir() {
            return Ok(dir);
        }
        let staging = self
            .state
            .join(format!(".staging-{digest}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        verified.write_dir(&staging)?;
        std::fs::rename(&staging, &dir)
            .map_err(|e| BundleError::Io(format!("{}: {e}", dir.display())))?;
        Ok(dir)
    }

    /// Keeps `bytes` as the bundle to serve if the source is down at the next start.
    pub fn persist(&self, bytes: &[u8]) -> Result<(), BundleError> {
        let io = |e: std::io::Error| BundleError::Io(format!("{}: {e}", self.state.display()));
        crate::store::create_private_dir(&self.state).map_err(io)?;
        let tmp = self
            .state
            .join(format!(".{PERSISTED_FILE}.{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(io)?;
        crate::store::restrict_file(&tmp).map_err(io)?;
        std::fs::rename(&tmp, self.state.join(PERSISTED_FILE)).map_err(io)
    }

    /// Removes written-out bundles but `live` and the newest [`KEEP_PREVIOUS`] others.
    fn prune(&self, live: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.state) else {
            return;
        };
        let mut old: Vec<(SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rev-"))
            .map(|e| e.path())
            .filter(|p| p != live)
            .map(|p| {
                let at = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (at, p)
            })
            .collect();
        old.sort();
        old.reverse();
        for (_, p) in old.into_iter().skip(KEEP_PREVIOUS) {
            let _ = std::fs::remove_dir_all(p);
        }
    }

    fn record(&self, result: &'static str, error: String, signed_by: Option<Option<String>>) {
        crate::telemetry::metrics::METRICS.bundle_fetch(result);
        let mut status = lock(&self.status);
        status.last_fetch_at = Some(SystemTime::now());
        status.last_result = result;
        status.last_error = error;
        if let Some(kid) = signed_by {
            status.signed_by = kid;
            status.serving_persisted = false;
        }
    }

    /// The directory to start from: the source's bundle, or else (the source down or its
    /// bundle refused) the persisted one, with a warning. Fails closed when neither is
    /// there: a replica never starts with no policies or an unverified set.
    pub async fn first_dir(&self) -> Result<PathBuf, BundleError> {
        let wait = self.first_wait;
        let fetched = match tokio::time::timeout(wait, self.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(BundleError::Fetch(format!(
                "{}: no answer within {}s",
                self.location,
                wait.as_secs()
            ))),
        };
        match fetched {
            Ok(Fetched::Bundle(verified, bytes)) => {
                let dir = self.write_out(&verified)?;
                self.persist(&bytes)?;
                *lock(&self.applied) = Some(verified.digest.clone());
                self.record("applied", String::new(), Some(verified.signed_by.clone()));
                tracing::info!(source = %self.location, revision = %verified.revision, signed_by = verified.signed_by.as_deref().unwrap_or("(unsigned)"), "policy bundle fetched");
                Ok(dir)
            }
            Ok(Fetched::NotModified) => {
                Err(BundleError::Fetch("not modified on first fetch".into()))
            }
            Err(why) => {
                let Some(verified) = self.persisted().await? else {
                    return Err(why);
                };
                let dir = self.write_out(&verified)?;
                *lock(&self.applied) = Some(verified.digest.clone());
                tracing::warn!(source = %self.location, error = %why, revision = %verified.revision, "the bundle source is unavailable: serving the persisted bundle");
                self.record("failed", why.to_string(), Some(verified.signed_by.clone()));
                lock(&self.status).serving_persisted = true;
                Ok(dir)
            }
        }
    }

    /// Polls the source every `interval` until `shutdown`, applying each new verified bundle.
    pub fn poll(
        self: Arc<Self>,
        live: Arc<LivePolicies>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                self.poll_once(&live).await;
            }
        });
    }

    /// One poll: fetch, verify, write out, reload; any failure keeps the live set.
    pub async fn poll_once(&self, live: &Arc<LivePolicies>) {
        let _one_at_a_time = self.polling.lock().await;
        let (verified, bytes) = match self.fetch().await {
            Ok(Fetched::NotModified) => {
                self.record("not_modified", String::new(), None);
                return;
            }
            Ok(Fetched::Bundle(v, b)) => (v, b),
            Err(why) => {
                tracing::warn!(source = %self.location, error = %why, "policy bundle refused; the live set stays");
                self.record("failed", why.to_string(), None);
                return;
            }
        };
        if lock(&self.applied).as_deref() == Some(verified.digest.as_str()) {
            self.record("unchanged", String::new(), None);
            return;
        }
        let dir = match self.write_out(&verified) {
            Ok(d) => d,
            Err(why) => {
                tracing::warn!(source = %self.location, error = %why, "cannot write the policy bundle out; the live set stays");
                self.record("failed", why.to_string(), None);
                return;
            }
        };
        let reloading = live.clone();
        let target = dir.clone();
        let reloaded =
            tokio::task::spawn_blocking(move || reloading.reload_from(&target, Trigger::Bundle))
                .await;
        match reloaded {
            Ok((outcome, errors)) if outcome.result != ReloadResult::Failed => {
                let result = if outcome.result == ReloadResult::Applied {
                    "applied"
                } else {
                    "unchanged"
                };
                if let Err(e) = self.persist(&bytes) {
                    tracing::warn!(error = %e, "cannot persist the policy bundle");
                }
                self.record(result, String::new(), Some(verified.signed_by.clone()));
                *lock(&self.applied) = Some(verified.digest.clone());
                debug_assert!(errors.is_empty());
                self.prune(&dir);
            }
            Ok((_, errors)) => {
                let first = errors.first().map(ToString::to_string).unwrap_or_default();
                self.record(
                    "failed",
                    format!("revision {}: {first}", verified.revision),
                    None,
                );
                *lock(&self.etag) = None;
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(e) => self.record("failed", e.to_string(), None),
        }
    }
}

/// `url` as logs and status show it: credentials masked as everywhere
/// ([`crate::config::redacted_url`]), and without its query, where pre-signed URLs carry
/// theirs.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    crate::config::redacted_url(shown.as_str())
}

/// An error and each of its causes, for an operator to see why a fetch failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
