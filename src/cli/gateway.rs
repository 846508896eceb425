//! `arbiter gateway`: the reverse proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use arbiter::config::ClientCerts;

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
    #[arg(long, env = "ARBITER_ADDR")]
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
    #[arg(long, value_enum)]
    pub(crate) client_certs: Option<ClientCertsArg>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
}

pub(crate) fn gateway(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    use arbiter::gateway::{serve, GatewaySettings};
    let file: GatewaySettings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            toml::from_str(&text).with_context(|| format!("`{}`", path.display()))?
        }
        None => GatewaySettings::default(),
    };
    let flags = GatewaySettings {
        listen: args.listen,
        upstream: args.upstream,
        pdp: args.pdp,
        pdp_ca: args.pdp_ca,
        pdp_cert: args.pdp_cert,
        pdp_key: args.pdp_key,
        strip_authorization: args.strip_authorization,
        allow_query_token: args.allow_query_token,
        context_headers: args.context_headers,
        deadline_ms: args.deadline_ms,
        cache: args.cache,
        fail_open: args.fail_open,
        upstream_timeout: args.upstream_timeout,
        max_body_bytes: args.max_body_bytes,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        client_ca: args.client_ca,
        client_certs: args.client_certs.map(ClientCerts::from),
        telemetry: Default::default(),
    };
    let _telemetry =
        arbiter::telemetry::init(args.log_format, &file.telemetry, "arbiter-gateway", 0)?;
    let (listen, config) = flags.over(file).resolve().map_err(anyhow::Error::msg)?;
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

/// `--client-certs`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ClientCertsArg {
    None,
    Optional,
    Required,
}

impl From<ClientCertsArg> for ClientCerts {
    fn from(a: ClientCertsArg) -> Self {
        match a {
            ClientCertsArg::None => Self::None,
            ClientCertsArg::Optional => Self::Optional,
            ClientCertsArg::Required => Self::Required,
        }
    }
}
