//! The authorization server's signing keys: ES256 by default (EdDSA and RS256 selectable),
//! generated on first start and kept in the store, rotated on a schedule or on command, with
//! a retired key still published until every token it signed has expired. A key rotated by
//! another process (`arbiter keys rotate`) is picked up by [`KeyRing::refresh`].

use std::sync::Arc;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::Algorithm;

use crate::store::{SigningKeyRecord, Store, StoreError};
use crate::token::jwks::Key;
use crate::token::keys::{signing_algorithm, KeyError, SigningKey};

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
    /// The key that signs new tokens: the newest key, or for the publish-ahead time after a
    /// rotation the key it replaced (so every replica and verifier has seen the new key
    /// published before any token signed with it arrives).
    pub active: SigningKey,
    /// The newest key's id (the store's active key).
    pub newest_kid: String,
    /// Every published key (active first), as JWKs.
    pub published: Vec<Jwk>,
    /// When the newest key was created (seconds since the epoch), for scheduled rotation.
    pub active_created_at: i64,
}

/// The live key set, swappable on rotation.
pub struct KeyRing {
    store: Arc<dyn Store>,
    /// How long tokens live, so a retired key stays published that long.
    token_ttl: i64,
    /// How long a new key is published before it signs.
    publish_ahead: i64,
    /// The algorithm new keys use.
    alg: Algorithm,
    /// What the keys sign (a store key purpose).
    purpose: &'static str,
    current: ArcSwap<KeySet>,
}

impl KeyRing {
    /// Loads the keys from the store. With no active key, or an active key of another
    /// algorithm than `alg` (the configuration changed), a new `alg` key becomes active; the
    /// old one stays published as after any rotation. A new key signs only once it has been
    /// published for `publish_ahead_seconds` (0: at once).
    pub async fn open(
        store: Arc<dyn Store>,
        purpose: &'static str,
        token_ttl_seconds: u64,
        publish_ahead_seconds: u64,
        alg: Algorithm,
    ) -> Result<Self, KeyRingError> {
        let token_ttl = i64::try_from(token_ttl_seconds).unwrap_or(i64::MAX);
        let publish_ahead = i64::try_from(publish_ahead_seconds).unwrap_or(i64::MAX);
        let mut records = store.signing_keys(purpose).await?;
        let active = records
            .iter()
            .find(|k| k.retired_at.is_none())
            .map(|k| (k.kid.clone(), k.alg.clone()));
        let active_alg = active.as_ref().map(|(_, alg)| alg.as_str());
        if active_alg != Some(alg_name(alg)) {
            let replaces = active.as_ref().map(|(kid, _)| kid.as_str());
            let rotated = store
                .rotate_signing_key(&generate(purpose, alg)?, replaces)
                .await?;
            records = store.signing_keys(purpose).await?;
            match (rotated, active_alg) {
                (false, _) => tracing::info!(
                    purpose,
                    "another instance set the signing key first; using its key"
                ),
                (true, None) => tracing::info!(
                    purpose,
                    alg = alg_name(alg),
                    "generated the first signing key"
                ),
                (true, Some(was)) => {
                    tracing::info!(purpose, was = %was, alg = alg_name(alg), "signing algorithm changed: rotated to a new key")
                }
            }
        }
        let set = build(&records, token_ttl, publish_ahead)?;
        Ok(Self {
            store,
            token_ttl,
            publish_ahead,
            alg,
            purpose,
            current: ArcSwap::from_pointee(set),
        })
    }

    /// Re-reads the keys from the store, so a rotation made elsewhere (the CLI, another
    /// instance) takes effect and expired retired keys stop being published.
    pub async fn refresh(&self) -> Result<(), KeyRingError> {
        let records = self.store.signing_keys(self.purpose).await?;
        let set = build(&records, self.token_ttl, self.publish_ahead)?;
        let before = self.current.load();
        if set.newest_kid != before.newest_kid {
            tracing::info!(kid = %set.newest_kid, was = %before.newest_kid, "new signing key in the store");
        }
        if set.active.kid != before.active.kid {
            tracing::info!(kid = %set.active.kid, was = %before.active.kid, purpose = self.purpose, "now signing with");
        }
        self.current.store(Arc::new(set));
        Ok(())
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

    /// Makes a new signing key active, replacing the one this ring signs with; the old one
    /// stays published until its tokens expired. When another instance rotated that key
    /// first, its new key is taken instead (replicas never rotate twice for one schedule).
    /// Returns the active key id.
    pub async fn rotate(&self) -> Result<String, KeyRingError> {
        let key = generate(self.purpose, self.alg)?;
        let replaces = self.current.load().newest_kid.clone();
        let rotated = self.store.rotate_signing_key(&key, Some(&replaces)).await?;
        let records = self.store.signing_keys(self.purpose).await?;
        let set = build(&records, self.token_ttl, self.publish_ahead)?;
        let kid = set.newest_kid.clone();
        self.current.store(Arc::new(set));
        if rotated {
            tracing::info!(kid = %kid, purpose = self.purpose, "rotated the signing key");
        } else {
            tracing::info!(kid = %kid, purpose = self.purpose, "the signing key was rotated elsewhere first; using that key");
        }
        Ok(kid)
    }
}

/// The JOSE name of an algorithm, as stored.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        _ => "ES256",
    }
}

