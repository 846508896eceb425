//! JWKS of clients registered with a `jwks_uri` (`private_key_jwt` signing keys,
//! `self_signed_tls_client_auth` certificates): fetched on first use, kept for five
//! minutes, and fetched again early (at most every 30 s) when a client presents a `kid` or a
//! certificate the cached document lacks, so a client can rotate its keys. A failed fetch
//! keeps the last good document.

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

/// A cache of client JWKS documents by URI.
pub struct RemoteJwks {
    http: reqwest::Client,
    cache: DashMap<String, (Arc<ClientJwks>, Instant)>,
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

    /// The cached document while it is fresh and `has` what the caller looks for (or was
    /// fetched too recently to fetch again); else a new fetch.
    async fn get(
        &self,
        uri: &str,
        has: impl Fn(&ClientJwks) -> bool,
    ) -> Result<Arc<ClientJwks>, String> {
        let cached = self.cache.get(uri).map(|e| e.value().clone());
        if let Some((jwks, at)) = &cached {
            let age = at.elapsed();
            if age < FRESH_FOR && (age < MIN_INTERVAL || has(jwks)) {
                return Ok(jwks.clone());
            }
        }
        match self.fetch(uri).await {
            Ok(jwks) => {
                let jwks = Arc::new(jwks);
                self.cache
                    .insert(uri.to_owned(), (jwks.clone(), Instant::now()));
                Ok(jwks)
            }
            Err(e) => match cached {
                Some((jwks, _)) => {
                    tracing::warn!(uri = %uri, error = %e, "client JWKS refresh failed; keeping the last good document");
                    Ok(jwks)
                }
                None => Err(e),
            },
        }
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
