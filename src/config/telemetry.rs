//! `[telemetry]`: where OpenTelemetry traces go, how many, and under which service name.

use serde::Deserialize;

/// OpenTelemetry traces over OTLP/gRPC. Off (no exporter, no per-request work beyond a
/// disabled span check) unless `endpoint` is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The OTLP/gRPC receiver, e.g. `http://127.0.0.1:4317` (an OpenTelemetry Collector).
    /// Unset: traces are off.
    pub endpoint: Option<String>,
    /// CA bundle (PEM) that an `https://` endpoint's certificate must chain to.
    pub ca_file: Option<std::path::PathBuf>,
    /// The share of new traces recorded, 0.0 to 1.0. A request that arrives with a
    /// `traceparent` follows its caller's sampling decision instead.
    pub sampling_ratio: f64,
    /// The `service.name` of every span; unset: `arbiter` for `arbiter serve`,
    /// `arbiter-gateway` for `arbiter gateway`.
    pub service_name: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            ca_file: None,
            sampling_ratio: 1.0,
            service_name: None,
        }
    }
}

impl TelemetryConfig {
    /// Why these settings cannot work, if they cannot.
    pub fn invalid(&self) -> Option<String> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Some(format!(
                "[telemetry] `sampling_ratio` must be between 0.0 and 1.0, not {}",
                self.sampling_ratio
            ));
        }
        if self
            .service_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Some("[telemetry] `service_name` is empty".into());
        }
        let endpoint = self.endpoint.as_deref()?;
        match url::Url::parse(endpoint) {
            Ok(u) if u.scheme() == "https" && u.host().is_some() && self.ca_file.is_none() => {
                Some("[telemetry] an `https://` endpoint needs `ca_file`".into())
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => None,
            _ => Some(format!(
                "[telemetry] `endpoint` must be an http:// or https:// URL, not `{}`",
                super::redacted_url(endpoint)
            )),
        }
    }
}