/// A new key record for `purpose` and `alg`, ready to store.
pub fn generate(purpose: &str, alg: Algorithm) -> Result<SigningKeyRecord, KeyError> {
    let (key, der) = SigningKey::generate(alg)?;
    Ok(SigningKeyRecord {
        kid: key.kid,
        purpose: purpose.to_owned(),
        alg: alg_name(alg).into(),
        private_der: der,
        protected: false,
        created_at: crate::clock::now_i64(),
        retired_at: None,
    })
}

/// Where a signing key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The newest key, published but not signing yet (its publish-ahead time runs).
    Publishing,
    /// The key that signs new tokens.
    Active,
    /// Retired, still published: tokens it signed may not have expired yet.
    Published,
    /// Retired and past the life of every token it signed: no longer published.
    Expired,
}

impl KeyState {
    /// The name `arbiter keys list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publishing => "publishing",
            Self::Active => "active",
            Self::Published => "published",
            Self::Expired => "expired",
        }
    }
}

/// The state of each key (records newest first, as the store lists them) at `now`: the
/// one rule the key ring and `arbiter keys list` share. Until the newest key has been
/// published `publish_ahead` seconds, the key it replaced signs; a retired key signed until
/// `publish_ahead` after its retirement, and its tokens live `token_ttl` longer.
pub fn key_states(
    records: &[SigningKeyRecord],
    token_ttl: i64,
    publish_ahead: i64,
    now: i64,
) -> Vec<KeyState> {
    let newest = records.iter().find(|r| r.retired_at.is_none());
    let signer = newest.map(|newest| {
        match records
            .iter()
            .find(|r| r.retired_at == Some(newest.created_at))
        {
            Some(previous) if newest.created_at.saturating_add(publish_ahead) > now => previous,
            _ => newest,
        }
    });
    records
        .iter()
        .map(|r| match r.retired_at {
            _ if signer.is_some_and(|s| s.kid == r.kid) => KeyState::Active,
            None => KeyState::Publishing,
            Some(at) if at.saturating_add(publish_ahead).saturating_add(token_ttl) > now => {
                KeyState::Published
            }
            Some(_) => KeyState::Expired,
        })
        .collect()
}

fn build(
    records: &[SigningKeyRecord],
    token_ttl: i64,
    publish_ahead: i64,
) -> Result<KeySet, KeyRingError> {
    let newest = records
        .iter()
        .find(|r| r.retired_at.is_none())
        .ok_or_else(|| KeyError::Crypto("no active signing key".into()))?;
    let states = key_states(records, token_ttl, publish_ahead, crate::clock::now_i64());
    let mut active = None;
    let mut published = Vec::new();
    for (r, state) in records.iter().zip(states) {
        if state == KeyState::Expired {
            continue;
        }
        let key = SigningKey::from_pkcs8(signing_algorithm(&r.alg)?, &r.private_der)?;
        published.push(key.jwk.clone());
        if state == KeyState::Active {
            active = Some(key);
        }
    }
    let active =
        active.ok_or_else(|| KeyError::Crypto("the signing key is not published".into()))?;
    Ok(KeySet {
        active,
        newest_kid: newest.kid.clone(),
        published,
        active_created_at: newest.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(created_at: i64, retired_at: Option<i64>) -> SigningKeyRecord {
        SigningKeyRecord {
            created_at,
            retired_at,
            ..generate(crate::store::KEY_PURPOSE_ACCESS_TOKEN, Algorithm::ES256).unwrap()
        }
    }

    #[test]
    fn a_new_key_is_published_before_it_signs() {
        let now = i64::try_from(crate::clock::now()).unwrap();
        let old = key(now - 1000, Some(now - 2));
        let new = key(now - 2, None);
        let records = [new.clone(), old.clone()];

        let set = build(&records, 3600, 10).unwrap();
        assert_eq!(
            set.active.kid, old.kid,
            "the old key signs while the new one propagates"
        );
        assert_eq!(set.newest_kid, new.kid);
        assert_eq!(set.published.len(), 2);
        assert_eq!(
            set.published[0].common.key_id.as_deref(),
            Some(new.kid.as_str())
        );

        let set = build(&records, 3600, 0).unwrap();
        assert_eq!(
            set.active.kid, new.kid,
            "no publish-ahead: the new key signs at once"
        );

        // Long after: the new key signs; the old one is published until its last tokens,
        // signed up to the end of the publish-ahead time, have expired.
        let old = key(now - 5000, Some(now - 3605));
        let new = key(now - 3605, None);
        let set = build(&[new.clone(), old.clone()], 3600, 10).unwrap();
        assert_eq!(set.active.kid, new.kid);
        assert_eq!(
            set.published.len(),
            2,
            "retired 3605 s ago, signed until 3595 s ago"
        );
        let set = build(&[new.clone(), old], 3600, 0).unwrap();
        assert_eq!(set.published.len(), 1, "without publish-ahead it expired");
    }

    #[test]
    fn every_key_has_one_state() {
        use KeyState::*;
        let now = 1_000_000;
        let newest = key(now - 5, None);
        let previous = key(now - 3605, Some(now - 5));
        let older = key(now - 9000, Some(now - 3605));
        let records = [newest, previous, older];
        // (ttl, publish-ahead) → states of (newest, previous, older)
        let cases = [
            ((3600, 10), [Publishing, Active, Published]),
            ((3600, 0), [Active, Published, Expired]),
            ((100, 10), [Publishing, Active, Expired]),
        ];
        for ((ttl, ahead), expected) in cases {
            assert_eq!(
                key_states(&records, ttl, ahead, now),
                expected,
                "{ttl} {ahead}"
            );
        }
    }
}
