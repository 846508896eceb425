//! `arbiter rollout report`: what a shadow candidate disagreed on, from the decision log,
//! joined with the proof of where the candidate and the live set differ.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use arbiter::audit::rollout::{report, Disagreement};
use clap::Subcommand;

use super::OutputArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum RolloutCommand {
    /// Disagreements of the shadow candidate by method and route, with sample decision ids;
    /// with --live and --candidate, each joined with `policies compare` of the two sets.
    /// Exits 1 when a disagreement falls where the proof says the sets decide alike.
    Report {
        /// The JSON decision log (`--log-format json`), or `-` for standard input.
        #[arg(long)]
        log: PathBuf,
        /// The live policy directory (a bundle written out, or the directory served).
        #[arg(long, requires = "candidate")]
        live: Option<PathBuf>,
        /// The candidate policy directory.
        #[arg(long, requires = "live")]
        candidate: Option<PathBuf>,
        /// Decision ids kept per route.
        #[arg(long, default_value_t = 3)]
        samples: usize,
        #[command(flatten)]
        out: OutputArgs,
    },
}

pub(crate) fn rollout(cmd: RolloutCommand) -> anyhow::Result<ExitCode> {
    let RolloutCommand::Report {
        log,
        live,
        candidate,
        samples,
        out,
    } = cmd;
    let reader: Box<dyn BufRead> = if log.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&log).with_context(|| format!("cannot read {}", log.display()))?,
        ))
    };
    let seen: Vec<Disagreement> = reader
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| Disagreement::from_log_line(&l))
        .collect();
    let proof = match (live, candidate) {
        (Some(live), Some(candidate)) => {
            let load = |dir: &PathBuf| {
                arbiter::policy::PolicySnapshot::load(dir)
                    .with_context(|| format!("{} is not a valid policy set", dir.display()))
            };
            let (old, new) = (load(&live)?, load(&candidate)?);
            let (routes, _) = super::policies::solver_runtime()?
                .block_on(arbiter::audit::compare::compare(&old, &new))
                .context("cannot compare the two sets")?;
            Some(routes)
        }
        _ => None,
    };
    let r = report(seen, proof.as_deref(), samples);
    if out.json() {
        say!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        if r.observed.is_empty() {
            say!("no disagreement in the log");
        }
        for g in &r.observed {
            say!(
                "{} {}: {} disagreement(s), proof: {}",
                g.method,
                g.route,
                g.count,
                g.proof
            );
            for (answers, n) in &g.answers {
                say!("    {n} × {answers}");
            }
            say!("    e.g. {}", g.samples.join(", "));
        }
        if proof.is_some() {
            for d in &r.not_hit_yet {
                say!(
                    "not hit by traffic yet: {} {} ({}: {})",
                    d.method,
                    d.route,
                    d.relation,
                    match (&d.only_old_allows, &d.only_new_allows) {
                        (Some(_), Some(_)) => "each allows requests the other denies",
                        (Some(_), None) => "the candidate denies requests the live set allows",
                        _ => "the candidate allows requests the live set denies",
                    }
                );
                for example in [&d.only_old_allows, &d.only_new_allows]
                    .into_iter()
                    .flatten()
                {
                    if let Some(check) = &example.check {
                        say!("    try: {check}");
                    }
                }
            }
        }
    }
    Ok(if r.consistent {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
