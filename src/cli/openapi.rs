//! `arbiter openapi import|diff`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub(crate) enum OpenApiCommand {
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

/// `arbiter openapi import|diff`: 0 on success (diff: no difference), 1 on an error,
/// 2 when diff found differences.
pub(crate) fn openapi(cmd: OpenApiCommand) -> anyhow::Result<ExitCode> {
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
