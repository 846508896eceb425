//! Persistence behind one [`Store`] trait: registered clients, signing keys, revoked token
//! ids, used assertions, software statements and their audit trail. Embedded SQLite by
//! default (a file under the data directory, nothing to install); PostgreSQL when several
//! replicas share one database. Both are [`SqlStore`]: the same statements and migrations.
//! Knows nothing of OAuth rules: it keeps records.

mod private;
pub mod sealing;
mod sql;

use std::sync::Arc;

pub use private::{create_private_dir, create_private_file, restrict_file};
pub use sql::{postgres_dialect, redacted_url, Backend, SqlStore};

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
    /// Or where to fetch it.
    pub jwks_uri: Option<String>,
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
    /// The software statement it registered with: `(iss, jti)`.
    pub statement: Option<(String, String)>,
    /// SHA-256 of its RFC 7592 registration access token, if it registered itself.
    pub registration_token_sha256: Option<Vec<u8>>,
    /// Its RFC 7591 metadata as registered (client_name, grant_types, contacts, …).
    pub metadata: Option<serde_json::Value>,
    /// For `tls_client_auth` (RFC 8705 §2.1.2), the certificate subject it registered:
    /// `(parameter, value)` with the parameter one of `tls_client_auth_subject_dn`,
    /// `tls_client_auth_san_dns`, `_san_uri`, `_san_ip` or `_san_email`.
    pub tls_subject: Option<(String, String)>,
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
            .field("tls_subject", &self.tls_subject)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A signing key of the authorization server.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The `kid` (RFC 7638 thumbprint).
    pub kid: String,
    /// What it signs: [`KEY_PURPOSE_ACCESS_TOKEN`] or [`KEY_PURPOSE_STATEMENT`].
    pub purpose: String,
    /// JOSE algorithm, e.g. `ES256`.
    pub alg: String,
    /// PKCS#8 DER of the private key.
    pub private_der: Vec<u8>,
    /// Whether the store keeps it encrypted under a key-encryption key (see [`sealing`]).
    pub protected: bool,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// When it stopped signing (it stays published until its tokens expired).
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
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
    /// Every signing key of a purpose: the active one first, then the most recently created.
    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Makes `key` the active key of its purpose, retiring `replaces` at `key.created_at`,
    /// atomically. `replaces` names the key the caller saw active (`None`: there was none);
    /// if that is no longer so (another process rotated first), nothing is written and the
    /// answer is `false`. At most one key per purpose is ever active.
    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Records a client assertion's `jti` until its `exp`; `false` if it was seen before
    /// (a replay).
    async fn use_assertion(&self, client_id: &str, jti: &str, exp: i64)
        -> Result<bool, StoreError>;
    /// Records a revoked token id until its `exp` (idempotent).
    async fn revoke_token(&self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError>;
    /// Revoked token ids that have not expired by `now` and were revoked at or after
    /// `revoked_since`: `(issuer, jti, exp)`.
    async fn revoked_tokens(
        &self,
        now: i64,
        revoked_since: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError>;
    /// Ids of every disabled client.
    async fn disabled_clients(&self) -> Result<Vec<String>, StoreError>;

    /// Registers a client (RFC 7591), consuming its software statement's `(iss, jti)` if it
    /// has one: [`StoreError::Duplicate`] if that statement was used before. Audited in the
    /// same transaction.
    async fn register_client(
        &self,
        client: &ClientRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Replaces a client's registered metadata (RFC 7592 update), never its `disabled` flag:
    /// `false` if it is gone or disabled by now (an update read before a disable, and written
    /// after it, must not enable the client again).
    async fn update_client(
        &self,
        client: &ClientRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Disables a client for good, with its audit event, in one transaction (RFC 7592
    /// delete); `false` if it is gone.
    async fn delete_client(&self, client_id: &str, audit: &AuditEvent) -> Result<bool, StoreError>;

    /// Stores a new software statement request.
    async fn create_ssa_request(
        &self,
        request: &SsaRequestRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// One request by id.
    async fn ssa_request(&self, id: &str) -> Result<Option<SsaRequestRecord>, StoreError>;
    /// Requests, newest first, optionally only of a status and/or a requester.
    async fn ssa_requests(
        &self,
        status: Option<&str>,
        requester: Option<&str>,
    ) -> Result<Vec<SsaRequestRecord>, StoreError>;
    /// Records a review decision on a pending request, and the statement issued for it if
    /// approved; `false` (nothing written) if the request is not pending any more.
    async fn decide_ssa_request(
        &self,
        request: &SsaRequestRecord,
        statement: Option<&StatementRecord>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// One issued statement by `jti`.
    async fn statement(&self, jti: &str) -> Result<Option<StatementRecord>, StoreError>;
    /// Revokes a statement and disables every client registered with it, atomically.
    /// `None` if there is no such statement or it was revoked already; else the disabled
    /// client ids.
    async fn revoke_statement(
        &self,
        issuer: &str,
        jti: &str,
        audit: &AuditEvent,
    ) -> Result<Option<Vec<String>>, StoreError>;

    /// Audit events matching every given field, oldest first.
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;

    /// Records (or refreshes) what one replica runs: its heartbeat.
    async fn record_replica(&self, replica: &ReplicaRecord) -> Result<(), StoreError>;
    /// Every replica that has recorded itself, by id.
    async fn replicas(&self) -> Result<Vec<ReplicaRecord>, StoreError>;
    /// Removes a replica gone for good; whether it was there.
    async fn forget_replica(&self, replica_id: &str) -> Result<bool, StoreError>;
}

/// One replica of the fleet as it last described itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaRecord {
    /// Stable across restarts (`[fleet] replica_id`, or host and gRPC address).
    pub replica_id: String,
    /// Where it serves decisions.
    pub address: String,
    /// The live policy revision.
    pub revision: String,
    /// The live policy set's content hash.
    pub version: String,
    /// When the live set was loaded (seconds since the epoch).
    pub loaded_at: i64,
    /// How the last reload ended: `applied`, `unchanged`, `failed`, or `none` yet.
    pub last_reload: String,
    /// Why the last reload or bundle fetch failed; empty otherwise.
    pub last_error: String,
    /// The policy directory or bundle source.
    pub source: String,
    /// When the process started.
    pub started_at: i64,
    /// When it last recorded itself.
    pub heartbeat_at: i64,
}

/// What a signing key signs: access tokens of the token endpoint.
pub const KEY_PURPOSE_ACCESS_TOKEN: &str = "access_token";
/// What a signing key signs: software statements.
pub const KEY_PURPOSE_STATEMENT: &str = "software_statement";

/// A request for a software statement, from submission to review.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SsaRequestRecord {
    /// Request id (UUIDv7).
    pub id: String,
    /// Who asked: the Cedar principal of their token, e.g. `Client::"abc"`.
    pub requester: String,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    /// Software name.
    pub software_name: String,
    /// Software version, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// What the software does.
    pub description: String,
    /// How to reach its developers.
    pub contact: String,
    /// Organisation, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Scopes asked for.
    pub requested_scopes: Vec<String>,
    /// Grant types asked for.
    pub grant_types: Vec<String>,
    /// Why the software needs them.
    pub justification: String,
    /// Its JWKS, for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Or its JWKS URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Who reviewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// The reviewer's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Scopes approved (a subset of those asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_scopes: Vec<String>,
    /// The statement issued on approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_jti: Option<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// When it was reviewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
}

/// A software statement Arbiter issued.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatementRecord {
    /// `jti`.
    pub jti: String,
    /// `iss`.
    pub issuer: String,
    /// The request it answers.
    pub request_id: String,
    /// `software_id`.
    pub software_id: String,
    /// `authorization.allowed_scopes`.
    pub allowed_scopes: Vec<String>,
    /// `iat`.
    pub issued_at: i64,
    /// `exp`.
    pub expires_at: i64,
    /// The signed JWT.
    pub jwt: String,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// One audited step: who did what, when, why, to which request, statement or client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Sequence number (assigned by the store; 0 before).
    pub id: i64,
    /// Seconds since the epoch.
    pub at: i64,
    /// Who: a Cedar principal, or `cli` / `system`.
    pub actor: String,
    /// What, e.g. `ssa.request`, `ssa.approve`, `ssa.deny`, `ssa.revoke`, `client.register`.
    pub action: String,
    /// The request concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The statement concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_jti: Option<String>,
    /// The client concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The stated reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything else worth keeping (e.g. scopes asked and approved).
    #[serde(default)]
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// An event now.
    pub fn new(actor: impl Into<String>, action: &str) -> Self {
        Self {
            id: 0,
            at: crate::clock::now_i64(),
            actor: actor.into(),
            action: action.to_owned(),
            request_id: None,
            statement_jti: None,
            client_id: None,
            reason: None,
            detail: serde_json::Value::Null,
        }
    }
}

/// Which audit events to return; every field given must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// By request.
    pub request_id: Option<String>,
    /// By statement.
    pub statement_jti: Option<String>,
    /// By client.
    pub client_id: Option<String>,
}

/// Opens the configured store: the `[store] url` database if set, else SQLite at
/// `<data_dir>/arbiter.db`, created on first use.
pub async fn open(config: &crate::config::Config) -> Result<Arc<dyn Store>, StoreError> {
    let sealer = sealing::Sealer::from_config(&config.store)?;
    let protects = sealer.protects();
    let store = match &config.store.url {
        Some(url) => SqlStore::connect(url, config.store.max_connections).await?,
        None => SqlStore::sqlite(&config.data_dir.join(SQLITE_FILE)).await?,
    };
    let (store, sealed) = store.with_sealer(sealer).await?;
    if sealed > 0 {
        tracing::info!(
            keys = sealed,
            "signing keys sealed under the current key-encryption key"
        );
    }
    if !protects {
        tracing::warn!("signing keys are stored unencrypted: set [store] key_encryption_key_file or ARBITER_KEY_ENCRYPTION_KEY so a copy of the store signs nothing");
    }
    Ok(Arc::new(store))
}

/// Where [`open`] keeps its records, for messages (no password).
pub fn describe(config: &crate::config::Config) -> String {
    match &config.store.url {
        Some(url) => redacted_url(url),
        None => config.data_dir.join(SQLITE_FILE).display().to_string(),
    }
}
