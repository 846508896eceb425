//! The gateway's settings as a person writes them (flags, or the same keys in a TOML file)
//! and their resolution into a [`GatewayConfig`]: a pure function, so what the flags mean
//! is tested without starting anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::GatewayConfig;
use crate::config::{ClientCerts, Listener, TelemetryConfig, TlsConfig};

/// `arbiter gateway` settings: every flag, and the same keys of its `--config` file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Where to listen (default `127.0.0.1:8000`).
    pub listen: Option<SocketAddr>,
    /// The upstream base URL (required).
    pub upstream: Option<String>,
    /// Arbiter's gRPC URL (default `http://127.0.0.1:50051`).
    pub pdp: Option<String>,
    /// CA bundle to verify Arbiter's certificate with.
    pub pdp_ca: Option<PathBuf>,
    /// Client certificate for an Arbiter that requires mTLS.
    pub pdp_cert: Option<PathBuf>,
    /// Its key.
    pub pdp_key: Option<PathBuf>,
    /// Strip `Authorization` before forwarding.
    #[serde(default)]
    pub strip_authorization: bool,
    /// Accept `access_token` in the query string.
    #[serde(default)]
    pub allow_query_token: bool,
    /// `HEADER=KEY`: copy a request header into the decision context.
    #[serde(default)]
    pub context_headers: Vec<String>,
    /// Deadline of one decision in milliseconds (default 250).
    pub deadline_ms: Option<u64>,
    /// Decisions cached (default 10 000).
    pub cache: Option<usize>,
    /// Forward when the PDP is unreachable.
    #[serde(default)]
    pub fail_open: bool,
    /// Longest wait for the upstream's response headers in seconds (default 30).
    pub upstream_timeout: Option<u64>,
    /// Largest request body forwarded (default 10 MiB).
    pub max_body_bytes: Option<usize>,
    /// TLS certificate chain to serve.
    pub tls_cert: Option<PathBuf>,
    /// Its key.
    pub tls_key: Option<PathBuf>,
    /// CA bundle of client certificates.
    pub client_ca: Option<PathBuf>,
    /// What is asked of client certificates.
    pub client_certs: Option<ClientCerts>,
    /// OpenTelemetry traces (the `[telemetry]` table of the file; off unless it names an
    /// endpoint).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

impl GatewaySettings {
    /// These settings (flags) over `file`'s: a value given here wins, a switch is on when
    /// either turns it on, context headers given here replace the file's.
    pub fn over(self, file: Self) -> Self {
        Self {
            listen: self.listen.or(file.listen),
            upstream: self.upstream.or(file.upstream),
            pdp: self.pdp.or(file.pdp),
            pdp_ca: self.pdp_ca.or(file.pdp_ca),
            pdp_cert: self.pdp_cert.or(file.pdp_cert),
            pdp_key: self.pdp_key.or(file.pdp_key),
            strip_authorization: self.strip_authorization || file.strip_authorization,
            allow_query_token: self.allow_query_token || file.allow_query_token,
            context_headers: if self.context_headers.is_empty() {
                file.context_headers
            } else {
                self.context_headers
            },
            deadline_ms: self.deadline_ms.or(file.deadline_ms),
            cache: self.cache.or(file.cache),
            fail_open: self.fail_open || file.fail_open,
            upstream_timeout: self.upstream_timeout.or(file.upstream_timeout),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            client_ca: self.client_ca.or(file.client_ca),
            client_certs: self.client_certs.or(file.client_certs),
            telemetry: file.telemetry,
        }
    }

