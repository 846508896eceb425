//! Signing keys that Arbiter itself holds: the development issuer's ES256 key (generated on
//! first start, kept under the data directory with mode 0600, written atomically) and the
//! authorization server's keys (ES256, EdDSA or RS256, kept in the store). Each is published
//! as a JWK whose `kid` is its RFC 7638 thumbprint, and signs JWTs with a key pair parsed
//! once (parsing per token would cost more than the signature for RSA).

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;

use super::jwks::Key;

/// The file, under the data directory, that holds the development key (PKCS#8 DER).
pub const DEV_KEY_FILE: &str = "keys/dev-issuer-es256.p8";

/// The algorithms Arbiter signs with.
pub const SIGNING_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256];

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
    /// Arbiter does not sign with this algorithm.
    #[error("unsupported signing algorithm `{0}` (use ES256, EdDSA or RS256)")]
    Unsupported(String),
    /// The crypto library failed.
    #[error("key operation failed: {0}")]
    Crypto(String),
}

fn crypto(e: impl std::fmt::Display) -> KeyError {
    KeyError::Crypto(e.to_string())
}

/// The JOSE algorithm of a configured signing algorithm.
pub fn algorithm(alg: crate::config::SigningAlg) -> Algorithm {
    match alg {
        crate::config::SigningAlg::ES256 => Algorithm::ES256,
        crate::config::SigningAlg::EdDSA => Algorithm::EdDSA,
        crate::config::SigningAlg::RS256 => Algorithm::RS256,
    }
}

/// Parses an algorithm name Arbiter can sign with (`ES256`, `EdDSA`, `RS256`), as stored.
pub fn signing_algorithm(name: &str) -> Result<Algorithm, KeyError> {
    name.parse::<Algorithm>()
        .ok()
        .filter(|alg| SIGNING_ALGORITHMS.contains(alg))
        .ok_or_else(|| KeyError::Unsupported(name.to_owned()))
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private key ready to sign, with its public JWK.
pub struct SigningKey {
    /// The `kid` put in token headers.
    pub kid: String,
    /// The one algorithm this key signs with.
    pub alg: Algorithm,
    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub jwk: Jwk,
    pair: Pair,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct JoseHeader<'a> {
    alg: Algorithm,
    typ: &'a str,
    kid: &'a str,
}

impl SigningKey {
    /// A new key for `alg`, with its PKCS#8 DER for storage.
    pub fn generate(alg: Algorithm) -> Result<(Self, Vec<u8>), KeyError> {
        let der = match alg {
            Algorithm::ES256 => generate_p256_pkcs8()?,
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .map_err(crypto)?
                .to_pkcs8()
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            Algorithm::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(crypto)?
                .as_der()
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            other => return Err(KeyError::Unsupported(format!("{other:?}"))),
        };
        Ok((Self::from_pkcs8(alg, &der)?, der))
    }

    /// The key for `alg` from PKCS#8 DER.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (pair, public) = match alg {
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(crypto)?;
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(KeyError::Crypto("unexpected P-256 public key".into()));
                }
                let jwk = serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]),
                });
                (Pair::Ec(pair), jwk)
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(crypto)?;
                let jwk = serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()),
                });
                (Pair::Ed(pair), jwk)
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(crypto)?;
                let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let jwk = serde_json::json!({
                    "kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e),
                });
                (Pair::Rsa(pair), jwk)
            }
            other => return Err(KeyError::Unsupported(format!("{other:?}"))),
        };
        let mut jwk: Jwk = serde_json::from_value(public).map_err(crypto)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(
            format!("{alg:?}")
                .parse()
                .map_err(|_| KeyError::Unsupported(format!("{alg:?}")))?,
        );
        Ok(Self {
            kid,
            alg,
            jwk,
            pair,
            rng: SystemRandom::new(),
        })
    }

    /// The verification key for the verifier.
    pub fn verification_key(&self) -> Result<Key, KeyError> {
        Ok(Key {
            kid: Some(self.kid.clone()),
            alg: self.alg,
            decoding: DecodingKey::from_jwk(&self.jwk).map_err(crypto)?,
        })
    }

    /// A compact JWS over `claims` with header `{alg, typ, kid}`.
    pub fn sign_jwt(&self, typ: &str, claims: &impl Serialize) -> Result<String, KeyError> {
        let header = serde_json::to_vec(&JoseHeader {
            alg: self.alg,
            typ,
            kid: &self.kid,
        })
        .map_err(crypto)?;
        let payload = serde_json::to_vec(claims).map_err(crypto)?;
        let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 400);
        URL_SAFE_NO_PAD.encode_string(&header, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let signature = self.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
        Ok(out)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ec(pair) => Ok(pair
                .sign(&self.rng, message)
                .map_err(crypto)?
                .as_ref()
                .to_vec()),
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(crypto)?;
                Ok(signature)
            }
        }
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
    SigningKey::from_pkcs8(Algorithm::ES256, &der).map_err(|_| KeyError::Invalid(path.clone()))
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

/// Writes a private key: a temporary file with mode 0600, synced, then renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    crate::store::create_private_dir(dir)?;
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
    fn every_algorithm_signs_what_a_stock_verifier_accepts() {
        for alg in SIGNING_ALGORITHMS {
            let (key, der) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(key.kid, again.kid, "{alg:?}: kid is the thumbprint");
            let token = key
                .sign_jwt(
                    "at+jwt",
                    &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
                )
                .unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg);
            assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            let decoding = DecodingKey::from_jwk(&key.jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg);
            validation.validate_aud = false;
            let data =
                jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
            assert_eq!(data.claims["sub"], "x");
            // The published JWK carries the key's algorithm, so the verifier binds it.
            let bound = crate::token::jwks::key_from_jwk(&key.jwk).unwrap();
            assert_eq!(bound.alg, alg);
        }
        assert!(signing_algorithm("none").is_err());
        assert!(signing_algorithm("HS256").is_err());
        assert_eq!(signing_algorithm("EdDSA").unwrap(), Algorithm::EdDSA);
    }

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
