//! `arbiter ssa`: the software statement workflow through a running server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub(crate) struct SsaArgs {
    /// The server's HTTP base URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "ARBITER_URL",
        global = true
    )]
    pub(crate) url: String,
    /// Bearer token to call with (e.g. from `/token`).
    #[arg(long, env = "ARBITER_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// Or: get a token with this client's credentials (secret from ARBITER_CLIENT_SECRET).
    #[arg(long, env = "ARBITER_CLIENT_ID", global = true)]
    pub(crate) client_id: Option<String>,
    #[command(flatten)]
    pub(crate) output: super::OutputArgs,
    #[command(subcommand)]
    pub(crate) command: SsaCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SsaCommand {
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

pub(crate) fn ssa(args: SsaArgs) -> anyhow::Result<ExitCode> {
    use arbiter::oauth::ssa::api::{ClientError, WorkflowApi};
    let words = |s: &str| {
        s.split_ascii_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let client = match (&args.token, &args.client_id) {
            (Some(token), _) => WorkflowApi::new(&args.url, token.clone()),
            (None, Some(id)) => {
                let secret = std::env::var("ARBITER_CLIENT_SECRET")
                    .context("--client-id needs ARBITER_CLIENT_SECRET in the environment")?;
                WorkflowApi::with_client_credentials(&args.url, id, &secret).await?
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
            if args.output.json() {
                say!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                for line in human_lines(&value) {
                    say!("{line}");
                }
            }
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

/// The short form of a workflow answer: a list as one line per item (id, status, name,
/// scopes, or an audit event's time, action and actor), an object as its scalar fields, one
/// `key: value` a line (a signed statement is long: it is named, not printed).
fn human_lines(value: &Value) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    match value {
        Value::Array(items) if items.is_empty() => vec!["(none)".into()],
        Value::Array(items) => items
            .iter()
            .map(|item| {
                [
                    "id",
                    "at",
                    "action",
                    "actor",
                    "status",
                    "software_name",
                    "requested_scopes",
                    "reason",
                ]
                .iter()
                .filter_map(|k| item.get(*k).filter(|v| !v.is_null()).map(text))
                .collect::<Vec<_>>()
                .join("  ")
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null() && !v.is_object())
            .map(|(k, v)| match (k.as_str(), v) {
                ("software_statement", Value::String(_)) => {
                    format!("{k}: (a signed JWT; --json prints it)")
                }
                _ => format!("{k}: {}", text(v)),
            })
            .collect(),
        other => vec![text(other)],
    }
}
