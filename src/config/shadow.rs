//! The `[shadow]` section: a candidate policy set decided beside the live one on a share of
//! live traffic, before it is promoted.

use std::path::PathBuf;

use serde::Deserialize;

/// The shadow candidate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowConfig {
    /// The candidate: a directory (watched like the live one) or a bundle (polled, trusted as
    /// `[bundles]` says). Unset: no shadow.
    pub policies: Option<PathBuf>,
    /// The share of live decisions decided again (0 to 1).
    pub share: f64,
    /// Samples waiting at most; past it they are dropped and counted.
    pub queue: usize,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            policies: None,
            share: 0.1,
            queue: 1024,
        }
    }
}

impl ShadowConfig {
    /// What is wrong with the section, if anything.
    pub(super) fn invalid(&self) -> Option<String> {
        if !(0.0..=1.0).contains(&self.share) {
            return Some("[shadow] `share` must be between 0 and 1".into());
        }
        if self.queue == 0 || self.queue > 1_000_000 {
            return Some("[shadow] `queue` must be 1 to 1000000".into());
        }
        None
    }
}
