//! JWKS of clients registered with a `jwks_uri` (`private_key_jwt` signing keys,
//! `self_signed_tls_client_auth` certificates): fetched on first use, kept for five
//! minutes, and fetched again early (at most every 30 s) when a client presents a `kid` or a
//! certificate the cached document lacks, so a client can rotate its keys. A failed fetch
//! keeps the last good document, and its failure is remembered for the same 30 s: a
//! `jwks_uri` that is down is asked once per interval, not once per `/token` request, and
//! requests that arrive during a fetch wait for it instead of fetching too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::token::jwks::KeySet;

/// How long a fetched set is used before it is fetched again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// The least time between fetches of one URI.
const MIN_INTERVAL: Duration = Duration::from_secs(30);

/// One fetched JWKS document.
pub struct ClientJwks {
    /// Its usable signing keys.
    pub keys: Arc<KeySet>,
    /// The document itself (certificates in `x5c`).
    pub document: serde_json::Value,
}

/// What is known of one URI: its last good document and when the last attempt was.
struct Entry {
    /// The last good document and when it was fetched.
    good: Option<(Arc<ClientJwks>, Instant)>,
    /// When the URI was last asked, successfully or not.
    attempted: Instant,
    /// Why the last attempt failed, if it did.
    error: Option<String>,
}

impl Entry {
    /// The answer this entry gives without a fetch: the last good document, or the last
    /// failure.
    fn answer(&self) -> Result<Arc<ClientJwks>, String> {
        match (&self.good, &self.error) {
            (Some((jwks, _)), _) => Ok(jwks.clone()),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err("no document".to_owned()),
        }
    }
}

/// A cache of client JWKS documents by URI.
pub struct RemoteJwks {
    http: reqwest::Client,
    cache: DashMap<String, Entry>,
    /// One fetch per URI at a time.
    fetching: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl Default for RemoteJwks {
    fn default() -> Self {
        Self::new(false)
    }
}

/// Resolves a client's host name to its public addresses only: a name that resolves inside
/// Arbiter's network (DNS pointing at 127.0.0.1, 10.0.0.0/8, the metadata service, …) is not
/// fetched, whatever the registration-time check of its spelling saw.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !super::clients::is_internal_ip(a.ip()))
                .collect();
            if public.is_empty() {
                let why = format!("`{host}` resolves only to internal addresses");
                return Err(why.into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl RemoteJwks {
    /// An empty cache with a client that gives up after 5 seconds; unless `private_ok`, host
    /// names are fetched only at the public addresses they resolve to.
    pub fn new(private_ok: bool) -> Self {
        let builder = reqwest::Client::builder();
        let builder = if private_ok {
            builder
        } else {
            builder.dns_resolver(Arc::new(PublicOnly))
        };
        Self {
            http: builder
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("arbiter/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            cache: DashMap::new(),
            fetching: DashMap::new(),
        }
    }

    /// The keys published at `uri`, fetched if the cached set is stale or lacks `kid`.
    pub async fn keys(&self, uri: &str, kid: Option<&str>) -> Result<Arc<ClientJwks>, String> {
        self.get(uri, |jwks| jwks.keys.find(kid).is_some()).await
    }

    /// The document at `uri`, fetched if the cached one is stale or does not register the
    /// certificate `leaf_der`.
    pub async fn with_certificate(
        &self,
        uri: &str,
        leaf_der: &[u8],
    ) -> Result<Arc<ClientJwks>, String> {
        self.get(uri, |jwks| {
            super::mtls::is_registered(&jwks.document, leaf_der)
        })
        .await
    }

    /// The cached answer while it serves (a fresh document that `has` what the caller
    /// looks for, or any answer younger than the least interval); else one fetch, which
    /// concurrent callers share.
    async fn get(
        &self,
        uri: &str,
        has: impl Fn(&ClientJwks) -> bool,
    ) -> Result<Arc<ClientJwks>, String> {
        let serves = |entry: &Entry| {
            entry.attempted.elapsed() < MIN_INTERVAL
                || entry
                    .good
                    .as_ref()
                    .is_some_and(|(jwks, at)| at.elapsed() < FRESH_FOR && has(jwks))
        };
        let cached = |cache: &DashMap<String, Entry>| {
            let entry = cache.get(uri)?;
            serves(&entry).then(|| entry.answer())
        };
        if let Some(answer) = cached(&self.cache) {
            return answer;
        }
        let lock = self.fetching.entry(uri.to_owned()).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        // Someone else may have fetched while this call waited.
        if let Some(answer) = cached(&self.cache) {
            return answer;
        }
        let good = self.cache.get(uri).and_then(|e| e.good.clone());
        let entry = match self.fetch(uri).await {
            Ok(jwks) => Entry {
                good: Some((Arc::new(jwks), Instant::now())),
                attempted: Instant::now(),
                error: None,
            },
            Err(e) => {
                if good.is_some() {
                    tracing::warn!(uri = %crate::telemetry::printable(uri), error = %crate::telemetry::printable(&e.to_string()), "client JWKS refresh failed; keeping the last good document");
                } else {
                    tracing::warn!(uri = %crate::telemetry::printable(uri), error = %crate::telemetry::printable(&e.to_string()), "client JWKS fetch failed; not asking again for {} s", MIN_INTERVAL.as_secs());
                }
                Entry {
                    good,
                    attempted: Instant::now(),
                    error: Some(e),
                }
            }
        };
        let answer = entry.answer();
        self.cache.insert(uri.to_owned(), entry);
        answer
    }

    async fn fetch(&self, uri: &str) -> Result<ClientJwks, String> {
        let (bytes, _) = crate::token::issuer::fetch_jwks_document(&self.http, uri).await?;
        let document: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("`{uri}`: {e}"))?;
        let (keys, _) = KeySet::from_jwks(&bytes)?;
        Ok(ClientJwks {
            keys: Arc::new(keys),
            document,
        })
    }
}

#[cfg(test)]
mod resolving {
    use super::*;
    use reqwest::dns::Resolve as _;

    #[tokio::test]
    async fn a_name_that_resolves_inside_is_not_fetched() {
        let refused = PublicOnly
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is internal");
        assert!(refused.to_string().contains("internal"), "{refused}");
    }
}
