//! The `arbiter` command line: parse flags, call the library, print, exit.
//!
//! Exit codes: 0 ok / allow, 1 error, 2 deny (`check`), 3 invalid policies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

use arbiter::config::{Config, LogFormat};
use arbiter::token::keys::load_or_generate_dev_key;
use arbiter::token::mint::{mint, DevTokenRequest};
use arbiter::wire::proto::{self, authorizer_client::AuthorizerClient};

/// Prints a line to stdout; a closed pipe (`arbiter … | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Debug, Parser)]
#[command(
    name = "arbiter",
    version,
    about = "A policy decision point for APIs: Cedar policies over OAuth scopes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the decision service.
    Serve(ServeArgs),
    /// Ask a running server for a decision.
    Check(CheckArgs),
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with a policy directory.
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// Manage OAuth clients directly in the store (for bootstrapping).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// The authorization server's signing keys, in the store.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The software statement workflow, through a running server's HTTP API with a token.
    Ssa(SsaArgs),
    /// A reverse proxy that asks Arbiter before forwarding each request to the upstream.
    Gateway(GatewayArgs),
    /// Policies from an OpenAPI document, and where policies and the design disagree.
    #[command(subcommand)]
    Openapi(OpenApiCommand),
    /// Load-test a running server (and the gRPC floor of this machine), or time a reload.
    Bench(BenchArgs),
    /// A bare gRPC Authorizer that answers without deciding: the floor for `bench`.
    #[command(hide = true)]
    EchoServer {
        /// Listen address; port 0 picks one, printed on stdout.
        #[arg(long, default_value = "127.0.0.1:0")]
        grpc_addr: SocketAddr,
        /// Serve a bare HTTP upstream (`200 ok`) instead, for gateway benchmarks.
        #[arg(long)]
        http: bool,
    },
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Create a client; prints its id and its secret (shown only now).
    Create {
        /// Human-readable name.
        #[arg(long)]
        name: String,
        /// Space-separated scopes the client may ever be granted.
        #[arg(long, default_value = "")]
        scopes: String,
        /// Token endpoint authentication method: client_secret_basic, client_secret_post,
        /// private_key_jwt, tls_client_auth or self_signed_tls_client_auth (RFC 8705).
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// The client's JWKS file: signing keys for private_key_jwt, certificates (`x5c`)
        /// for self_signed_tls_client_auth.
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// Or the URL where the client publishes its JWKS (https, or http on loopback).
        #[arg(long, conflicts_with = "jwks")]
        jwks_uri: Option<String>,
        /// Space-separated resource servers (RFC 8707 `resource`, absolute URIs, also listed
        /// in `[oauth] resources`) the client may ask tokens for.
        #[arg(long, default_value = "")]
        resources: String,
        /// Accept the token endpoint URL as the `aud` of this client's assertions besides the
        /// issuer identifier: only for old private_key_jwt clients that cannot be changed.
        #[arg(long)]
        legacy_audience: bool,
        /// tls_client_auth: the certificate's subject DN (RFC 4514, e.g. "CN=payments,O=Example").
        #[arg(long, group = "tls_subject")]
        tls_subject_dn: Option<String>,
        /// tls_client_auth: a DNS name among the certificate's subject alternative names.
        #[arg(long, group = "tls_subject")]
        tls_san_dns: Option<String>,
        /// tls_client_auth: a URI among the certificate's subject alternative names.
        #[arg(long, group = "tls_subject")]
        tls_san_uri: Option<String>,
        /// tls_client_auth: an IP address among the certificate's subject alternative names.
        #[arg(long, group = "tls_subject")]
        tls_san_ip: Option<String>,
        /// tls_client_auth: an e-mail address among the certificate's subject alternative names.
        #[arg(long, group = "tls_subject")]
        tls_san_email: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List clients.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one client.
    Show {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable a client: it can no longer authenticate.
    Disable {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace a client's secret; prints the new one (shown only now).
    RotateSecret {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Args)]
struct GatewayArgs {
    /// TOML file with any of the settings below (same names, `-` as `_`); flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to listen [default: 127.0.0.1:8000].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The upstream base URL.
    #[arg(long)]
    upstream: Option<String>,
    /// Arbiter's gRPC URL [default: http://127.0.0.1:50051]; `https://` with --pdp-ca.
    #[arg(long)]
    pdp: Option<String>,
    /// CA bundle (PEM) to verify Arbiter's certificate with.
    #[arg(long)]
    pdp_ca: Option<PathBuf>,
    /// Client certificate (PEM) for an Arbiter that requires mTLS (with --pdp-key).
    #[arg(long, requires = "pdp_key")]
    pdp_cert: Option<PathBuf>,
    /// Client key (PEM) for --pdp-cert.
    #[arg(long, requires = "pdp_cert")]
    pdp_key: Option<PathBuf>,
    /// Strip the Authorization header before forwarding.
    #[arg(long)]
    strip_authorization: bool,
    /// Accept `access_token` in the query string (RFC 6750 §2.3).
    #[arg(long)]
    allow_query_token: bool,
    /// Copy a request header into the decision context: `x-fraud-score=fraud_score`.
    #[arg(long = "context-header", value_name = "HEADER=KEY")]
    context_headers: Vec<String>,
    /// Deadline for one decision, in milliseconds [default: 250].
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Decisions cached, 0 for none [default: 10000].
    #[arg(long)]
    cache: Option<usize>,
    /// Forward when the PDP is unreachable (dangerous; logged on every use).
    #[arg(long)]
    fail_open: bool,
    /// Longest wait for the upstream's response headers, in seconds [default: 30].
    #[arg(long)]
    upstream_timeout: Option<u64>,
    /// Largest request body forwarded [default: 10485760].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Serve TLS with this certificate chain (PEM, leaf first), re-read when it changes.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA bundle (PEM) of client certificates.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Client certificates: none, optional (any, its thumbprint goes to Arbiter so RFC 8705
    /// certificate-bound tokens work) or required (chaining to --client-ca)
    /// [default: required with --client-ca, else none].
    #[arg(long, value_parser = ["none", "optional", "required"])]
    client_certs: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// `arbiter gateway --config FILE`: the same settings as the flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    listen: Option<SocketAddr>,
    upstream: Option<String>,
    pdp: Option<String>,
    pdp_ca: Option<PathBuf>,
    pdp_cert: Option<PathBuf>,
    pdp_key: Option<PathBuf>,
    #[serde(default)]
    strip_authorization: bool,
    #[serde(default)]
    allow_query_token: bool,
    #[serde(default)]
    context_headers: Vec<String>,
    deadline_ms: Option<u64>,
    cache: Option<usize>,
    #[serde(default)]
    fail_open: bool,
    upstream_timeout: Option<u64>,
    max_body_bytes: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    client_certs: Option<arbiter::tls::ClientCerts>,
}

#[derive(Debug, Subcommand)]
enum OpenApiCommand {
    /// Write one Cedar policy per operation, following the document's security exactly.
    Import {
        /// OpenAPI 3.0 or 3.1 document, YAML or JSON.
        spec: PathBuf,
        /// API name: policy ids, the `@api` annotation and the `Api` entity.
        #[arg(long, default_value = "api")]
        api: String,
        /// Write the policies here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also add the operations' endpoints, under `Api::"<api>"`, to this entities.json.
        #[arg(long)]
        entities: Option<PathBuf>,
    },
    /// Report operations without a policy, policies of the API not in the document, and
    /// scopes that differ.
    Diff {
        /// OpenAPI 3.0 or 3.1 document, YAML or JSON.
        spec: PathBuf,
        /// API name (policies annotated `@api("<api>")`).
        #[arg(long, default_value = "api")]
        api: String,
        /// Policy directory.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct SsaArgs {
    /// The server's HTTP base URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "ARBITER_URL",
        global = true
    )]
    url: String,
    /// Bearer token to call with (e.g. from `/token`).
    #[arg(long, env = "ARBITER_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Or: get a token with this client's credentials (secret from ARBITER_CLIENT_SECRET).
    #[arg(long, env = "ARBITER_CLIENT_ID", global = true)]
    client_id: Option<String>,
    #[command(subcommand)]
    command: SsaCommand,
}

#[derive(Debug, Subcommand)]
enum SsaCommand {
    /// Ask for a software statement (needs arbiter.ssa.request).
    Request {
        /// Software name.
        #[arg(long)]
        name: String,
        /// What the software does.
        #[arg(long)]
        description: String,
        /// How to reach its developers.
        #[arg(long)]
        contact: String,
        /// Space-separated scopes asked for.
        #[arg(long)]
        scopes: String,
        /// Why the software needs them.
        #[arg(long)]
        justification: String,
        /// Organisation.
        #[arg(long)]
        org: Option<String>,
        /// Software version.
        #[arg(long)]
        software_version: Option<String>,
        /// Space-separated grant types [default: client_credentials].
        #[arg(long)]
        grant_types: Option<String>,
        /// The software's JWKS file, for private_key_jwt.
        #[arg(long)]
        jwks: Option<PathBuf>,
    },
    /// List requests: your own, or everyone's with --review (needs arbiter.ssa.review).
    List {
        /// Everyone's requests (reviewer view).
        #[arg(long)]
        review: bool,
        /// Only this status: pending, approved or denied.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one request (with its statement once issued).
    Show {
        /// Request id.
        id: String,
        /// Reviewer view (any request).
        #[arg(long)]
        review: bool,
    },
    /// Approve a request and issue its statement (needs arbiter.ssa.review).
    Approve {
        /// Request id.
        id: String,
        /// Space-separated scopes to approve (a subset of those asked for) [default: all].
        #[arg(long)]
        scopes: Option<String>,
        /// Validity of the statement in days [default: `[ssa] default_validity_seconds`].
        #[arg(long)]
        valid_days: Option<u64>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a request with a reason the requester will see (needs arbiter.ssa.review).
    Deny {
        /// Request id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Revoke a statement: its clients are disabled and their tokens refused (needs
    /// arbiter.ssa.review).
    Revoke {
        /// The statement's jti.
        jti: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// The audit trail, by request, statement and/or client (needs arbiter.ssa.review).
    Audit {
        /// Request id.
        #[arg(long)]
        request: Option<String>,
        /// Statement jti.
        #[arg(long)]
        statement: Option<String>,
        /// Client id.
        #[arg(long)]
        client: Option<String>,
    },
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// Policy directory [default: policies]; ignored with --addr.
    dir: Option<PathBuf>,
    /// Query the live set of a running server instead (gRPC URL).
    #[arg(long)]
    addr: Option<String>,
    /// Annotation `KEY` or `KEY=VALUE`, e.g. `tag=healthcare`.
    #[arg(long = "annotation", value_name = "KEY[=VALUE]")]
    annotations: Vec<String>,
    /// Attribute read anywhere in the policy: `principal.nationality`, or a tail.
    #[arg(long = "attribute", value_name = "PATH")]
    attributes: Vec<String>,
    /// A literal the policy compares with, e.g. `US`.
    #[arg(long = "value", value_name = "LITERAL")]
    values: Vec<String>,
    /// An entity type or entity named: `User` or `User::"alice"`.
    #[arg(long = "entity", value_name = "TYPE[::ID]")]
    entities: Vec<String>,
    /// An action the policy applies to, e.g. `DELETE`.
    #[arg(long = "action", value_name = "NAME")]
    actions: Vec<String>,
    /// A request the policy can apply to: "METHOD /concrete/path".
    #[arg(long = "endpoint", value_name = "METHOD PATH")]
    endpoints: Vec<String>,
    /// A scope the policy asks for.
    #[arg(long = "scope", value_name = "NAME")]
    scopes: Vec<String>,
    /// permit or forbid.
    #[arg(long)]
    effect: Option<String>,
    /// Source file glob, relative to the policy directory.
    #[arg(long = "file", value_name = "GLOB")]
    files: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List signing keys (access tokens, then software statements): the active one, and
    /// retired ones still published.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Make a new signing key active. A running server picks it up within seconds; the old
    /// key stays published and trusted until the tokens it signed have expired.
    Rotate {
        /// Algorithm of the new key: ES256, EdDSA or RS256 [default: `[oauth] signing_alg`,
        /// or `[ssa] signing_alg` with --statements].
        #[arg(long)]
        alg: Option<String>,
        /// Rotate the software statement key instead of the access token key.
        #[arg(long)]
        statements: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// Data directory holding the SQLite store [default: data].
    #[arg(long, env = "ARBITER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite://FILE) instead of the data directory's SQLite.
    #[arg(long, env = "ARBITER_STORE_URL", hide_env_values = true)]
    store_url: Option<String>,
    /// Configuration file (for its data_dir and [store]).
    #[arg(long, env = "ARBITER_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl StoreArgs {
    /// The configuration file's settings under these flags.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = load_config(self.config.as_ref())?;
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(url) = &self.store_url {
            config.store.url = Some(url.clone());
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "ARBITER_ADDR")]
    addr: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections to spread them over.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many requests instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Total requests per second (paced); as fast as possible when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Unmeasured seconds before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Send only this token (with --method and --path) instead of the bundled mix.
    #[arg(long)]
    token: Option<String>,
    /// Method for --token.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Path for --token.
    #[arg(long, default_value = "/item/42")]
    path: String,
    /// Load the OAuth token endpoint at this base URL (e.g. `http://127.0.0.1:8080`) instead
    /// of `Authorize`: client_credentials with HTTP Basic.
    #[arg(long, requires = "client_id")]
    token_endpoint: Option<String>,
    /// Client id for --token-endpoint.
    #[arg(long, env = "CLIENT_ID")]
    client_id: Option<String>,
    /// Client secret for --token-endpoint (prefer the environment variable).
    #[arg(long, env = "CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// `scope` for --token-endpoint.
    #[arg(long)]
    scope: Option<String>,
    /// With --token-endpoint: a new connection per token instead of keep-alive.
    #[arg(long)]
    no_keep_alive: bool,
    /// Load this URL with GET (an API directly or through `arbiter gateway`), with
    /// `--token` as the bearer token if given.
    #[arg(long)]
    http_url: Option<String>,
    /// Data directory whose development key mints the mix's tokens [default: data].
    #[arg(long, env = "ARBITER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (for the development issuer's name and audience).
    #[arg(long, env = "ARBITER_CONFIG")]
    config: Option<PathBuf>,
    /// First run the same load against a bare echo server started as a child process, then
    /// report the target as a ratio of it.
    #[arg(long)]
    echo_floor: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Instead of load: rewrite this policy file and time until the new version is live.
    #[arg(long)]
    reload_file: Option<PathBuf>,
    /// Rounds for --reload-file.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// With --reload-file: change every policy's text, so nothing is reused from the last load.
    #[arg(long)]
    every_policy: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration file; flags and ARBITER_* variables override it.
    #[arg(long, env = "ARBITER_CONFIG")]
    config: Option<PathBuf>,
    /// Policy directory [default: policies].
    #[arg(long, env = "ARBITER_POLICIES")]
    policies: Option<PathBuf>,
    /// Data directory for generated keys and the SQLite store [default: data].
    #[arg(long, env = "ARBITER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite://FILE) instead of the data directory's SQLite.
    #[arg(long, env = "ARBITER_STORE_URL", hide_env_values = true)]
    store_url: Option<String>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "ARBITER_GRPC_ADDR")]
    grpc_addr: Option<SocketAddr>,
    /// HTTP listen address of the OAuth endpoints [default: 127.0.0.1:8080].
    #[arg(long, env = "ARBITER_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Log format [default: text].
    #[arg(long, env = "ARBITER_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Allow plaintext listeners on non-loopback addresses (logged as a warning).
    #[arg(long)]
    allow_plaintext: bool,
    /// Check the configuration, the policy directory, the store and every issuer's keys,
    /// then exit (0 all good, 1 a problem, 3 invalid policies).
    #[arg(long)]
    check_config: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Bearer token (omit for an anonymous request).
    #[arg(long, default_value = "")]
    token: String,
    /// HTTP method.
    method: String,
    /// Request path.
    path: String,
    /// Context as a JSON object, e.g. '{"ip":"10.0.0.1","fraud_score":12}'.
    #[arg(long)]
    context: Option<String>,
    /// Ask for a per-policy explanation.
    #[arg(long)]
    explain: bool,
    /// RFC 8705: base64url SHA-256 of the client certificate the caller presented.
    #[arg(long)]
    client_cert_sha256: Option<String>,
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "ARBITER_ADDR")]
    addr: String,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Mint a token from the development issuer. FOR DEVELOPMENT ONLY.
    Dev(DevTokenArgs),
}

#[derive(Debug, Args)]
struct DevTokenArgs {
    /// Client id.
    #[arg(long)]
    client: String,
    /// Space-separated scopes.
    #[arg(long, default_value = "")]
    scope: String,
    /// End-user subject; without it the token is the client's own.
    #[arg(long)]
    sub: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Extra claims as a JSON object.
    #[arg(long)]
    claims: Option<String>,
    /// Configuration file (for the dev issuer's name and audience).
    #[arg(long, env = "ARBITER_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory holding the development key [default: data].
    #[arg(long, env = "ARBITER_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum PoliciesCommand {
    /// Load and validate a policy directory as the server would.
    Validate {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Find policies by annotation, attribute, value, entity, action, endpoint, scope,
    /// effect or file (every filter must hold; each may repeat).
    Query(Box<QueryArgs>),
    /// Decide logged decisions again against a candidate policy directory and report every
    /// decision that would change (exit 2 if any allow/deny flips).
    Replay {
        /// The decision log (JSON lines, as `arbiter serve --log-format json` writes).
        #[arg(long)]
        log: PathBuf,
        /// The candidate policy directory.
        #[arg(long)]
        candidate: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the policy tests (`DIR/tests/*.yaml`) without a server.
    Test {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("arbiter: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::Token(TokenCommand::Dev(args)) => dev_token(args),
        Command::Policies(PoliciesCommand::Validate { dir }) => validate(dir),
        Command::Policies(PoliciesCommand::Test { dir, json }) => policy_tests(dir, json),
        Command::Policies(PoliciesCommand::Query(args)) => query_policies(*args),
        Command::Policies(PoliciesCommand::Replay {
            log,
            candidate,
            json,
        }) => replay_decisions(&log, &candidate, json),
        Command::Clients(cmd) => clients(cmd),
        Command::Keys(cmd) => keys(cmd),
        Command::Ssa(args) => ssa(args),
        Command::Openapi(cmd) => openapi(cmd),
        Command::Gateway(args) => gateway(args),
        Command::Bench(args) => bench(args),
        Command::EchoServer { grpc_addr, http } => echo_server(grpc_addr, http),
    }
}

fn load_config(file: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
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
    if let Some(f) = args.log_format {
        config.log_format = f;
    }
    config.allow_plaintext |= args.allow_plaintext;
    if args.check_config {
        config.follow_listener();
        return check_config(&config);
    }
    let _log = arbiter::telemetry::init(config.log_format);
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
            served = arbiter.serve(grpc, http, shutdown) => served?,
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
fn check_config(config: &Config) -> anyhow::Result<ExitCode> {
    let mut problems = 0;
    let mut report = |ok: bool, what: &str, detail: String| {
        say!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
        problems += usize::from(!ok);
    };
    match config.validate() {
        Ok(()) => report(true, "configuration", "valid".into()),
        Err(e) => report(false, "configuration", e.to_string()),
    }
    if let Some(tls) = &config.tls {
        use arbiter::tls::{ClientCerts, Listener};
        let certs = |l| match tls.client_certs(l) {
            ClientCerts::None => "none",
            ClientCerts::Optional => "optional",
            ClientCerts::Required => "required",
        };
        match arbiter::tls::server_config(tls, Listener::Grpc)
            .and_then(|_| arbiter::tls::server_config(tls, Listener::Http))
        {
            Ok(_) => report(
                true,
                "tls",
                format!(
                    "certificate {} loads; client certificates: gRPC {}, HTTP {}",
                    tls.cert_file.display(),
                    certs(Listener::Grpc),
                    certs(Listener::Http)
                ),
            ),
            Err(e) => report(false, "tls", e.to_string()),
        }
    }
    match arbiter::policy::PolicySnapshot::load(&config.policies) {
        Ok(s) => report(
            true,
            "policies",
            format!(
                "{} policies, {} routes, version {} ({})",
                s.policy_count(),
                s.routes.endpoints().len(),
                s.version,
                config.policies.display()
            ),
        ),
        Err(e) => {
            say!("FAIL policies: {e}");
            return Ok(ExitCode::from(3));
        }
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        if config.oauth.enabled {
            match arbiter::store::open(config).await {
                Ok(store) => match store.clients().await {
                    Ok(c) => report(
                        true,
                        "store",
                        format!(
                            "{} clients in {}",
                            c.len(),
                            arbiter::store::describe(config)
                        ),
                    ),
                    Err(e) => report(false, "store", e.to_string()),
                },
                Err(e) => report(false, "store", e.to_string()),
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        for issuer in &config.issuers {
            let keys = if let Some(url) = &issuer.jwks_url {
                arbiter::token::issuer::fetch_jwks(&http, url)
                    .await
                    .map(|(set, skipped, _)| (set, skipped))
            } else if let Some(file) = &issuer.jwks_file {
                std::fs::read(file)
                    .map_err(|e| format!("{}: {e}", file.display()))
                    .and_then(|bytes| arbiter::token::issuer::usable_keys(&bytes))
            } else {
                report(
                    true,
                    &format!("issuer {}", issuer.issuer),
                    "HMAC secret configured".into(),
                );
                continue;
            };
            match keys {
                Ok((set, skipped)) => report(
                    true,
                    &format!("issuer {}", issuer.issuer),
                    format!(
                        "{} usable keys{}",
                        set.len(),
                        if skipped.is_empty() {
                            String::new()
                        } else {
                            format!(" ({} skipped)", skipped.len())
                        }
                    ),
                ),
                Err(e) => report(false, &format!("issuer {}", issuer.issuer), e),
            }
        }
    });
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn wait_for_signal() {
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

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let context = match &args.context {
        Some(text) => match serde_json::from_str::<Value>(text).context("--context is not JSON")? {
            Value::Object(map) => Some(arbiter::wire::json_to_struct(&map)),
            _ => bail!("--context must be a JSON object"),
        },
        None => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let response = runtime.block_on(async {
        let endpoint = tonic::transport::Endpoint::from_shared(args.addr.clone())
            .with_context(|| format!("invalid --addr `{}`", args.addr))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        let mut client = AuthorizerClient::new(
            endpoint
                .connect()
                .await
                .with_context(|| format!("cannot connect to `{}`", args.addr))?,
        );
        let resp = client
            .authorize(proto::AuthorizeRequest {
                token: args.token.clone(),
                method: args.method.clone(),
                path: args.path.clone(),
                context,
                explain: args.explain,
                client_cert_sha256: args.client_cert_sha256.clone().unwrap_or_default(),
            })
            .await
            .context("authorize failed")?;
        Ok::<_, anyhow::Error>(resp.into_inner())
    })?;
    let allowed = response.decision == proto::Decision::Allow as i32;
    let out = json!({
        "decision": if allowed { "allow" } else { "deny" },
        "reason": proto::Reason::try_from(response.reason).map(|r| r.as_str_name()).unwrap_or("?"),
        "policy_ids": response.policy_ids,
        "errors": response.errors,
        "required_scopes": response.required_scopes,
        "policy_version": response.policy_version,
        "decision_id": response.decision_id,
        "principal": response.principal.map(|p| json!({
            "entity": p.entity, "client_id": p.client_id, "sub": p.sub, "scopes": p.scopes, "issuer": p.issuer,
        })),
        "cache_ttl_seconds": response.cache_ttl_seconds,
        "explanation": response.explanation.iter().map(|e| json!({
            "policy_id": e.policy_id,
            "effect": proto::policy_explanation::Effect::try_from(e.effect).map(|x| x.as_str_name()).unwrap_or("?"),
            "outcome": proto::policy_explanation::Outcome::try_from(e.outcome).map(|x| x.as_str_name()).unwrap_or("?"),
            "at": format!("{}:{}", e.file, e.line),
            "scopes": e.scopes,
            "missing_scopes": e.missing_scopes,
            "error": e.error,
        })).collect::<Vec<_>>(),
    });
    say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn dev_token(args: DevTokenArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_ref())?;
    let data_dir = args.data_dir.unwrap_or(config.data_dir);
    let key = load_or_generate_dev_key(&data_dir)?;
    let extra = match &args.claims {
        Some(text) => match serde_json::from_str::<Value>(text).context("--claims is not JSON")? {
            Value::Object(map) => map,
            _ => bail!("--claims must be a JSON object"),
        },
        None => Map::new(),
    };
    let token = mint(
        &key,
        &config.dev_issuer.issuer,
        &config.dev_issuer.audience,
        &DevTokenRequest {
            client_id: args.client,
            sub: args.sub,
            scopes: args
                .scope
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            ttl: Duration::from_secs(args.ttl),
            extra,
        },
    )?;
    say!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn gateway(args: GatewayArgs) -> anyhow::Result<ExitCode> {
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

/// `arbiter openapi import|diff`: 0 on success (diff: no difference), 1 on an error,
/// 2 when diff found differences.
fn openapi(cmd: OpenApiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OpenApiCommand::Import {
            spec,
            api,
            out,
            entities,
        } => {
            let text = std::fs::read_to_string(&spec)
                .with_context(|| format!("cannot read `{}`", spec.display()))?;
            let import = arbiter::audit::openapi::import(&text, &api)?;
            for w in &import.warnings {
                eprintln!("warning: {w}");
            }
            match &out {
                Some(path) => std::fs::write(path, &import.policies)
                    .with_context(|| format!("cannot write `{}`", path.display()))?,
                None => say!("{}", import.policies.trim_end()),
            }
            if let Some(path) = &entities {
                let current = match std::fs::read_to_string(path) {
                    Ok(t) => serde_json::from_str::<Value>(&t)
                        .with_context(|| format!("`{}` is not JSON", path.display()))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!([]),
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot read `{}`", path.display()))
                    }
                };
                let merged =
                    arbiter::audit::openapi::merge_entities(current, &api, &import.operations)
                        .map_err(anyhow::Error::msg)?;
                std::fs::write(path, serde_json::to_string_pretty(&merged)? + "\n")
                    .with_context(|| format!("cannot write `{}`", path.display()))?;
            }
            eprintln!(
                "{} operations imported for API `{api}`",
                import.operations.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        OpenApiCommand::Diff {
            spec,
            api,
            policies,
            json: json_out,
        } => {
            let text = std::fs::read_to_string(&spec)
                .with_context(|| format!("cannot read `{}`", spec.display()))?;
            let snapshot = match arbiter::policy::PolicySnapshot::load(&policies) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("arbiter: {e}");
                    return Ok(ExitCode::from(3));
                }
            };
            let differences = arbiter::audit::openapi::diff(&text, &api, &snapshot)?;
            if json_out {
                say!("{}", json!({ "differences": differences }));
            } else {
                for d in &differences {
                    say!("{}\t{}\t{}", d.kind, d.operation, d.detail);
                }
                say!(
                    "{} differences between `{}` and `{}`",
                    differences.len(),
                    spec.display(),
                    policies.display()
                );
            }
            Ok(if differences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

fn ssa(args: SsaArgs) -> anyhow::Result<ExitCode> {
    use arbiter::oauth::ssa::client::{ClientError, SsaClient};
    let words = |s: &str| {
        s.split_ascii_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let client = match (&args.token, &args.client_id) {
            (Some(token), _) => SsaClient::new(&args.url, token.clone()),
            (None, Some(id)) => {
                let secret = std::env::var("ARBITER_CLIENT_SECRET")
                    .context("--client-id needs ARBITER_CLIENT_SECRET in the environment")?;
                SsaClient::with_client_credentials(&args.url, id, &secret).await?
            }
            (None, None) => {
                bail!("give --token (ARBITER_TOKEN) or --client-id (ARBITER_CLIENT_ID)")
            }
        };
        let answer = match &args.command {
            SsaCommand::Request {
                name,
                description,
                contact,
                scopes,
                justification,
                org,
                software_version,
                grant_types,
                jwks,
            } => {
                let mut body = json!({
                    "software_name": name, "description": description, "contact": contact,
                    "scopes": words(scopes), "justification": justification,
                });
                if let Some(v) = org {
                    body["org"] = json!(v);
                }
                if let Some(v) = software_version {
                    body["software_version"] = json!(v);
                }
                if let Some(v) = grant_types {
                    body["grant_types"] = json!(words(v));
                }
                if let Some(path) = jwks {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read --jwks `{}`", path.display()))?;
                    body["jwks"] = serde_json::from_str(&text).context("--jwks is not JSON")?;
                }
                client.request(body).await
            }
            SsaCommand::List { review, status } => client.list(*review, status.as_deref()).await,
            SsaCommand::Show { id, review } => client.show(id, *review).await,
            SsaCommand::Approve {
                id,
                scopes,
                valid_days,
                reason,
            } => {
                client
                    .approve(
                        id,
                        scopes.as_deref().map(words),
                        valid_days.map(|d| d.saturating_mul(86_400)),
                        reason.clone(),
                    )
                    .await
            }
            SsaCommand::Deny { id, reason } => client.deny(id, reason).await,
            SsaCommand::Revoke { jti, reason } => client.revoke(jti, reason).await,
            SsaCommand::Audit {
                request,
                statement,
                client: c,
            } => {
                client
                    .audit(request.as_deref(), statement.as_deref(), c.as_deref())
                    .await
            }
        };
        Ok::<Result<Value, ClientError>, anyhow::Error>(answer)
    })?;
    match result {
        Ok(value) => {
            say!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Refused {
            status,
            code,
            description,
        }) => {
            eprintln!("arbiter: refused ({status} {code}): {description}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

fn keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    use arbiter::oauth::keys::{alg_name, generate};
    let store_args = match &cmd {
        KeysCommand::List { store } | KeysCommand::Rotate { store, .. } => store,
    };
    let config = store_args.config()?;
    let json_out = store_args.json;
    use arbiter::store::{KEY_PURPOSE_ACCESS_TOKEN, KEY_PURPOSE_STATEMENT};
    let ttl_of = |purpose: &str| {
        let seconds = if purpose == KEY_PURPOSE_STATEMENT {
            config.ssa.max_validity_seconds
        } else {
            config.oauth.access_token_ttl_seconds
        };
        i64::try_from(seconds).unwrap_or(i64::MAX)
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = arbiter::store::open(&config).await?;
        match &cmd {
            KeysCommand::List { .. } => {
                let now = arbiter::clock::now_i64();
                let mut rows: Vec<Value> = Vec::new();
                let ahead = i64::try_from(config.key_publish_ahead_seconds()).unwrap_or(i64::MAX);
                for purpose in [KEY_PURPOSE_ACCESS_TOKEN, KEY_PURPOSE_STATEMENT] {
                    let ttl = ttl_of(purpose);
                    let keys = store.signing_keys(purpose).await?;
                    // A new key is published `ahead` seconds before it signs; meanwhile the
                    // key it replaced still signs.
                    let publishing = keys.first().filter(|k| {
                        k.retired_at.is_none()
                            && k.created_at.saturating_add(ahead) > now
                            && keys.iter().any(|o| o.retired_at == Some(k.created_at))
                    });
                    for k in &keys {
                        let state = match k.retired_at {
                            None if publishing.is_some() => "publishing",
                            None => "active",
                            Some(at) if publishing.is_some_and(|p| p.created_at == at) => "active",
                            Some(at) if at.saturating_add(ahead).saturating_add(ttl) > now => "published",
                            Some(_) => "expired",
                        };
                        rows.push(json!({
                            "kid": k.kid, "purpose": purpose, "alg": k.alg, "state": state,
                            "created_at": k.created_at, "retired_at": k.retired_at,
                        }));
                    }
                }
                if json_out {
                    say!("{}", Value::Array(rows));
                } else {
                    for r in &rows {
                        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                        say!("{}\t{}\t{}\t{}\tcreated {}", text("kid"), text("purpose"), text("alg"), text("state"), r["created_at"]);
                    }
                }
            }
            KeysCommand::Rotate { alg, statements, .. } => {
                let (purpose, default_alg) = if *statements {
                    (KEY_PURPOSE_STATEMENT, config.ssa.signing_alg)
                } else {
                    (KEY_PURPOSE_ACCESS_TOKEN, config.oauth.signing_alg)
                };
                let alg = match alg.as_deref() {
                    Some(name) => arbiter::token::keys::signing_algorithm(name)?,
                    None => arbiter::token::keys::algorithm(default_alg),
                };
                let key = generate(purpose, alg)?;
                let active = store
                    .signing_keys(purpose)
                    .await?
                    .into_iter()
                    .find(|k| k.retired_at.is_none())
                    .map(|k| k.kid);
                if !store.rotate_signing_key(&key, active.as_deref()).await? {
                    anyhow::bail!("another process rotated the {purpose} key at the same moment; nothing changed (run `arbiter keys list`)");
                }
                if json_out {
                    say!("{}", json!({ "kid": key.kid, "purpose": purpose, "alg": alg_name(alg) }));
                } else {
                    say!("active {purpose} key: {} ({})", key.kid, alg_name(alg));
                    let ahead = config.key_publish_ahead_seconds();
                    eprintln!(
                        "running servers publish it within {} s and sign with it once it is {} s old; the previous key stays published {} s longer",
                        arbiter::KEY_REFRESH_SECONDS,
                        ahead,
                        ttl_of(purpose).saturating_add(i64::try_from(ahead).unwrap_or(i64::MAX))
                    );
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn clients(cmd: ClientsCommand) -> anyhow::Result<ExitCode> {
    use arbiter::oauth::clients;
    let store_args = match &cmd {
        ClientsCommand::Create { store, .. }
        | ClientsCommand::List { store }
        | ClientsCommand::Show { store, .. }
        | ClientsCommand::Disable { store, .. }
        | ClientsCommand::RotateSecret { store, .. } => store,
    };
    let config = store_args.config()?;
    let json_out = store_args.json;
    let show = |c: &arbiter::store::ClientRecord| {
        json!({
            "client_id": c.client_id,
            "name": c.name,
            "scopes": c.allowed_scopes.join(" "),
            "auth_method": c.auth_method,
            "resources": c.resources,
            "legacy_audience": c.legacy_audience,
            "tls_subject": c.tls_subject.as_ref().map(|(k, v)| json!({ k: v })),
            "disabled": c.disabled,
            "created_at": c.created_at,
        })
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = arbiter::store::open(&config).await?;
        match &cmd {
            ClientsCommand::Create {
                name,
                scopes,
                auth_method,
                jwks,
                jwks_uri,
                resources,
                legacy_audience,
                tls_subject_dn,
                tls_san_dns,
                tls_san_uri,
                tls_san_ip,
                tls_san_email,
                ..
            } => {
                let words = |s: &str| {
                    s.split_ascii_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                };
                let jwks = match jwks {
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read --jwks `{}`", path.display()))?;
                        Some(serde_json::from_str::<Value>(&text).context("--jwks is not JSON")?)
                    }
                    None => None,
                };
                let spec = clients::ClientSpec {
                    name: name.clone(),
                    scopes: words(scopes),
                    auth_method: auth_method.clone(),
                    jwks,
                    jwks_uri: jwks_uri.clone(),
                    resources: words(resources),
                    legacy_audience: *legacy_audience,
                    tls_subject: [
                        ("tls_client_auth_subject_dn", tls_subject_dn),
                        ("tls_client_auth_san_dns", tls_san_dns),
                        ("tls_client_auth_san_uri", tls_san_uri),
                        ("tls_client_auth_san_ip", tls_san_ip),
                        ("tls_client_auth_san_email", tls_san_email),
                    ]
                    .into_iter()
                    .find_map(|(name, v)| Some((name.to_owned(), v.clone()?))),
                    ..Default::default()
                };
                let created = clients::create(store.as_ref(), &spec).await?;
                if json_out {
                    let mut out = json!({ "client_id": created.record.client_id });
                    if let Some(secret) = &created.secret {
                        out["client_secret"] = json!(secret);
                    }
                    say!("{out}");
                } else {
                    say!("client_id:     {}", created.record.client_id);
                    if let Some(secret) = &created.secret {
                        say!("client_secret: {secret}");
                        eprintln!("the secret is shown only now; store it safely");
                    }
                }
            }
            ClientsCommand::List { .. } => {
                let all = store.clients().await?;
                if json_out {
                    say!("{}", Value::Array(all.iter().map(show).collect()));
                } else {
                    for c in &all {
                        let state = if c.disabled { "disabled" } else { "enabled" };
                        say!(
                            "{}\t{}\t{}\t{}",
                            c.client_id,
                            state,
                            c.name,
                            c.allowed_scopes.join(" ")
                        );
                    }
                }
            }
            ClientsCommand::Show { client_id, .. } => {
                let c = store
                    .client(client_id)
                    .await?
                    .with_context(|| format!("no client `{client_id}`"))?;
                say!(
                    "{}",
                    if json_out {
                        show(&c).to_string()
                    } else {
                        serde_json::to_string_pretty(&show(&c))?
                    }
                );
            }
            ClientsCommand::Disable { client_id, .. } => {
                if !store.set_client_disabled(client_id, true).await? {
                    bail!("no client `{client_id}`");
                }
                if !json_out {
                    say!("disabled {client_id}");
                }
            }
            ClientsCommand::RotateSecret { client_id, .. } => {
                let secret = clients::rotate_secret(store.as_ref(), client_id).await?;
                if json_out {
                    say!(
                        "{}",
                        json!({ "client_id": client_id, "client_secret": secret })
                    );
                } else {
                    say!("client_secret: {secret}");
                    eprintln!("the secret is shown only now; the old one no longer works");
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One load report: JSON, or a line naming what the allowed answers were.
fn print_report(
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

fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    use arbiter::bench::{bundled_mix, measure_reload, run_load, LoadPlan, TokenLoad, Workload};
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
        Some(token) => vec![proto::AuthorizeRequest {
            token: token.clone(),
            method: args.method.clone(),
            path: args.path.clone(),
            context: None,
            explain: false,
            client_cert_sha256: String::new(),
        }],
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

fn echo_server(addr: SocketAddr, http: bool) -> anyhow::Result<ExitCode> {
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

/// `arbiter policies replay`: 0 when no allow/deny flips, 2 when some do, 3 when the
/// candidate is invalid.
fn replay_decisions(
    log: &std::path::Path,
    candidate: &std::path::Path,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    use arbiter::audit::replay;
    let text =
        std::fs::read_to_string(log).with_context(|| format!("cannot read `{}`", log.display()))?;
    let snapshot = match arbiter::policy::PolicySnapshot::load(candidate) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("arbiter: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let (decisions, skipped) = replay::parse_log(&text);
    let report = replay::replay(&snapshot, &decisions, skipped);
    if json_out {
        say!("{}", serde_json::to_string(&report)?);
    } else {
        for c in &report.changes {
            say!(
                "{} {} {} ({}): {} {} [{}] → {} {} [{}]",
                if c.decision_changed {
                    "CHANGED"
                } else {
                    "changed"
                },
                c.request,
                c.principal,
                c.decision_id,
                c.before.decision,
                c.before.reason,
                c.before.policies.join(", "),
                c.after.decision,
                c.after.reason,
                c.after.policies.join(", "),
            );
        }
        say!(
            "{} decisions, {} replayed against version {}, {} flip allow/deny, {} change reason or policies only, {} not replayable (token rejected), {} lines skipped",
            report.decisions,
            report.replayed,
            snapshot.version,
            report.decision_changes,
            report.changes.len() - report.decision_changes,
            report.not_replayable,
            report.skipped_lines
        );
    }
    Ok(if report.decision_changes == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `arbiter policies query`: over a directory, or the live set of a server.
fn query_policies(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let request = proto::QueryPoliciesRequest {
        annotations: args.annotations,
        attributes: args.attributes,
        values: args.values,
        entities: args.entities,
        actions: args.actions,
        endpoints: args.endpoints,
        scopes: args.scopes,
        effect: args.effect.unwrap_or_default(),
        files: args.files,
    };
    let (version, matches) = match &args.addr {
        Some(addr) => {
            let runtime = tokio::runtime::Runtime::new()?;
            let response = runtime.block_on(async {
                let mut admin =
                    proto::policy_admin_client::PolicyAdminClient::connect(addr.clone())
                        .await
                        .with_context(|| format!("cannot connect to `{addr}`"))?;
                Ok::<_, anyhow::Error>(admin.query_policies(request).await?.into_inner())
            })?;
            (response.policy_version, response.policies)
        }
        None => {
            let dir = args.dir.unwrap_or_else(|| PathBuf::from("policies"));
            let snapshot = match arbiter::policy::PolicySnapshot::load(&dir) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("arbiter: {e}");
                    return Ok(ExitCode::from(3));
                }
            };
            let query = arbiter::policy::query::Query {
                annotations: request.annotations,
                attributes: request.attributes,
                values: request.values,
                entities: request.entities,
                actions: request.actions,
                endpoints: request.endpoints,
                scopes: request.scopes,
                effect: Some(request.effect).filter(|e| !e.is_empty()),
                files: request.files,
            };
            let hits =
                arbiter::policy::query::query(&snapshot, &query).map_err(anyhow::Error::msg)?;
            (
                snapshot.version.clone(),
                hits.into_iter()
                    .map(arbiter::grpc::admin::policy_match)
                    .collect(),
            )
        }
    };
    if args.json {
        let list: Vec<Value> = matches
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "effect": m.effect, "file": m.file, "line": m.line,
                    "annotations": m.annotations, "why": m.why, "text": m.text,
                })
            })
            .collect();
        say!("{}", json!({ "policy_version": version, "policies": list }));
    } else {
        for m in &matches {
            say!(
                "{}\t{}\t{}:{}\t{}",
                m.id,
                m.effect,
                m.file,
                m.line,
                m.why.join("; ")
            );
        }
        say!("{} matching (policy version {version})", matches.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `arbiter policies test`: 0 when every case passes, 1 on a failure, 3 when the policies
/// or a test file are invalid.
fn policy_tests(dir: PathBuf, json_out: bool) -> anyhow::Result<ExitCode> {
    use arbiter::audit::cases;
    let snapshot = match arbiter::policy::PolicySnapshot::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("arbiter: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let results = match cases::test_files(&dir).and_then(|files| cases::run(&snapshot, &files)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arbiter: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let failed = results.iter().filter(|r| !r.passed()).count();
    let file_name = |r: &cases::CaseResult| {
        r.file
            .strip_prefix(&dir)
            .unwrap_or(&r.file)
            .display()
            .to_string()
    };
    if json_out {
        let cases: Vec<Value> = results
            .iter()
            .map(|r| {
                json!({
                    "file": file_name(r), "name": r.name, "passed": r.passed(),
                    "mismatches": r.mismatches.iter().map(|m| json!({
                        "what": m.what, "expected": m.expected, "actual": m.actual,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        say!(
            "{}",
            json!({ "passed": results.len() - failed, "failed": failed, "cases": cases })
        );
    } else {
        for r in &results {
            if r.passed() {
                say!("PASS  {} › {}", file_name(r), r.name);
            } else {
                say!("FAIL  {} › {}", file_name(r), r.name);
                for m in &r.mismatches {
                    say!("        {}:", m.what);
                    say!("        - expected: {}", m.expected);
                    say!("        + actual:   {}", m.actual);
                }
            }
        }
        say!(
            "{} passed, {} failed ({} cases, policy version {})",
            results.len() - failed,
            failed,
            results.len(),
            snapshot.version
        );
    }
    if results.is_empty() {
        eprintln!(
            "warning: no test cases under `{}`",
            dir.join("tests").display()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn validate(dir: PathBuf) -> anyhow::Result<ExitCode> {
    match arbiter::policy::PolicySnapshot::load(&dir) {
        Ok(snapshot) => {
            for w in &snapshot.warnings {
                eprintln!("warning: {w}");
            }
            say!(
                "ok: {} policies, {} routes, version {} ({})",
                snapshot.policy_count(),
                snapshot.routes.endpoints().len(),
                snapshot.version,
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("arbiter: {e}");
            Ok(ExitCode::from(3))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_command_lines() {
        let cli = Cli::try_parse_from([
            "arbiter",
            "serve",
            "--policies",
            "p",
            "--data-dir",
            "d",
            "--grpc-addr",
            "0.0.0.0:1",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve(ServeArgs {
                grpc_addr: Some(_),
                ..
            })
        ));
        let cli = Cli::try_parse_from(["arbiter", "check", "--token", "T", "GET", "/fido/config"])
            .unwrap();
        assert!(
            matches!(cli.command, Command::Check(CheckArgs { ref method, .. }) if method == "GET")
        );
        let cli = Cli::try_parse_from([
            "arbiter",
            "token",
            "dev",
            "--client",
            "demo",
            "--scope",
            "read fido",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Token(TokenCommand::Dev(_))));
        assert!(Cli::try_parse_from(["arbiter", "serve", "--grpc-addr", "nope"]).is_err());
    }
}
