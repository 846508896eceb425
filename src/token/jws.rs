//! What a compact JWS says before its signature is checked (only enough to pick the issuer
//! and key that will check it), the issuer key rule, and jsonwebtoken's errors as
//! [`TokenError`]s.

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Header;
use serde_json::Value;

use super::{jwks, Issuer, TokenError};

/// The issuer's key for a JWS with this header: by `kid` (refreshing the issuer's keys once
/// when the `kid` is unknown), and bound to the header's `alg`. Access tokens and signed
/// introspection answers are verified with the same rule.
pub(super) async fn issuer_key(
    issuer: &Issuer,
    header: &Header,
) -> Result<Arc<jwks::Key>, TokenError> {
    let alg = header.alg;
    let kid = header.kid.as_deref();
    let mut keys = issuer.keys();
    if keys.find(kid).is_none() && kid.is_some() && issuer.refresh_on_demand().await {
        keys = issuer.keys();
    }
    let key = match keys.find(kid) {
        Some(k) => k,
        None if keys.is_empty() => return Err(TokenError::KeysUnavailable(issuer.name.clone())),
        None => {
            return Err(match kid {
                Some(kid) => TokenError::UnknownKey(truncate(kid, 100), issuer.name.clone()),
                None => TokenError::MissingKeyId(issuer.name.clone()),
            })
        }
    };
    if key.alg != alg {
        return Err(TokenError::AlgorithmMismatch {
            token: format!("{alg:?}"),
            key: format!("{:?}", key.alg),
        });
    }
    Ok(key.clone())
}

/// Whether a token has the shape of a compact JWS: three parts, the first a base64url JSON
/// object. Anything else is opaque to Arbiter.
pub(super) fn looks_like_jws(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .is_some_and(|h| h.trim_ascii_start().first() == Some(&b'{'))
}

pub(super) fn map_jwt_error(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(truncate(c, 50)),
        ErrorKind::InvalidClaimFormat(c) => TokenError::InvalidClaim(truncate(c, 50)),
        ErrorKind::InvalidAlgorithm => TokenError::AlgorithmMismatch {
            token: "?".into(),
            key: "?".into(),
        },
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) => {
            TokenError::BadSignature
        }
        _ => TokenError::Malformed("undecodable signature or payload"),
    }
}

fn payload_json(token: &str) -> Result<Value, TokenError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("payload is not JSON"))
}

/// `iss` read before verification, only to pick the issuer whose keys will verify it.
pub(super) fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    match payload_json(token)?.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        _ => Err(TokenError::MissingClaim("iss".into())),
    }
}

/// The `alg` a header names when jsonwebtoken does not know it (e.g. `none`), for the message.
pub(super) fn unverified_alg(token: &str) -> String {
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v.get("alg")
                .and_then(Value::as_str)
                .map(|s| truncate(s, 20))
        })
        .unwrap_or_else(|| "?".into())
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shape_of_a_jws_is_taken_for_a_jwt() {
        let jws = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJpIn0.c2ln";
        assert!(looks_like_jws(jws));
        for opaque in [
            "2YotnFZFEjr1zCsicMWpAA",
            "ca07896ca13c4252b385caffcd8b8f1d",
            "a.b.c",
            "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJpIn0",
            "eyJhbGciOiJFUzI1NiJ9.e.s.x",
        ] {
            assert!(!looks_like_jws(opaque), "{opaque}");
        }
    }
}
