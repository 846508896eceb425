//! The `[fleet]` section: how a replica names itself in the shared store and how often it
//! says what it runs.

use serde::Deserialize;

/// The replica's place in the fleet view.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// The replica's id in `arbiter fleet status` [default: host name and gRPC address].
    pub replica_id: Option<String>,
    /// Seconds between heartbeats.
    pub heartbeat_seconds: u64,
    /// A replica whose last heartbeat is older than this is flagged `silent`.
    pub silent_after_seconds: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            replica_id: None,
            heartbeat_seconds: 10,
            silent_after_seconds: 30,
        }
    }
}

impl FleetConfig {
    /// What is wrong with the section, if anything.
    pub(super) fn invalid(&self) -> Option<String> {
        if self.heartbeat_seconds == 0 || self.heartbeat_seconds > 3_600 {
            return Some("[fleet] `heartbeat_seconds` must be 1 to 3600".into());
        }
        if self.silent_after_seconds < self.heartbeat_seconds {
            return Some(
                "[fleet] `silent_after_seconds` must be at least `heartbeat_seconds`".into(),
            );
        }
        if self
            .replica_id
            .as_ref()
            .is_some_and(|id| id.is_empty() || id.len() > 200 || id.chars().any(char::is_control))
        {
            return Some("[fleet] `replica_id` must be 1 to 200 printable characters".into());
        }
        None
    }
}
