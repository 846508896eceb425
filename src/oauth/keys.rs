//! The authorization server's signing keys: ES256, generated on first start and kept in the
//! store, rotated on command with the previous key still published until every token it
//! signed has expired.

use std::sync::Arc;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{Jwk, JwkSet};

use crate::store::{SigningKeyRecord, Store, StoreError};
use crate::token::jwks::Key;
use crate::token::keys::{generate_p256_pkcs8, signing_key_from_pkcs8, KeyError, SigningKey};

/// Errors of key management.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be made or read.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The keys in use: one that signs, and every key whose tokens may still be live.
pub struct KeySet {
    /// The key that signs new tokens.
    pub active: SigningKey,
    /// Every published key (active first), as JWKs.
    pub published: Vec<Jwk>,
}

/// The live key set, swappable on rotation.
pub struct KeyRing {
    store: Arc<dyn Store>,
    /// How long tokens live, so a retired key stays published that long.
    token_ttl: i64,
    current: ArcSwap<KeySet>,
}

impl KeyRing {
    /// Loads the keys from the store, generating the first one if there is none.
    pub async fn open(store: Arc<dyn Store>, token_ttl_seconds: u64) -> Result<Self, KeyRingError> {
        let token_ttl = i64::try_from(token_ttl_seconds).unwrap_or(i64::MAX);
        let mut records = store.signing_keys().await?;
        if !records.iter().any(|k| k.retired_at.is_none()) {
            store.rotate_signing_key(&generate()?).await?;
            records = store.signing_keys().await?;
            tracing::info!("generated the authorization server's first signing key");
        }
        let set = build(&records, token_ttl)?;
        Ok(Self {
            store,
            token_ttl,
            current: ArcSwap::from_pointee(set),
        })
    }

    /// The current keys.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// The JWKS document to publish.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.current.load().published.clone(),
        }
    }

    /// Verification keys for the PDP (every published key).
    pub fn verification_keys(&self) -> Vec<Key> {
        self.current
            .load()
            .published
            .iter()
            .filter_map(|jwk| crate::token::jwks::key_from_jwk(jwk).ok())
            .collect()
    }

    /// Makes a new signing key active; the old one stays published until its tokens expired.
    pub async fn rotate(&self) -> Result<String, KeyRingError> {
        let key = generate()?;
        let kid = key.kid.clone();
        self.store.rotate_signing_key(&key).await?;
        let records = self.store.signing_keys().await?;
        self.current
            .store(Arc::new(build(&records, self.token_ttl)?));
        tracing::info!(kid = %kid, "rotated the authorization server's signing key");
        Ok(kid)
    }
}

fn generate() -> Result<SigningKeyRecord, KeyError> {
    let der = generate_p256_pkcs8()?;
    let key = signing_key_from_pkcs8(&der)?;
    Ok(SigningKeyRecord {
        kid: key.kid,
        alg: "ES256".into(),
        private_der: der,
        created_at: i64::try_from(crate::token::now()).unwrap_or(i64::MAX),
        retired_at: None,
    })
}

fn build(records: &[SigningKeyRecord], token_ttl: i64) -> Result<KeySet, KeyRingError> {
    let now = i64::try_from(crate::token::now()).unwrap_or(i64::MAX);
    let mut active = None;
    let mut published = Vec::new();
    for r in records {
        let still_needed = r
            .retired_at
            .is_none_or(|at| at.saturating_add(token_ttl) > now);
        if !still_needed {
            continue;
        }
        let key = signing_key_from_pkcs8(&r.private_der)?;
        published.push(key.jwk.clone());
        if r.retired_at.is_none() && active.is_none() {
            active = Some(key);
        }
    }
    let active = active.ok_or_else(|| KeyError::Crypto("no active signing key".into()))?;
    Ok(KeySet { active, published })
}
