//! The `arbiter` command line: one file per subcommand, each parsing its flags, calling the
//! library and printing (as cargo's `commands/`). Exit codes: 0 ok / allow, 1 error, 2 deny
//! (`check`) or differences, 3 invalid policies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use arbiter::config::Config;

/// Prints a line to stdout; a closed pipe (`arbiter … | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bench;
mod bundle;
mod check;
mod clients;
mod completions;
mod fleet;
mod gateway;
mod keys;
mod openapi;
mod policies;
mod rollout;
mod serve;
mod ssa;
mod token;

use bench::BenchArgs;
use check::CheckArgs;
use clients::ClientsCommand;
use gateway::GatewayArgs;
use keys::KeysCommand;
use openapi::OpenApiCommand;
use policies::PoliciesCommand;
use serve::ServeArgs;
use ssa::SsaArgs;
use token::TokenCommand;

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
    /// Signed policy bundles for a fleet of replicas: build, verify, inspect, keygen.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// The replicas sharing a store: which runs what, and which need a look.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Shadow rollout: what a candidate set disagreed on with the live one, and why.
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
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
    /// Shell completions: `source <(arbiter completions bash)`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff): `arbiter man > arbiter.1`.
    Man,
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

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Data directory holding the SQLite store [default: data].
    #[arg(long, env = "ARBITER_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite://FILE) instead of the data directory's SQLite.
    #[arg(long, env = "ARBITER_STORE_URL", hide_env_values = true)]
    pub(crate) store_url: Option<String>,
    /// Configuration file (for its data_dir and [store]).
    #[arg(long, env = "ARBITER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// `--json` / `--human`: JSON where a script reads (the default when stdout is not a
/// terminal), the short form where a person reads (the default on a terminal).
/// `ARBITER_OUTPUT=json|human` overrides the terminal test (flags still win).
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct OutputArgs {
    /// Print JSON (the default when stdout is not a terminal).
    #[arg(long, conflicts_with = "human", global = true)]
    pub(crate) json: bool,
    /// Print the short human form even into a pipe.
    #[arg(long, global = true)]
    pub(crate) human: bool,
}

impl OutputArgs {
    /// Whether to print JSON.
    pub(crate) fn json(self) -> bool {
        if self.json || self.human {
            return self.json;
        }
        match std::env::var("ARBITER_OUTPUT").as_deref() {
            Ok("json") => true,
            Ok("human") => false,
            _ => !std::io::IsTerminal::is_terminal(&std::io::stdout()),
        }
    }
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

/// Parses the command line, runs it, and turns an error into `arbiter: …` and exit code 1.
pub fn main() -> ExitCode {
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
        Command::Serve(args) => serve::serve(args),
        Command::Check(args) => check::check(args),
        Command::Token(TokenCommand::Dev(args)) => token::dev_token(args),
        Command::Policies(cmd) => policies::run(cmd),
        Command::Bundle(cmd) => bundle::bundle(cmd),
        Command::Fleet(cmd) => fleet::fleet(cmd),
        Command::Rollout(cmd) => rollout::rollout(cmd),
        Command::Clients(cmd) => clients::clients(cmd),
        Command::Keys(cmd) => keys::keys(cmd),
        Command::Ssa(args) => ssa::ssa(args),
        Command::Openapi(cmd) => openapi::openapi(cmd),
        Command::Gateway(args) => gateway::gateway(args),
        Command::Bench(args) => bench::bench(args),
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => completions::man(),
        Command::EchoServer { grpc_addr, http } => bench::echo_server(grpc_addr, http),
    }
}

pub(crate) fn load_config(file: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    })
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
