//! Signing keys encrypted at rest: with a key-encryption key (KEK) the operator provides, the
//! store keeps each private key sealed with AES-256-GCM (bound to its `kid` and purpose), so
//! a copy of the database alone — SQLite file or PostgreSQL dump — signs nothing. A store
//! opened with a KEK seals the keys it finds in the clear, and re-seals those sealed under
//! the previous KEK (rotation).
//!
//! The KEK is 32 random bytes, base64, in a file (`[store] key_encryption_key_file`) or in
//! `ARBITER_KEY_ENCRYPTION_KEY`; `previous_key_encryption_key_file` /
//! `ARBITER_PREVIOUS_KEY_ENCRYPTION_KEY` names the one it replaces.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::StoreError;

/// What a sealed value starts with (plain PKCS#8 DER starts with `0x30`).
const MAGIC: &[u8] = b"arbiter-kek1:";
/// The KEK id stored with a sealed value: the first bytes of the KEK's SHA-256.
const ID_LEN: usize = 8;

/// One key-encryption key.
struct Kek {
    id: [u8; ID_LEN],
    key: LessSafeKey,
}

impl Kek {
    fn from_base64(text: &str, what: &str) -> Result<Self, StoreError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()))
            .map_err(|_| StoreError::Backend(format!("{what}: not base64")))?;
        if bytes.len() != 32 {
            return Err(StoreError::Backend(format!(
                "{what}: a key-encryption key is 32 bytes (base64 of `head -c 32 /dev/urandom`), this one is {}",
                bytes.len()
            )));
        }
        let digest = Sha256::digest(&bytes);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| StoreError::Backend(format!("{what}: not an AES-256 key")))?;
        Ok(Self {
            id,
            key: LessSafeKey::new(key),
        })
    }
}

/// Seals and opens signing keys; without a KEK it passes them through (and says they are
/// unprotected).
#[derive(Default)]
pub struct Sealer {
    current: Option<Kek>,
    previous: Option<Kek>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("kek", &self.current.is_some())
            .field("previous", &self.previous.is_some())
            .finish()
    }
}

/// A private key as the store reads it.
#[derive(Debug)]
pub struct Unsealed {
    /// PKCS#8 DER.
    pub der: Vec<u8>,
    /// Whether it was stored sealed.
    pub protected: bool,
    /// Whether it should be sealed again under the current KEK (stored in the clear, or
    /// under the previous KEK).
    pub reseal: bool,
}

impl Sealer {
    /// The KEKs of the configuration: the environment variables win over the files.
    pub fn from_config(config: &crate::config::StoreConfig) -> Result<Self, StoreError> {
        let read =
            |env: &str, file: &Option<std::path::PathBuf>| -> Result<Option<Kek>, StoreError> {
                if let Some(text) = std::env::var(env).ok().filter(|t| !t.trim().is_empty()) {
                    return Kek::from_base64(&text, env).map(Some);
                }
                match file {
                    Some(path) => {
                        let text = std::fs::read_to_string(path).map_err(|e| {
                            StoreError::Backend(format!("cannot read `{}`: {e}", path.display()))
                        })?;
                        Kek::from_base64(&text, &path.display().to_string()).map(Some)
                    }
                    None => Ok(None),
                }
            };
        let current = read(
            "ARBITER_KEY_ENCRYPTION_KEY",
            &config.key_encryption_key_file,
        )?;
        let previous = read(
            "ARBITER_PREVIOUS_KEY_ENCRYPTION_KEY",
            &config.previous_key_encryption_key_file,
        )?;
        if previous.is_some() && current.is_none() {
            return Err(StoreError::Backend(
                "a previous key-encryption key is set without a current one".into(),
            ));
        }
        Ok(Self { current, previous })
    }

    /// Whether keys are sealed on write.
    pub fn protects(&self) -> bool {
        self.current.is_some()
    }

