//! `arbiter keys`: the signing keys in the store.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use super::StoreArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
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

pub(crate) fn keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    use arbiter::oauth::keys::{alg_name, generate};
    let store_args = match &cmd {
        KeysCommand::List { store } | KeysCommand::Rotate { store, .. } => store,
    };
    let config = store_args.config()?;
    let json_out = store_args.output.json();
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
                    let keys = store.signing_keys(purpose).await?;
                    let states = arbiter::oauth::keys::key_states(&keys, ttl_of(purpose), ahead, now);
                    for (k, state) in keys.iter().zip(states) {
                        rows.push(json!({
                            "kid": k.kid, "purpose": purpose, "alg": k.alg, "state": state.as_str(),
                            "created_at": k.created_at, "retired_at": k.retired_at,
                            "protected": k.protected,
                        }));
                    }
                }
                if json_out {
                    say!("{}", Value::Array(rows));
                } else {
                    for r in &rows {
                        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                        let protection = if r["protected"] == true { "encrypted" } else { "UNENCRYPTED" };
                        say!("{}\t{}\t{}\t{}\t{}\tcreated {}", text("kid"), text("purpose"), text("alg"), text("state"), protection, r["created_at"]);
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
