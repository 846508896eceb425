//! The development issuer's ES256 key: generated on first start, kept under the data
//! directory (mode 0600, written atomically), and published as a JWK whose `kid` is its
//! RFC 7638 thumbprint.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::jwks::Key;

/// The file, under the data directory, that holds the development key (PKCS#8 DER).
pub const DEV_KEY_FILE: &str = "keys/dev-issuer-es256.p8";

/// Errors loading or creating a signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The stored key is not a valid P-256 PKCS#8 key.
    #[error("key file `{0}` does not hold a valid P-256 PKCS#8 key")]
    Invalid(PathBuf),
    /// The crypto library failed.
    #[error("key operation failed: {0}")]
    Crypto(String),
}

/// A signing key with its public JWK.
pub struct SigningKey {
    /// The `kid` put in token headers.
    pub kid: String,
    /// For signing.
    pub encoding: EncodingKey,
    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub jwk: Jwk,
}

impl SigningKey {
    /// The verification key for the verifier.
    pub fn verification_key(&self) -> Result<Key, KeyError> {
        Ok(Key {
            kid: Some(self.kid.clone()),
            alg: Algorithm::ES256,
            decoding: DecodingKey::from_jwk(&self.jwk)
                .map_err(|e| KeyError::Crypto(e.to_string()))?,
        })
    }
}

/// Loads the development key from `data_dir`, generating and storing it on first use.
pub fn load_or_generate_dev_key(data_dir: &Path) -> Result<SigningKey, KeyError> {
    let path = data_dir.join(DEV_KEY_FILE);
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    let der = match std::fs::read(&path) {
        Ok(der) => der,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let der = generate_p256_pkcs8()?;
            write_private(&path, &der).map_err(io)?;
            tracing::info!(path = %path.display(), "generated development issuer key");
            // Another process may have raced us; whatever is on disk now is the key.
            std::fs::read(&path).map_err(io)?
        }
        Err(e) => return Err(io(e)),
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        .map_err(|_| KeyError::Invalid(path.clone()))?;
    signing_key_from_pkcs8(&der)
}

/// A new P-256 private key as PKCS#8 DER, from the OS random generator.
pub fn generate_p256_pkcs8() -> Result<Vec<u8>, KeyError> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
    Ok(pair
        .to_pkcs8v1()
        .map_err(|e| KeyError::Crypto(e.to_string()))?
        .as_ref()
        .to_vec())
}

/// A signing key from P-256 PKCS#8 DER.
pub fn signing_key_from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
    let encoding = EncodingKey::from_ec_der(der);
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256);
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    Ok(SigningKey { kid, encoding, jwk })
}

/// Writes a private key: a temporary file with mode 0600, synced, then renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    if path.exists() {
        std::fs::remove_file(&tmp)?;
        return Ok(());
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate_dev_key(dir.path()).unwrap();
        let b = load_or_generate_dev_key(dir.path()).unwrap();
        assert_eq!(a.kid, b.kid);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DEV_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
