//! `arbiter gateway`: the reverse proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;

use arbiter::config::LogFormat;

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// TOML file with any of the settings below (same names, `-` as `_`); flags win.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Where to listen [default: 127.0.0.1:8000].
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// The upstream base URL.
    #[arg(long)]
    pub(crate) upstream: Option<String>,
    /// Arbiter's gRPC URL [default: http://127.0.0.1:50051]; `https://` with --pdp-ca.
    #[arg(long)]
    pub(crate) pdp: Option<String>,
    /// CA bundle (PEM) to verify Arbiter's certificate with.
    #[arg(long)]
    pub(crate) pdp_ca: Option<PathBuf>,
    /// Client certificate (PEM) for an Arbiter that requires mTLS (with --pdp-key).
    #[arg(long, requires = "pdp_key")]
    pub(crate) pdp_cert: Option<PathBuf>,
    /// Client key (PEM) for --pdp-cert.
    #[arg(long, requires = "pdp_cert")]
    pub(crate) pdp_key: Option<PathBuf>,
    /// Strip the Authorization header before forwarding.
    #[arg(long)]
    pub(crate) strip_authorization: bool,
    /// Accept `access_token` in the query string (RFC 6750 §2.3).
    #[arg(long)]
    pub(crate) allow_query_token: bool,
    /// Copy a request header into the decision context: `x-fraud-score=fraud_score`.
    #[arg(long = "context-header", value_name = "HEADER=KEY")]
    pub(crate) context_headers: Vec<String>,
    /// Deadline for one decision, in milliseconds [default: 250].
    #[arg(long)]
    pub(crate) deadline_ms: Option<u64>,
    /// Decisions cached, 0 for none [default: 10000].
    #[arg(long)]
    pub(crate) cache: Option<usize>,
    /// Forward when the PDP is unreachable (dangerous; logged on every use).
    #[arg(long)]
    pub(crate) fail_open: bool,
    /// Longest wait for the upstream's response headers, in seconds [default: 30].
    #[arg(long)]
    pub(crate) upstream_timeout: Option<u64>,
    /// Largest request body forwarded [default: 10485760].
    #[arg(long)]
    pub(crate) max_body_bytes: Option<usize>,
    /// Serve TLS with this certificate chain (PEM, leaf first), re-read when it changes.
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// CA bundle (PEM) of client certificates.
    #[arg(long)]
    pub(crate) client_ca: Option<PathBuf>,
    /// Client certificates: none, optional (any, its thumbprint goes to Arbiter so RFC 8705
    /// certificate-bound tokens work) or required (chaining to --client-ca)
    /// [default: required with --client-ca, else none].
    #[arg(long, value_parser = ["none", "optional", "required"])]
    pub(crate) client_certs: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
}

/// `arbiter gateway --config FILE`: the same settings as the flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayFile {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) upstream: Option<String>,
    pub(crate) pdp: Option<String>,
    pub(crate) pdp_ca: Option<PathBuf>,
    pub(crate) pdp_cert: Option<PathBuf>,
    pub(crate) pdp_key: Option<PathBuf>,
    #[serde(default)]
    pub(crate) strip_authorization: bool,
    #[serde(default)]
    pub(crate) allow_query_token: bool,
    #[serde(default)]
    pub(crate) context_headers: Vec<String>,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) cache: Option<usize>,
    #[serde(default)]
    pub(crate) fail_open: bool,
    pub(crate) upstream_timeout: Option<u64>,
    pub(crate) max_body_bytes: Option<usize>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) client_certs: Option<arbiter::tls::ClientCerts>,
}

pub(crate) fn gateway(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    use arbiter::gateway::{serve, GatewayConfig};
    let _log = arbiter::telemetry::init(args.log_format);
    let file: GatewayFile = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            toml::from_str(&text).with_context(|| format!("`{}`", path.display()))?
        }
        None => GatewayFile::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));
    let upstream = args
        .upstream
        .or(file.upstream)
        .context("--upstream (or `upstream` in --config) is required")?;
    let pdp = args
        .pdp
        .or(file.pdp)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let mut config = GatewayConfig::new(upstream, pdp);
    config.pass_authorization = !(args.strip_authorization || file.strip_authorization);
    config.allow_query_token = args.allow_query_token || file.allow_query_token;
    config.pdp.deadline =
        Duration::from_millis(args.deadline_ms.or(file.deadline_ms).unwrap_or(250));
    config.pdp.cache_capacity = args.cache.or(file.cache).unwrap_or(10_000);
    config.pdp.fail_open = args.fail_open || file.fail_open;
    if let Some(ca_file) = args.pdp_ca.or(file.pdp_ca) {
        let identity = match (
            args.pdp_cert.or(file.pdp_cert),
            args.pdp_key.or(file.pdp_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("pdp_cert and pdp_key go together"),
        };
        config.pdp.tls = Some(arbiter::client::ClientTls {
            ca_file,
            identity,
            domain: None,
        });
    } else if config.pdp.endpoint.starts_with("https://") {
        bail!("an https:// PDP needs --pdp-ca (the gateway never accepts any certificate)");
    }
    config.upstream_timeout = Duration::from_secs(
        args.upstream_timeout
            .or(file.upstream_timeout)
            .unwrap_or(30),
    );
    config.max_body_bytes = args
        .max_body_bytes
        .or(file.max_body_bytes)
        .unwrap_or(10 * 1024 * 1024);
    let client_certs = match args.client_certs.as_deref() {
        Some("none") => Some(arbiter::tls::ClientCerts::None),
        Some("optional") => Some(arbiter::tls::ClientCerts::Optional),
        Some(_) => Some(arbiter::tls::ClientCerts::Required),
        None => file.client_certs,
    };
    let client_ca_file = args.client_ca.or(file.client_ca);
    config.tls = match (
        args.tls_cert.or(file.tls_cert),
        args.tls_key.or(file.tls_key),
    ) {
        (Some(cert_file), Some(key_file)) => {
            let tls = arbiter::config::TlsConfig {
                cert_file,
                key_file,
                client_ca_file,
                reload_seconds: 10,
                grpc_client_certs: None,
                http_client_certs: client_certs,
            };
            if tls.client_certs(arbiter::tls::Listener::Http) == arbiter::tls::ClientCerts::Required
                && tls.client_ca_file.is_none()
            {
                bail!("required client certificates need --client-ca");
            }
            Some(tls)
        }
        (None, None) if client_ca_file.is_some() || client_certs.is_some() => {
            bail!("client certificates need TLS: --tls-cert and --tls-key")
        }
        (None, None) => None,
        _ => bail!("tls_cert and tls_key go together"),
    };
    let mappings = if args.context_headers.is_empty() {
        file.context_headers
    } else {
        args.context_headers
    };
    for mapping in &mappings {
        let (h, key) = mapping
            .split_once('=')
            .with_context(|| format!("context header `{mapping}` is HEADER=KEY"))?;
        let name = axum::http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes())
            .with_context(|| format!("`{h}` is not a header name"))?;
        config.context_headers.push((name, key.trim().to_owned()));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(listen = %listener.local_addr()?, upstream = %config.upstream, pdp = %config.pdp.endpoint, "arbiter gateway ready");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        serve(listener, config, shutdown).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
