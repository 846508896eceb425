//! Where a server's policy sets come from: the live set and the shadow candidate, each a
//! watched directory or a bundle source's first bundle (or the persisted one) written out.

use std::sync::Arc;

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
    let source = BundleSource::configured(location, &config.bundles, &config.data_dir)?;
    let dir = source.first_dir().await?;
    Ok((
        Arc::new(policy::LivePolicies::open(&dir)?),
        Some(Arc::new(source)),
    ))
}
