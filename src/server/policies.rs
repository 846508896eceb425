//! Where a server's policy sets come from: the live set and the shadow candidate, each a
//! watched directory or a bundle source's first bundle (or the persisted one) written out.

use std::sync::Arc;
use std::time::Duration;

use super::StartError;
use crate::config::Config;
use crate::policy;

/// The policies at `location` (the live set's, or the shadow candidate's): the watched
/// directory, or the bundle source's first bundle (or the persisted one) written out.
pub(super) async fn open_policies(
    config: &Config,
    location: &std::path::Path,
) -> Result<
    (
        Arc<policy::LivePolicies>,
        Option<Arc<crate::bundle::source::BundleSource>>,
    ),
    StartError,
> {
    use crate::bundle::source::{is_bundle_location, BundleSource};
    if !is_bundle_location(location) {
        return Ok((Arc::new(policy::LivePolicies::open(location)?), None));
    }
    let trust = crate::bundle::Trust::from_jwks_file(
        config.bundles.keys.as_deref(),
        config.bundles.allow_unsigned,
    )?;
    if trust.allow_unsigned {
        tracing::warn!("[bundles] allow_unsigned: policy bundles without a signature are accepted");
    }
    let source = BundleSource::open(&location.to_string_lossy(), trust, &config.data_dir)?;
    let wait = Duration::from_secs(config.bundles.first_fetch_timeout_seconds);
    let dir = source.first_dir(wait).await?;
    Ok((
        Arc::new(policy::LivePolicies::open(&dir)?),
        Some(Arc::new(source)),
    ))
}
