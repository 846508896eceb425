//! `arbiter bench` and the hidden echo server it measures against.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::json;

use arbiter::token::keys::load_or_generate_dev_key;
use arbiter::token::mint::{mint, DevTokenRequest};
use arbiter::wire::proto::{self};

use super::load_config;
use super::serve::wait_for_signal;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "ARBITER_ADDR")]
    pub(crate) addr: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// HTTP/2 connections to spread them over.
    #[arg(long, default_value_t = 2)]
    pub(crate) connections: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) duration: f64,
    /// Stop after this many requests instead of a duration.
    #[arg(long)]
    pub(crate) requests: Option<u64>,
    /// Total requests per second (paced); as fast as possible when absent.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Unmeasured seconds before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Send only this token (with --method and --path) instead of the bundled mix.
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Method for --token.
    #[arg(long, default_value = "GET")]
    pub(crate) method: String,
    /// Path for --token.
    #[arg(long, default_value = "/item/42")]
    pub(crate) path: String,
    /// Load the OAuth token endpoint at this base URL (e.g. `http://127.0.0.1:8080`) instead
    /// of `Authorize`: client_credentials with HTTP Basic.
    #[arg(long, requires = "client_id")]
    pub(crate) token_endpoint: Option<String>,
    /// Client id for --token-endpoint.
    #[arg(long, env = "CLIENT_ID")]
    pub(crate) client_id: Option<String>,
    /// Client secret for --token-endpoint (prefer the environment variable).
    #[arg(long, env = "CLIENT_SECRET", hide_env_values = true)]
    pub(crate) client_secret: Option<String>,
    /// `scope` for --token-endpoint.
    #[arg(long)]
    pub(crate) scope: Option<String>,
    /// With --token-endpoint: a new connection per token instead of keep-alive.
    #[arg(long)]
    pub(crate) no_keep_alive: bool,
    /// Load this URL with GET (an API directly or through `arbiter gateway`), with
    /// `--token` as the bearer token if given.
    #[arg(long)]
    pub(crate) http_url: Option<String>,
    /// Data directory whose development key mints the mix's tokens [default: data].
    #[arg(long, env = "ARBITER_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Configuration file (for the development issuer's name and audience).
    #[arg(long, env = "ARBITER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// First run the same load against a bare echo server started as a child process, then
    /// report the target as a ratio of it.
    #[arg(long)]
    pub(crate) echo_floor: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Instead of load: rewrite this policy file and time until the new version is live.
    #[arg(long)]
    pub(crate) reload_file: Option<PathBuf>,
    /// Rounds for --reload-file.
    #[arg(long, default_value_t = 5)]
    pub(crate) rounds: usize,
    /// With --reload-file: change every policy's text, so nothing is reused from the last load.
    #[arg(long)]
    pub(crate) every_policy: bool,
    /// Instead of load: write one `Authorize` request (`--token`, `--method`, `--path`,
    /// `--context`) as a gRPC message frame to this file: the body an HTTP/2 load tool such
    /// as h2load sends (`benches/wire.sh`).
    #[arg(long, requires = "token")]
    pub(crate) write_frame: Option<PathBuf>,
    /// With --write-frame: the same request as Envoy's ext_authz `Check` (the bearer token
    /// in the `authorization` header, the context's `ip` as the source address) instead of
    /// `Authorize`.
    #[arg(long, requires = "write_frame")]
    pub(crate) ext_authz: bool,
    /// The context of --token's requests (and of --write-frame's), a JSON object, e.g.
    /// `{"ip": "192.0.2.1"}`.
    #[arg(long)]
    pub(crate) context: Option<String>,
}

/// `--context`, when given: a JSON object.
fn context_arg(
    args: &BenchArgs,
) -> anyhow::Result<Option<serde_json::Map<String, serde_json::Value>>> {
    match &args.context {
        Some(text) => match serde_json::from_str(text).context("--context")? {
            serde_json::Value::Object(map) => Ok(Some(map)),
            _ => bail!("--context must be a JSON object"),
        },
        None => Ok(None),
    }
}

/// The one `Authorize` request of `--token` (with `--method`, `--path`, `--context`).
fn token_request(args: &BenchArgs, token: &str) -> anyhow::Result<proto::AuthorizeRequest> {
    let context = context_arg(args)?.map(|map| arbiter::wire::json_to_struct(&map));
    Ok(proto::AuthorizeRequest {
        token: token.to_owned(),
        method: args.method.clone(),
        path: args.path.clone(),
        context,
        ..Default::default()
    })
}

