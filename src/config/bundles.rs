//! The `[bundles]` section: how a replica trusts and polls policy bundles when `policies`
//! names a bundle (a URL or a `.cjar` file) instead of a directory.

use std::path::PathBuf;

use serde::Deserialize;

/// Trust and polling for bundle sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BundlesConfig {
    /// The JWKS whose keys bundle signatures must verify with.
    pub keys: Option<PathBuf>,
    /// Accept bundles without a signature (a warning at every start). Off by default: an
    /// unsigned bundle is refused.
    pub allow_unsigned: bool,
    /// Seconds between polls of the source.
    pub poll_interval_seconds: u64,
    /// How long the first fetch at start may take before the persisted bundle is served.
    pub first_fetch_timeout_seconds: u64,
}

impl Default for BundlesConfig {
    fn default() -> Self {
        Self {
            keys: None,
            allow_unsigned: false,
            poll_interval_seconds: 30,
            first_fetch_timeout_seconds: 10,
        }
    }
}

impl BundlesConfig {
    /// What is wrong with the section, if anything.
    pub(super) fn invalid(&self) -> Option<String> {
        if self.poll_interval_seconds == 0 || self.poll_interval_seconds > 86_400 {
            return Some("[bundles] `poll_interval_seconds` must be 1 to 86400".into());
        }
        if self.first_fetch_timeout_seconds == 0 || self.first_fetch_timeout_seconds > 600 {
            return Some("[bundles] `first_fetch_timeout_seconds` must be 1 to 600".into());
        }
        None
    }
}
