//! Clients without registration: create, rotate secrets, disable. Secrets are 256 bits from
//! the OS random generator, shown once, and stored only as SHA-256 digests compared in
//! constant time. A slow password hash is not needed: these are random keys, not passwords a
//! person chose, so a digest cannot be brute-forced, and a slow hash would cap token
//! throughput.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::store::{ClientRecord, Store, StoreError};

/// The authentication methods a client can be created with.
pub const AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// Errors of client management.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such client.
    #[error("no client `{0}`")]
    NotFound(String),
    /// Invalid input.
    #[error("{0}")]
    Invalid(String),
    /// The random generator failed.
    #[error("cannot generate randomness")]
    Random,
}

/// A new client with its secret, shown once.
#[derive(Debug)]
pub struct CreatedClient {
    /// The stored record (secret digest only).
    pub record: ClientRecord,
    /// The secret; only now is it known.
    pub secret: String,
}

/// Creates a client with a generated id and secret (`client_secret_basic` or
/// `client_secret_post`).
pub async fn create(
    store: &dyn Store,
    name: &str,
    scopes: &[String],
    auth_method: &str,
) -> Result<CreatedClient, ClientError> {
    if auth_method == "private_key_jwt" {
        return Err(ClientError::Invalid(
            "a private_key_jwt client is created with its JWKS (--jwks FILE)".into(),
        ));
    }
    check(name, scopes, auth_method)?;
    let secret = random_token(32)?;
    let record = new_record(name, scopes, auth_method, Some(digest(&secret)), None)?;
    store.create_client(&record).await?;
    Ok(CreatedClient { record, secret })
}

/// Creates a `private_key_jwt` client (RFC 7523) that authenticates with assertions signed
/// by a key of `jwks`; it has no secret.
pub async fn create_with_jwks(
    store: &dyn Store,
    name: &str,
    scopes: &[String],
    jwks: serde_json::Value,
) -> Result<ClientRecord, ClientError> {
    check(name, scopes, "private_key_jwt")?;
    let (keys, skipped) = crate::token::jwks::KeySet::from_jwks(jwks.to_string().as_bytes())
        .map_err(ClientError::Invalid)?;
    if keys.is_empty() {
        return Err(ClientError::Invalid(format!(
            "the JWKS has no usable signing key ({})",
            skipped.join("; ")
        )));
    }
    let record = new_record(name, scopes, "private_key_jwt", None, Some(jwks))?;
    store.create_client(&record).await?;
    Ok(record)
}

fn check(name: &str, scopes: &[String], auth_method: &str) -> Result<(), ClientError> {
    if name.trim().is_empty() {
        return Err(ClientError::Invalid("a client needs a --name".into()));
    }
    if !AUTH_METHODS.contains(&auth_method) {
        return Err(ClientError::Invalid(format!(
            "unknown auth method `{auth_method}` (one of {})",
            AUTH_METHODS.join(", ")
        )));
    }
    for s in scopes {
        if s.chars()
            .any(|c| !matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
        {
            return Err(ClientError::Invalid(format!("`{s}` is not a valid scope")));
        }
    }
    Ok(())
}

fn new_record(
    name: &str,
    scopes: &[String],
    auth_method: &str,
    secret_sha256: Option<Vec<u8>>,
    jwks: Option<serde_json::Value>,
) -> Result<ClientRecord, ClientError> {
    let now = i64::try_from(crate::token::now()).unwrap_or(i64::MAX);
    Ok(ClientRecord {
        // hex, so an id never starts with `-` (it is a command-line argument too)
        client_id: random_hex(16)?,
        name: name.to_owned(),
        secret_sha256,
        allowed_scopes: scopes.to_vec(),
        auth_method: auth_method.to_owned(),
        jwks,
        software_id: None,
        org: None,
        disabled: false,
        created_at: now,
        updated_at: now,
    })
}

/// Replaces a client's secret; returns the new one (shown once).
pub async fn rotate_secret(store: &dyn Store, client_id: &str) -> Result<String, ClientError> {
    let secret = random_token(32)?;
    if !store.set_client_secret(client_id, &digest(&secret)).await? {
        return Err(ClientError::NotFound(client_id.to_owned()));
    }
    Ok(secret)
}

/// Whether `presented` is the client's secret, in constant time.
pub fn secret_matches(record: &ClientRecord, presented: &str) -> bool {
    match &record.secret_sha256 {
        Some(stored) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(stored, &digest(presented)).is_ok()
        }
        None => false,
    }
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `bytes` of OS randomness, hex.
fn random_hex(bytes: usize) -> Result<String, ClientError> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| ClientError::Random)?;
    Ok(hex::encode(buf))
}

/// `bytes` of OS randomness, base64url without padding.
fn random_token(bytes: usize) -> Result<String, ClientError> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| ClientError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}