/// The request of `--token` as Envoy describes it to ext_authz: method, path and the bearer
/// token as a header, the context's `ip` (its only field Envoy sends) as the source address.
fn check_request(
    args: &BenchArgs,
    token: &str,
) -> anyhow::Result<envoy_types::pb::envoy::service::auth::v3::CheckRequest> {
    use envoy_types::pb::envoy::config::core::v3::{
        address, socket_address, Address, SocketAddress,
    };
    use envoy_types::pb::envoy::service::auth::v3::{
        attribute_context::{HttpRequest, Peer, Request},
        AttributeContext, CheckRequest,
    };
    let context = context_arg(args)?.unwrap_or_default();
    if let Some(other) = context.keys().find(|k| *k != "ip") {
        bail!("--ext-authz: Envoy sends no `{other}`; the context may hold only `ip`");
    }
    let source = context.get("ip").and_then(|ip| ip.as_str()).map(|ip| Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.to_owned(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(40000)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    });
    Ok(CheckRequest {
        attributes: Some(AttributeContext {
            source,
            request: Some(Request {
                http: Some(HttpRequest {
                    method: args.method.clone(),
                    path: args.path.clone(),
                    host: "api.example".into(),
                    headers: [("authorization".to_owned(), format!("Bearer {token}"))]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    })
}

/// `Authorize` (or `Check`) as one gRPC message frame: a zero compression flag, the length (big-endian
/// u32), the protobuf bytes.
fn grpc_frame(args: &BenchArgs) -> anyhow::Result<Vec<u8>> {
    use prost::Message as _;
    let token = args.token.as_deref().unwrap_or_default();
    let message = if args.ext_authz {
        check_request(args, token)?.encode_to_vec()
    } else {
        token_request(args, token)?.encode_to_vec()
    };
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    frame.extend_from_slice(&message);
    Ok(frame)
}

/// One load report: JSON, or a line naming what the allowed answers were.
pub(crate) fn print_report(
    report: &arbiter::bench::LoadReport,
    json_out: bool,
    label: &str,
    allowed_as: &str,
) {
    if json_out {
        say!("{}", json!({ "target": report.to_json() }));
    } else {
        say!(
            "{label} {}",
            report.summary().replace("; allowed", allowed_as)
        );
    }
}

pub(crate) fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    use arbiter::bench::{bundled_mix, measure_reload, run_load, LoadPlan, TokenLoad, Workload};
    if let Some(file) = &args.write_frame {
        std::fs::write(file, grpc_frame(&args)?)
            .with_context(|| format!("writing {}", file.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(file) = &args.reload_file {
        let times = runtime
            .block_on(measure_reload(
                &args.addr,
                file,
                args.rounds,
                args.every_policy,
            ))
            .map_err(anyhow::Error::msg)?;
        let ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        if args.json {
            say!("{}", json!({ "reload_ms": ms }));
        } else {
            let max = ms.iter().copied().fold(0.0, f64::max);
            say!(
                "write → live: {} ms (max {max:.1} ms)",
                ms.iter()
                    .map(|m| format!("{m:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let load = |addr: String, workload: Workload| LoadPlan {
        addr,
        concurrency: args.concurrency,
        connections: args.connections,
        duration: Duration::from_secs_f64(args.duration),
        requests: args.requests,
        rate: args.rate,
        warmup: Duration::from_secs_f64(args.warmup),
        workload,
    };
    if let Some(url) = &args.http_url {
        let plan = load(
            url.clone(),
            Workload::Http {
                token: args.token.clone(),
            },
        );
        let report = runtime.block_on(run_load(&plan))?;
        print_report(&report, args.json, "http", "; ok");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(base) = &args.token_endpoint {
        if args.echo_floor {
            bail!("--echo-floor is for Authorize load, not --token-endpoint");
        }
        let plan = load(
            base.clone(),
            Workload::Token(TokenLoad {
                client_id: args.client_id.clone().unwrap_or_default(),
                client_secret: args
                    .client_secret
                    .clone()
                    .context("--token-endpoint needs the client secret (CLIENT_SECRET)")?,
                scope: args.scope.clone(),
                keep_alive: !args.no_keep_alive,
            }),
        );
        let report = runtime.block_on(run_load(&plan))?;
        print_report(&report, args.json, "tokens", "; granted");
        return Ok(ExitCode::SUCCESS);
    }
    let mix = match &args.token {
        Some(token) => vec![token_request(&args, token)?],
        None => {
            let config = load_config(args.config.as_ref())?;
            let data_dir = args.data_dir.clone().unwrap_or(config.data_dir.clone());
            let key = load_or_generate_dev_key(&data_dir)?;
            let dev = |scopes: &str| {
                mint(
                    &key,
                    &config.dev_issuer.issuer,
                    &config.dev_issuer.audience,
                    &DevTokenRequest {
                        client_id: "bench".into(),
                        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                        ttl: Duration::from_secs(3600),
                        ..Default::default()
                    },
                )
            };
            bundled_mix(&dev("read fido")?, &dev("read")?)
        }
    };
    let plan = |addr: String| load(addr, Workload::Authorize(mix.clone()));
    runtime.block_on(async {
        let floor = if args.echo_floor {
            let mut child = std::process::Command::new(std::env::current_exe()?)
                .args(["echo-server", "--grpc-addr", "127.0.0.1:0"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .context("cannot start the echo server")?;
            let mut line = String::new();
            if let Some(out) = child.stdout.take() {
                std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
            }
            let addr = line
                .trim()
                .strip_prefix("listening on ")
                .context("echo server did not start")?
                .to_string();
            let report = run_load(&plan(format!("http://{addr}"))).await;
            let _ = child.kill();
            let _ = child.wait();
            Some(report?)
        } else {
            None
        };
        let target = run_load(&plan(args.addr.clone())).await?;
        if args.json {
            let mut out = json!({ "target": target.to_json() });
            if let Some(f) = &floor {
                out["echo"] = f.to_json();
                out["throughput_ratio"] = json!(target.rps() / f.rps());
                out["p99_ratio"] =
                    json!(target.quantile_us(0.99) as f64 / f.quantile_us(0.99).max(1) as f64);
            }
            say!("{out}");
        } else {
            if let Some(f) = &floor {
                say!("echo   {}", f.summary());
            }
            say!("target {}", target.summary());
            if let Some(f) = &floor {
                say!(
                    "target/echo: throughput {:.0}%, p99 {:.2}x",
                    100.0 * target.rps() / f.rps(),
                    target.quantile_us(0.99) as f64 / f.quantile_us(0.99).max(1) as f64
                );
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn echo_server(addr: SocketAddr, http: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        say!("listening on {}", listener.local_addr()?);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal.cancel();
        });
        if http {
            arbiter::bench::echo::serve_http_echo(listener, shutdown).await?;
        } else {
            arbiter::bench::echo::serve_echo(listener, shutdown).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