    /// The listen address and the gateway's configuration, or what is wrong with them.
    pub fn resolve(self) -> Result<(SocketAddr, GatewayConfig), String> {
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));
        let upstream = self
            .upstream
            .ok_or("--upstream (or `upstream` in --config) is required")?;
        let pdp = self.pdp.unwrap_or_else(|| "http://127.0.0.1:50051".into());
        let mut config = GatewayConfig::new(upstream, pdp);
        config.pass_authorization = !self.strip_authorization;
        config.allow_query_token = self.allow_query_token;
        config.pdp.deadline = Duration::from_millis(self.deadline_ms.unwrap_or(250));
        config.pdp.cache_capacity = self.cache.unwrap_or(10_000);
        config.pdp.fail_open = self.fail_open;
        if let Some(ca_file) = self.pdp_ca {
            let identity = match (self.pdp_cert, self.pdp_key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => return Err("pdp_cert and pdp_key go together".into()),
            };
            config.pdp.tls = Some(crate::client::ClientTls {
                ca_file,
                identity,
                domain: None,
            });
        } else if config.pdp.endpoint.starts_with("https://") {
            return Err(
                "an https:// PDP needs --pdp-ca (the gateway never accepts any certificate)".into(),
            );
        }
        config.upstream_timeout = Duration::from_secs(self.upstream_timeout.unwrap_or(30));
        config.max_body_bytes = self.max_body_bytes.unwrap_or(10 * 1024 * 1024);
        config.tls = match (self.tls_cert, self.tls_key) {
            (Some(cert_file), Some(key_file)) => {
                let tls = TlsConfig {
                    cert_file,
                    key_file,
                    client_ca_file: self.client_ca,
                    reload_seconds: 10,
                    grpc_client_certs: None,
                    http_client_certs: self.client_certs,
                };
                if tls.client_certs(Listener::Http) == ClientCerts::Required
                    && tls.client_ca_file.is_none()
                {
                    return Err("required client certificates need --client-ca".into());
                }
                Some(tls)
            }
            (None, None) if self.client_ca.is_some() || self.client_certs.is_some() => {
                return Err("client certificates need TLS: --tls-cert and --tls-key".into())
            }
            (None, None) => None,
            _ => return Err("tls_cert and tls_key go together".into()),
        };
        for mapping in &self.context_headers {
            let (h, key) = mapping
                .split_once('=')
                .ok_or_else(|| format!("context header `{mapping}` is HEADER=KEY"))?;
            let name = axum::http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("`{h}` is not a header name"))?;
            config.context_headers.push((name, key.trim().to_owned()));
        }
        Ok((listen, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: GatewaySettings = toml::from_str(
            "upstream = \"http://file:9000\"\ncache = 5\nfail_open = true\ncontext_headers = [\"x-a=a\"]\n",
        )
        .unwrap();
        let flags = GatewaySettings {
            upstream: Some("http://flag:9000".into()),
            context_headers: vec!["X-Fraud-Score=fraud_score".into()],
            ..Default::default()
        };
        let (listen, c) = flags.over(file).resolve().unwrap();
        assert_eq!(listen, SocketAddr::from(([127, 0, 0, 1], 8000)));
        assert_eq!(c.upstream, "http://flag:9000");
        assert_eq!(c.pdp.cache_capacity, 5);
        assert!(c.pdp.fail_open && c.pass_authorization && !c.allow_query_token);
        assert_eq!(c.pdp.deadline, Duration::from_millis(250));
        assert_eq!(c.context_headers.len(), 1);
        assert_eq!(c.context_headers[0].0.as_str(), "x-fraud-score");
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let base = || GatewaySettings {
            upstream: Some("http://u".into()),
            ..Default::default()
        };
        for (settings, why) in [
            (GatewaySettings::default(), "required"),
            (
                GatewaySettings {
                    pdp: Some("https://pdp:50051".into()),
                    ..base()
                },
                "--pdp-ca",
            ),
            (
                GatewaySettings {
                    client_certs: Some(ClientCerts::Optional),
                    ..base()
                },
                "need TLS",
            ),
            (
                GatewaySettings {
                    tls_cert: Some("c.pem".into()),
                    ..base()
                },
                "go together",
            ),
            (
                GatewaySettings {
                    context_headers: vec!["nokey".into()],
                    ..base()
                },
                "HEADER=KEY",
            ),
        ] {
            let err = settings.resolve().unwrap_err();
            assert!(err.contains(why), "{err} (expected {why})");
        }
    }
}
