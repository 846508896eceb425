//! A bundle's signature: a compact JWS (`manifest.jws`) whose payload names the SHA-256 of
//! `manifest.json`'s exact bytes, so one signature covers every file the manifest lists.
//! Signed with ES256, EdDSA or RS256; the header's `kid` (the key's JWK thumbprint) picks the
//! verification key, so keys rotate by publishing the new one beside the old.

use std::path::Path;

use jsonwebtoken::{Algorithm, Validation};
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::manifest::checksum;
use super::BundleError;
use crate::token::jwks::KeySet;
use crate::token::keys::SigningKey;

/// The JWS `typ` of a bundle signature.
pub const SIGNATURE_TYPE: &str = "arbiter-bundle+jwt";

/// What a bundle signature asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedClaims {
    /// `sha256:` and the hex digest of `manifest.json`.
    pub manifest: String,
    /// The revision the signer published.
    pub revision: String,
    /// The store's id.
    pub policy_store_id: String,
    /// When it was signed (seconds since the epoch).
    pub iat: u64,
}

/// Signs the manifest bytes.
pub fn sign(
    key: &SigningKey,
    manifest: &[u8],
    revision: &str,
    policy_store_id: &str,
) -> Result<String, BundleError> {
    let claims = SignedClaims {
        manifest: checksum(manifest),
        revision: revision.to_owned(),
        policy_store_id: policy_store_id.to_owned(),
        iat: crate::clock::now(),
    };
    key.sign_jwt(SIGNATURE_TYPE, &claims)
        .map_err(|e| BundleError::Signature(e.to_string()))
}

/// Verifies `jws` with `keys` and that it covers exactly `manifest`; the signer's `kid`.
pub fn verify(
    jws: &str,
    manifest: &[u8],
    keys: &KeySet,
) -> Result<(String, SignedClaims), BundleError> {
    let bad = |why: String| BundleError::Signature(why);
    let header = jsonwebtoken::decode_header(jws.trim()).map_err(|e| bad(e.to_string()))?;
    if header.typ.as_deref() != Some(SIGNATURE_TYPE) {
        return Err(bad(format!("`typ` is not `{SIGNATURE_TYPE}`")));
    }
    let kid = header.kid.clone();
    let key = keys
        .find(kid.as_deref())
        .ok_or_else(|| BundleError::UnknownKey(kid.clone().unwrap_or_else(|| "(no kid)".into())))?;
    if key.alg != header.alg {
        return Err(bad(format!(
            "signed with {:?}, but the key is for {:?}",
            header.alg, key.alg
        )));
    }
    let mut validation = Validation::new(key.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<SignedClaims>(jws.trim(), &key.decoding, &validation)
        .map_err(|e| bad(e.to_string()))?;
    if data.claims.manifest != checksum(manifest) {
        return Err(bad("it signs another manifest".into()));
    }
    Ok((kid.unwrap_or_default(), data.claims))
}

/// Reads a PKCS#8 private key (PEM or DER) and finds which of ES256, EdDSA and RS256 it is.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, BundleError> {
    let bytes =
        std::fs::read(path).map_err(|e| BundleError::Io(format!("{}: {e}", path.display())))?;
    let der = match rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&bytes) {
        Ok(der) => der.secret_pkcs8_der().to_vec(),
        Err(_) => bytes,
    };
    [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256]
        .into_iter()
        .find_map(|alg| SigningKey::from_pkcs8(alg, &der).ok())
        .ok_or_else(|| {
            BundleError::Signature(format!(
                "{}: not a PKCS#8 P-256, Ed25519 or RSA private key",
                path.display()
            ))
        })
}

/// A new signing key as PKCS#8 PEM, with its public JWK set.
pub fn generate_signing_key(alg: Algorithm) -> Result<(String, serde_json::Value), BundleError> {
    let (key, der) =
        SigningKey::generate(alg).map_err(|e| BundleError::Signature(e.to_string()))?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
    Ok((pem, serde_json::json!({ "keys": [key.jwk] })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_each_algorithm_and_refuses_the_rest() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let (pem, jwks) = generate_signing_key(alg).unwrap();
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("k.pem"), pem).unwrap();
            let key = read_signing_key(&dir.path().join("k.pem")).unwrap();
            assert_eq!(key.alg, alg);
            let (keys, _) = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
            let jws = sign(&key, b"{\"files\":{}}", "7", "store").unwrap();
            let (kid, claims) = verify(&jws, b"{\"files\":{}}", &keys).unwrap();
            assert_eq!(kid, key.kid);
            assert_eq!(claims.revision, "7");
            assert!(matches!(
                verify(&jws, b"{\"files\":{ }}", &keys),
                Err(BundleError::Signature(_))
            ));
            let (_, other) = generate_signing_key(alg).unwrap();
            let (other, _) = KeySet::from_jwks(other.to_string().as_bytes()).unwrap();
            assert!(matches!(
                verify(&jws, b"{\"files\":{}}", &other),
                Err(BundleError::UnknownKey(_))
            ));
        }
    }
}
