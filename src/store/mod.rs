//! Persistence behind one [`Store`] trait: registered clients now; signing keys, revoked
//! token ids and software statements as the token endpoint grows. Embedded SQLite by default
//! (a file under the data directory, nothing to install); PostgreSQL will implement the same
//! trait for several replicas. Knows nothing of OAuth rules: it keeps records.

mod sqlite;

use std::path::Path;
use std::sync::Arc;

pub use sqlite::SqliteStore;

/// The database file under the data directory.
pub const SQLITE_FILE: &str = "arbiter.db";

/// Errors of the store. Messages never contain secrets or their digests.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with this key exists already.
    #[error("`{0}` already exists")]
    Duplicate(String),
    /// The database failed.
    #[error("store: {0}")]
    Backend(String),
}

/// A registered OAuth client.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// The `client_id`.
    pub client_id: String,
    /// Human-readable name.
    pub name: String,
    /// SHA-256 of the client secret (the secret itself is never stored).
    pub secret_sha256: Option<Vec<u8>>,
    /// Scopes the client may ever be granted.
    pub allowed_scopes: Vec<String>,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub auth_method: String,
    /// The client's JWKS, for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// `software_id` from its software statement, if any.
    pub software_id: Option<String>,
    /// Organisation, if known.
    pub org: Option<String>,
    /// Resource servers (RFC 8707) this client may ask tokens for; empty: only the default
    /// audience.
    pub resources: Vec<String>,
    /// Accept the token endpoint URL as the `aud` of this client's assertions, besides the
    /// issuer identifier: only for old `private_key_jwt` clients that cannot be updated
    /// (draft-ietf-oauth-rfc7523bis).
    pub legacy_audience: bool,
    /// A disabled client cannot authenticate.
    pub disabled: bool,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field(
                "secret_sha256",
                &self.secret_sha256.as_ref().map(|_| "<redacted>"),
            )
            .field("allowed_scopes", &self.allowed_scopes)
            .field("auth_method", &self.auth_method)
            .field("resources", &self.resources)
            .field("legacy_audience", &self.legacy_audience)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A signing key of the authorization server.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The `kid` (RFC 7638 thumbprint).
    pub kid: String,
    /// JOSE algorithm, e.g. `ES256`.
    pub alg: String,
    /// PKCS#8 DER of the private key.
    pub private_der: Vec<u8>,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// When it stopped signing (it stays published until its tokens expired).
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Everything Arbiter persists. Implementations must be safe for concurrent use and keep
/// every committed write across restarts and crashes.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Adds a client; [`StoreError::Duplicate`] if the id is taken.
    async fn create_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    /// One client by id.
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Every client, by id.
    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// Disables or enables a client; `false` if there is no such client.
    async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
    ) -> Result<bool, StoreError>;
    /// Replaces a client's secret digest; `false` if there is no such client.
    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_sha256: &[u8],
    ) -> Result<bool, StoreError>;
    /// Every signing key: the active one first, then the most recently created.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Adds a signing key and retires every other active one at `key.created_at`, atomically.
    async fn rotate_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Records a client assertion's `jti` until its `exp`; `false` if it was seen before
    /// (a replay).
    async fn use_assertion(&self, client_id: &str, jti: &str, exp: i64)
        -> Result<bool, StoreError>;
    /// Records a revoked token id until its `exp` (idempotent).
    async fn revoke_token(&self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError>;
    /// Revoked token ids that have not expired by `now`: `(issuer, jti, exp)`.
    async fn revoked_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError>;
}

/// Opens the default store: SQLite at `<data_dir>/arbiter.db`, created on first use.
pub async fn open_default(data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(
        SqliteStore::open(&data_dir.join(SQLITE_FILE)).await?,
    ))
}
