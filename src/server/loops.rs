//! The loops a running server keeps: following the shared store (disabled clients,
//! revocations), keeping signing keys current, reloading policies on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Arbiter;
use crate::{policy, telemetry};

impl Arbiter {
    /// Until `shutdown`, follows what other processes (the CLI, other replicas sharing the
    /// store) change: every second, re-reads which clients are disabled and the tokens
    /// revoked since the last look, so both are refused here within about a second.
    pub(super) async fn follow_store(&self, shutdown: &CancellationToken) {
        let Some(tokens) = &self.tokens else {
            return;
        };
        // Revocations are read by their time with a minute's overlap, so a replica whose clock
        // runs behind ours is not missed; known ones cost nothing.
        let mut since = crate::clock::now_i64();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let verifier = self.pdp.verifier();
            match tokens.store().disabled_clients().await {
                Ok(ids) => verifier.set_disabled_clients(&self.config.oauth.issuer, ids),
                Err(e) => {
                    telemetry::metrics::METRICS.store_error("disabled_clients");
                    tracing::warn!(error = %e, "cannot read disabled clients; keeping the last known set")
                }
            }
            let now = crate::clock::now_i64();
            match tokens.store().revoked_tokens(now, since - 60).await {
                Ok(revoked) => {
                    for (issuer, jti, exp) in revoked {
                        verifier.revoke(&issuer, &jti, u64::try_from(exp).unwrap_or(0));
                    }
                    since = now;
                }
                Err(e) => {
                    telemetry::metrics::METRICS.store_error("revoked_tokens");
                    tracing::warn!(error = %e, "cannot read revoked tokens; will try again")
                }
            }
        }
    }

    /// Keeps the signing keys current until `shutdown`: rotates when the active key is older
    /// than `[oauth] key_rotation_seconds` (so a restart does not postpone it), and otherwise
    /// re-reads the store every few seconds to pick up rotations made elsewhere.
    pub(super) async fn maintain_signing_keys(&self, shutdown: &CancellationToken) {
        let Some(tokens) = &self.tokens else {
            return;
        };
        let rotation = self.config.oauth.key_rotation_seconds.map(|s| s.max(1));
        let tick = Duration::from_secs(
            rotation.map_or(KEY_REFRESH_SECONDS, |r| r.min(KEY_REFRESH_SECONDS)),
        );
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let now = crate::clock::now_i64();
            let age = now.saturating_sub(tokens.keys().current().active_created_at);
            let due = rotation.is_some_and(|every| age >= i64::try_from(every).unwrap_or(i64::MAX));
            let outcome = if due {
                self.rotate_signing_key().await.map(drop)
            } else {
                self.refresh_signing_keys().await
            };
            if let Err(e) = outcome {
                telemetry::metrics::METRICS.store_error("signing_keys");
                tracing::error!(error = %e, rotate = due, "signing key maintenance failed; the current keys stay in use");
            }
        }
    }
}

/// How often a running server re-reads its signing keys from the store.
pub const KEY_REFRESH_SECONDS: u64 = 5;

/// Reloads the policies on SIGHUP until `shutdown`.
pub(super) fn spawn_sighup_reload(store: Arc<policy::LivePolicies>, shutdown: CancellationToken) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload by file change or the admin RPC");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hangup.recv() => {
                    policy::reload_in_background(store.clone(), policy::Trigger::Signal).await;
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (store, shutdown);
}
