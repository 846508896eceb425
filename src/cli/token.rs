//! `arbiter token dev`: development tokens.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use arbiter::token::keys::load_or_generate_dev_key;
use arbiter::token::mint::{mint, DevTokenRequest};

use super::load_config;

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Mint a token from the development issuer. FOR DEVELOPMENT ONLY.
    Dev(DevTokenArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DevTokenArgs {
    /// Client id.
    #[arg(long)]
    pub(crate) client: String,
    /// Space-separated scopes.
    #[arg(long, default_value = "")]
    pub(crate) scope: String,
    /// End-user subject; without it the token is the client's own.
    #[arg(long)]
    pub(crate) sub: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub(crate) ttl: u64,
    /// Extra claims as a JSON object.
    #[arg(long)]
    pub(crate) claims: Option<String>,
    /// Configuration file (for the dev issuer's name and audience).
    #[arg(long, env = "ARBITER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory holding the development key [default: data].
    #[arg(long, env = "ARBITER_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

pub(crate) fn dev_token(args: DevTokenArgs) -> anyhow::Result<ExitCode> {
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
