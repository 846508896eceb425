//! Signing keys of an issuer: parsed from a JWKS document, found by `kid`, each bound to the
//! one algorithm the key (not the token) allows. Fetching and refreshing live in `issuer`.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// One verification key with the algorithm it is bound to.
pub struct Key {
    /// The JWK `kid`, if it has one.
    pub kid: Option<String>,
    /// The only algorithm tokens signed by this key may use.
    pub alg: Algorithm,
    /// The key material.
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The keys an issuer currently publishes.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    all: Vec<Arc<Key>>,
}

impl KeySet {
    /// A set from already-built keys.
    pub fn from_keys(keys: impl IntoIterator<Item = Key>) -> Self {
        let mut set = Self::default();
        for key in keys {
            let key = Arc::new(key);
            if let Some(kid) = &key.kid {
                set.by_kid.insert(kid.clone(), key.clone());
            }
            set.all.push(key);
        }
        set
    }

    /// Parses a JWKS document. Keys that cannot verify signatures (encryption keys, symmetric
    /// keys, unsupported curves) are skipped and named in the second value.
    pub fn from_jwks(bytes: &[u8]) -> Result<(Self, Vec<String>), String> {
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid JWKS JSON: {e}"))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS document has no `keys` array")?;
        let mut skipped = Vec::new();
        let mut built = Vec::new();
        for (i, raw) in keys.iter().enumerate() {
            let label = raw
                .get("kid")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{i}"), |k| format!("`{k}`"));
            match serde_json::from_value::<Jwk>(raw.clone())
                .map_err(|e| e.to_string())
                .and_then(|jwk| key_from_jwk(&jwk))
            {
                Ok(key) => built.push(key),
                Err(why) => skipped.push(format!("{label}: {why}")),
            }
        }
        Ok((Self::from_keys(built), skipped))
    }

    /// The key for a token's `kid`; a token without `kid` only matches a lone key.
    pub fn find(&self, kid: Option<&str>) -> Option<&Arc<Key>> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.all.len() == 1 => self.all.first(),
            None => None,
        }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there are no usable keys.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// Builds a verification key from a JWK, fixing its algorithm from the JWK itself.
pub fn key_from_jwk(jwk: &Jwk) -> Result<Key, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key".into());
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => Algorithm::EdDSA,
            _ => return Err("unsupported curve".into()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are never taken from a JWKS".into())
        }
    };
    let alg = match &jwk.common.key_algorithm {
        Some(declared) => declared
            .to_string()
            .parse::<Algorithm>()
            .map_err(|_| format!("unsupported algorithm `{declared}`"))?,
        None => implied,
    };
    if alg.family() != implied.family() {
        return Err(format!("algorithm `{alg:?}` does not fit the key type"));
    }
    if alg == Algorithm::ES256 && implied != Algorithm::ES256
        || alg == Algorithm::ES384 && implied != Algorithm::ES384
    {
        return Err(format!("algorithm `{alg:?}` does not fit the curve"));
    }
    let decoding = DecodingKey::from_jwk(jwk).map_err(|e| format!("invalid key: {e}"))?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        decoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_unusable_keys_and_keeps_the_rest() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"h"},
            {"kty":"EC","crv":"P-256","kid":"e","use":"enc",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","crv":"P-256","kid":"s",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}"#;
        let (set, skipped) = KeySet::from_jwks(doc).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(skipped.len(), 2);
        let key = set.find(Some("s")).unwrap();
        assert_eq!(key.alg, Algorithm::ES256);
        assert!(set.find(Some("h")).is_none());
        assert!(
            set.find(None).is_some(),
            "a lone key matches a token without kid"
        );
    }
}
