//! `arbiter serve`: the decision service, and `--check-config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use arbiter::config::{Config, LogFormat};

use super::load_config;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file; flags and ARBITER_* variables override it.
    #[arg(long, env = "ARBITER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Policy directory, or a signed bundle: an http(s):// or s3:// URL, or a .cjar file
    /// (see [bundles]) [default: policies].
    #[arg(long, env = "ARBITER_POLICIES")]
    pub(crate) policies: Option<PathBuf>,
    /// Data directory for generated keys and the SQLite store [default: data].
    #[arg(long, env = "ARBITER_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite://FILE) instead of the data directory's SQLite.
    #[arg(long, env = "ARBITER_STORE_URL", hide_env_values = true)]
    pub(crate) store_url: Option<String>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "ARBITER_GRPC_ADDR")]
    pub(crate) grpc_addr: Option<SocketAddr>,
    /// HTTP listen address of the OAuth endpoints [default: 127.0.0.1:8080].
    #[arg(long, env = "ARBITER_HTTP_ADDR")]
    pub(crate) http_addr: Option<SocketAddr>,
    /// A listener of its own for the control plane (`PolicyAdmin`) [default: none, served on
    /// the gRPC listener].
    #[arg(long, env = "ARBITER_ADMIN_ADDR")]
    pub(crate) admin_addr: Option<SocketAddr>,
    /// Log format [default: text].
    #[arg(long, env = "ARBITER_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Allow plaintext listeners on non-loopback addresses (logged as a warning).
    #[arg(long)]
    pub(crate) allow_plaintext: bool,
    /// Check the configuration, the policy directory, the store and every issuer's keys,
    /// then exit (0 all good, 1 a problem, 3 invalid policies).
    #[arg(long)]
    pub(crate) check_config: bool,
}

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(args.config.as_ref())?;
    if let Some(p) = args.policies {
        config.policies = p;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(url) = args.store_url {
        config.store.url = Some(url);
    }
    if let Some(a) = args.grpc_addr {
        config.grpc_addr = a;
    }
    if let Some(a) = args.http_addr {
        config.http_addr = a;
    }
    if let Some(a) = args.admin_addr {
        config.admin_addr = Some(a);
    }
    if let Some(f) = args.log_format {
        config.log_format = f;
    }
    config.allow_plaintext |= args.allow_plaintext;
    if args.check_config {
        config.follow_listener();
        return check_config(&config);
    }
    let _telemetry = arbiter::telemetry::init(
        config.log_format,
        &config.telemetry,
        "arbiter",
        // The window only where someone can sign in to read it (and, in `init`, only from
        // JSON lines).
        if config.console.enabled && (config.console.issuer.is_some() || config.console_dev_mode())
        {
            config.console.recent_decisions
        } else {
            0
        },
    )?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let grpc = tokio::net::TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on {} (--grpc-addr)", config.grpc_addr))?;
        let http = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {} (--http-addr)", config.http_addr))?;
        // The issuer follows the listener as bound (a `:0` port included).
        config.http_addr = http.local_addr()?;
        let http = Some(http);
        let admin = match config.admin_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--admin-addr)"))?,
            ),
            None => None,
        };
        let arbiter = match arbiter::Arbiter::build(config.clone()).await {
            Ok(a) => a,
            Err(arbiter::StartError::Policies(e)) => {
                eprintln!("arbiter: {e}");
                return Ok(ExitCode::from(3));
            }
            Err(e) => return Err(e.into()),
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal.cancel();
        });
        let grace = Duration::from_secs(config.shutdown_grace_seconds);
        let stopped = shutdown.clone();
        tokio::select! {
            served = arbiter.serve_with_admin(grpc, http, admin, shutdown) => served?,
            () = async move {
                stopped.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "shutdown grace period over; exiting with requests still in flight");
            }
        }
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// `arbiter serve --check-config`: everything `serve` would load, without serving.
pub(crate) fn check_config(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(arbiter::server::check_config(config));
    for item in &report.items {
        let mark = if item.ok { "ok  " } else { "FAIL" };
        say!("{mark} {}: {}", item.what, item.detail);
    }
    Ok(if report.policies_invalid {
        ExitCode::from(3)
    } else if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
