//! Keys of `private_key_jwt` clients registered with a `jwks_uri`: fetched on first use,
//! kept for five minutes, and fetched again early (at most every 30 s) when an assertion
//! names a `kid` the cached set lacks, so a client can rotate its keys. A failed fetch
//! keeps the last good set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::token::jwks::KeySet;

/// How long a fetched set is used before it is fetched again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// The least time between fetches of one URI.
const MIN_INTERVAL: Duration = Duration::from_secs(30);

/// A cache of client JWKS documents by URI.
pub struct RemoteJwks {
    http: reqwest::Client,
    cache: DashMap<String, (Arc<KeySet>, Instant)>,
}

impl Default for RemoteJwks {
    fn default() -> Self {
        Self::new()
    }
}

impl RemoteJwks {
    /// An empty cache with a client that gives up after 5 seconds.
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("arbiter/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            cache: DashMap::new(),
        }
    }

    /// The keys published at `uri`, fetched if the cached set is stale or lacks `kid`.
    pub async fn keys(&self, uri: &str, kid: Option<&str>) -> Result<Arc<KeySet>, String> {
        let cached = self.cache.get(uri).map(|e| e.value().clone());
        if let Some((keys, at)) = &cached {
            let has_kid = keys.find(kid).is_some();
            let age = at.elapsed();
            if age < FRESH_FOR && (has_kid || age < MIN_INTERVAL) {
                return Ok(keys.clone());
            }
        }
        match self.fetch(uri).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.cache
                    .insert(uri.to_owned(), (keys.clone(), Instant::now()));
                Ok(keys)
            }
            Err(e) => match cached {
                Some((keys, _)) => {
                    tracing::warn!(uri = %uri, error = %e, "client JWKS refresh failed; keeping the last good keys");
                    Ok(keys)
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self, uri: &str) -> Result<KeySet, String> {
        crate::token::issuer::fetch_jwks(&self.http, uri)
            .await
            .map(|(keys, _, _)| keys)
    }
}
