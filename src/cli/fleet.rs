//! `arbiter fleet`: the replicas sharing a store, what each runs, and which need a look.

use std::process::ExitCode;

use clap::Subcommand;

use super::StoreArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum FleetCommand {
    /// Every replica recorded in the store: its revision, when it loaded it, its last reload
    /// and heartbeat. Flags replicas on another revision than most, silent too long, or
    /// failing to reload; exits 1 when any is flagged.
    Status {
        /// Seconds without a heartbeat before a replica is flagged silent [default: `[fleet]
        /// silent_after_seconds`].
        #[arg(long)]
        silent_after: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Removes a replica gone for good from the view.
    Forget {
        /// Its id, as `status` shows it.
        replica_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(crate) fn fleet(cmd: FleetCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    match cmd {
        FleetCommand::Status {
            silent_after,
            store,
        } => {
            let config = store.config()?;
            let silent_after = silent_after.unwrap_or(config.fleet.silent_after_seconds);
            let opened = runtime.block_on(arbiter::store::open(&config))?;
            let view = runtime.block_on(arbiter::fleet::status(
                opened.as_ref(),
                i64::try_from(silent_after).unwrap_or(i64::MAX),
            ))?;
            if store.output.json() {
                say!("{}", serde_json::to_string(&view)?);
            } else {
                say!(
                    "fleet revision {} — {} replica(s), {}",
                    view.revision.as_deref().unwrap_or("(none live)"),
                    view.replicas.len(),
                    if view.consistent {
                        "all on it"
                    } else {
                        "SOME FLAGGED"
                    }
                );
                for r in &view.replicas {
                    let loaded = chrono::DateTime::from_timestamp(r.record.loaded_at, 0)
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default();
                    say!(
                        "  {:<40} {:<21} rev {:<16} loaded {loaded}  seen {}s ago  reload {}{}",
                        r.record.replica_id,
                        r.record.address,
                        r.record.revision,
                        r.silent_seconds,
                        r.record.last_reload,
                        if r.flags.is_empty() {
                            String::new()
                        } else {
                            format!("  ⚠ {}", r.flags.join(", "))
                        }
                    );
                    if !r.record.last_error.is_empty() {
                        say!("      {}", r.record.last_error);
                    }
                }
            }
            Ok(if view.consistent {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        FleetCommand::Forget { replica_id, store } => {
            let config = store.config()?;
            let opened = runtime.block_on(arbiter::store::open(&config))?;
            let gone = runtime.block_on(opened.forget_replica(&replica_id))?;
            if !gone {
                anyhow::bail!("no replica `{replica_id}` in the store");
            }
            say!("forgot {replica_id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
