//! The `[store]` section: where clients, keys and statements are kept, and the key that
//! seals signing keys at rest. Imports nothing of the crate but the URL redaction.

use std::path::PathBuf;

use serde::Deserialize;

use super::redacted_url;

/// The store: SQLite under `data_dir` unless `url` names a database.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:password@host/db` (several replicas share it) or `sqlite://FILE`;
    /// unset: SQLite at `<data_dir>/arbiter.db`.
    pub url: Option<String>,
    /// Connections in the pool.
    pub max_connections: u32,
    /// The key-encryption key (32 random bytes, base64) that seals signing keys at rest;
    /// `ARBITER_KEY_ENCRYPTION_KEY` wins over it. Unset: keys are stored unencrypted, with a
    /// warning at every start.
    pub key_encryption_key_file: Option<PathBuf>,
    /// The key-encryption key the current one replaces: keys sealed under it are re-sealed
    /// at start (`ARBITER_PREVIOUS_KEY_ENCRYPTION_KEY` wins over it).
    pub previous_key_encryption_key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            key_encryption_key_file: None,
            previous_key_encryption_key_file: None,
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_deref().map(redacted_url))
            .field("max_connections", &self.max_connections)
            .field("key_encryption_key_file", &self.key_encryption_key_file)
            .finish()
    }
}
