//! `arbiter serve --check-config`: everything `serve` would load — configuration, TLS
//! files, the policy directory, the store, each issuer's keys (fetching JWKS URLs), each
//! introspection endpoint (asked about a made-up token) — checked without serving, each part
//! reported on its own.

use std::time::Duration;

use crate::config::{ClientCerts, Config, Listener};

/// One checked part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckItem {
    /// Whether it is good.
    pub ok: bool,
    /// What was checked (`configuration`, `tls`, `policies`, `store`, `issuer …`).
    pub what: String,
    /// What was found.
    pub detail: String,
}

/// Every checked part, in order.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// The parts.
    pub items: Vec<CheckItem>,
    /// The policy directory did not load (checking stopped there).
    pub policies_invalid: bool,
}

impl CheckReport {
    /// Whether every part is good.
    pub fn ok(&self) -> bool {
        !self.policies_invalid && self.items.iter().all(|i| i.ok)
    }

    fn add(&mut self, ok: bool, what: impl Into<String>, detail: impl Into<String>) {
        self.items.push(CheckItem {
            ok,
            what: what.into(),
            detail: detail.into(),
        });
    }
}

/// Checks everything `serve` would load.
pub async fn check_config(config: &Config) -> CheckReport {
    let mut report = CheckReport::default();
    match config.validate() {
        Ok(()) => report.add(true, "configuration", "valid"),
        Err(e) => report.add(false, "configuration", e.to_string()),
    }
    if let Some(tls) = &config.tls {
        let certs = |l| match tls.client_certs(l) {
            ClientCerts::None => "none",
            ClientCerts::Optional => "optional",
            ClientCerts::Required => "required",
        };
        match crate::tls::server_config(tls, Listener::Grpc)
            .and_then(|_| crate::tls::server_config(tls, Listener::Http))
        {
            Ok(_) => report.add(
                true,
                "tls",
                format!(
                    "certificate {} loads; client certificates: gRPC {}, HTTP {}",
                    tls.cert_file.display(),
                    certs(Listener::Grpc),
                    certs(Listener::Http)
                ),
            ),
            Err(e) => report.add(false, "tls", e.to_string()),
        }
    }
    crate::policy::outputs::allow_identity_headers(config.allow_output_headers.clone());
    // A bundle is fetched and verified as a replica would, into a scratch directory.
    let scratch = tempfile::tempdir();
    let policies = match (
        &scratch,
        crate::bundle::source::is_bundle_location(&config.policies),
    ) {
        (Ok(scratch), true) => match fetch_bundle(config, scratch.path()).await {
            Ok(dir) => dir,
            Err(e) => {
                report.add(false, "policies", e.to_string());
                report.policies_invalid = true;
                return report;
            }
        },
        _ => config.policies.clone(),
    };
    match crate::policy::PolicySnapshot::load(&policies) {
        Ok(s) => report.add(
            true,
            "policies",
            format!(
                "{} policies, {} routes, version {}, revision {} ({})",
                s.policy_count(),
                s.routes.endpoints().len(),
                s.version,
                s.revision,
                config.policies.display()
            ),
        ),
        Err(e) => {
            report.add(false, "policies", e.to_string());
            report.policies_invalid = true;
            return report;
        }
    }
    if config.oauth.enabled {
        match crate::store::open(config).await {
            Ok(store) => match store.clients().await {
                Ok(c) => report.add(
                    true,
                    "store",
                    format!("{} clients in {}", c.len(), crate::store::describe(config)),
                ),
                Err(e) => report.add(false, "store", e.to_string()),
            },
            Err(e) => report.add(false, "store", e.to_string()),
        }
    }
    report.add(true, "console", config.console_sign_in());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    for issuer in &config.issuers {
        let what = format!("issuer {}", issuer.issuer);
        let keys = if let Some(url) = &issuer.jwks_url {
            crate::token::issuer::fetch_jwks(&http, url)
                .await
                .map(|(set, skipped, _)| (set, skipped))
        } else if let Some(file) = &issuer.jwks_file {
            std::fs::read(file)
                .map_err(|e| format!("{}: {e}", file.display()))
                .and_then(|bytes| crate::token::issuer::usable_keys(&bytes))
        } else {
            report.add(true, what, "HMAC secret configured");
            continue;
        };
        match keys {
            Ok((set, skipped)) => {
                let skipped = if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" ({} skipped)", skipped.len())
                };
                report.add(true, what, format!("{} usable keys{skipped}", set.len()));
            }
            Err(e) => report.add(false, what, e),
        }
    }
    if config.issuers.iter().any(|i| i.introspection.is_some()) {
        match crate::token::Verifier::new(config, Vec::new()) {
            Ok(verifier) => {
                for (issuer, probed) in verifier.probe_introspection().await {
                    let what = format!("introspection {issuer}");
                    match probed {
                        Ok(()) => report.add(
                            true,
                            what,
                            "endpoint answers and takes Arbiter's credentials",
                        ),
                        Err(e) => report.add(false, what, e),
                    }
                }
            }
            Err(e) => report.add(false, "introspection", e.to_string()),
        }
    }
    report
}

/// The configured bundle, fetched and verified into `scratch`.
async fn fetch_bundle(
    config: &Config,
    scratch: &std::path::Path,
) -> Result<std::path::PathBuf, crate::bundle::BundleError> {
    crate::bundle::source::BundleSource::configured(&config.policies, &config.bundles, scratch)?
        .first_dir()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
    }

    #[tokio::test]
    async fn reports_each_part_and_stops_at_invalid_policies() {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config::for_test(bundled(), data.path());
        config.issuers.push(
            toml::from_str(
                "issuer = \"https://idp.example\"\naudiences = [\"api\"]\njwks_file = \"/nonexistent/jwks.json\"\n",
            )
            .unwrap(),
        );
        let report = check_config(&config).await;
        let parts: Vec<(&str, bool)> = report
            .items
            .iter()
            .map(|i| (i.what.as_str(), i.ok))
            .collect();
        assert_eq!(
            parts,
            [
                ("configuration", true),
                ("policies", true),
                ("store", true),
                ("console", true),
                ("issuer https://idp.example", false),
            ]
        );
        assert!(!report.ok());

        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("bad.cedar"), "permit(").unwrap();
        let report = check_config(&Config::for_test(empty.path(), data.path())).await;
        assert!(report.policies_invalid);
        assert_eq!(
            report.items.last().map(|i| i.what.as_str()),
            Some("policies")
        );
    }
}