    /// The stored form of `der` for the key `kid` of `purpose`.
    pub fn seal(&self, der: &[u8], kid: &str, purpose: &str) -> Result<Vec<u8>, StoreError> {
        let Some(kek) = &self.current else {
            return Ok(der.to_vec());
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Backend("no randomness for sealing a key".into()))?;
        let mut sealed = der.to_vec();
        kek.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(kid, purpose)),
                &mut sealed,
            )
            .map_err(|_| StoreError::Backend("cannot seal a signing key".into()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&kek.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The key `kid` of `purpose` from its stored form.
    pub fn open(&self, stored: &[u8], kid: &str, purpose: &str) -> Result<Unsealed, StoreError> {
        let Some(rest) = stored.strip_prefix(MAGIC) else {
            return Ok(Unsealed {
                der: stored.to_vec(),
                protected: false,
                reseal: self.current.is_some(),
            });
        };
        if rest.len() < ID_LEN + NONCE_LEN {
            return Err(StoreError::Backend(format!(
                "signing key `{kid}`: truncated"
            )));
        }
        let (id, rest) = rest.split_at(ID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let (kek, reseal) = match (&self.current, &self.previous) {
            (Some(c), _) if c.id == id => (c, false),
            (_, Some(p)) if p.id == id => (p, true),
            (None, _) => {
                return Err(StoreError::Backend(format!(
                    "signing key `{kid}` is encrypted: set the key-encryption key ([store] key_encryption_key_file or ARBITER_KEY_ENCRYPTION_KEY)"
                )))
            }
            _ => {
                return Err(StoreError::Backend(format!(
                    "signing key `{kid}` is encrypted under another key-encryption key (set it as the previous one to re-seal)"
                )))
            }
        };
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Backend(format!("signing key `{kid}`: bad nonce")))?;
        let mut buf = sealed.to_vec();
        let der = kek
            .key
            .open_in_place(nonce, Aad::from(aad(kid, purpose)), &mut buf)
            .map_err(|_| {
                StoreError::Backend(format!(
                    "signing key `{kid}` does not open with the key-encryption key (altered, or another key's)"
                ))
            })?
            .to_vec();
        Ok(Unsealed {
            der,
            protected: true,
            reseal,
        })
    }
}

fn aad(kid: &str, purpose: &str) -> Vec<u8> {
    format!("arbiter signing key\0{purpose}\0{kid}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> Kek {
        Kek::from_base64(
            &base64::engine::general_purpose::STANDARD.encode([byte; 32]),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn sealed_keys_open_only_with_their_kek_kid_and_purpose() {
        let sealer = Sealer {
            current: Some(kek(1)),
            previous: None,
        };
        let der = vec![0x30, 1, 2, 3];
        let sealed = sealer.seal(&der, "k1", "access_token").unwrap();
        assert!(sealed.starts_with(MAGIC) && !sealed.ends_with(&der));
        let opened = sealer.open(&sealed, "k1", "access_token").unwrap();
        assert_eq!(
            (opened.der, opened.protected, opened.reseal),
            (der.clone(), true, false)
        );
        // Moved to another row, it does not open.
        assert!(sealer.open(&sealed, "k2", "access_token").is_err());
        assert!(sealer.open(&sealed, "k1", "statement").is_err());
        // Without the KEK, nothing.
        assert!(Sealer::default()
            .open(&sealed, "k1", "access_token")
            .is_err());
        // Rotation: the old KEK as previous opens it and asks for a re-seal.
        let rotated = Sealer {
            current: Some(kek(2)),
            previous: Some(kek(1)),
        };
        let opened = rotated.open(&sealed, "k1", "access_token").unwrap();
        assert!(opened.reseal && opened.der == der);
        // A plain key is read and marked for sealing.
        let plain = rotated.open(&der, "k1", "access_token").unwrap();
        assert!(!plain.protected && plain.reseal);
    }
}
