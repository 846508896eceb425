//! `arbiter check`: ask a running server for one decision.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};

use arbiter::wire::proto::{self, authorizer_client::AuthorizerClient};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Bearer token (omit for an anonymous request).
    #[arg(long, default_value = "")]
    pub(crate) token: String,
    /// HTTP method.
    pub(crate) method: String,
    /// Request path.
    pub(crate) path: String,
    /// Context as a JSON object, e.g. '{"ip":"10.0.0.1","fraud_score":12}'.
    #[arg(long)]
    pub(crate) context: Option<String>,
    /// Ask for a per-policy explanation.
    #[arg(long)]
    pub(crate) explain: bool,
    /// RFC 8705: base64url SHA-256 of the client certificate the caller presented.
    #[arg(long)]
    pub(crate) client_cert_sha256: Option<String>,
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "ARBITER_ADDR")]
    pub(crate) addr: String,
    #[command(flatten)]
    pub(crate) output: super::OutputArgs,
}

pub(crate) fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let context = match &args.context {
        Some(text) => match serde_json::from_str::<Value>(text).context("--context is not JSON")? {
            Value::Object(map) => Some(arbiter::wire::json_to_struct(&map)),
            _ => bail!("--context must be a JSON object"),
        },
        None => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let started = std::time::Instant::now();
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
    let took = started.elapsed();
    let allowed = response.decision == proto::Decision::Allow as i32;
    if !args.output.json() {
        for line in human_lines(&response, allowed, took) {
            say!("{line}");
        }
        return Ok(if allowed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        });
    }
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
        "outputs": response.outputs.as_ref().map(|o| json!({
            "headers": o.headers, "remove_headers": o.remove_headers, "metadata": o.metadata,
            "deny_status": (o.deny_status != 0).then_some(o.deny_status),
            "deny_message": (!o.deny_message.is_empty()).then_some(&o.deny_message),
        })),
        "explanation": response.explanation.iter().map(|e| json!({
            "policy_id": e.policy_id,
            "effect": proto::policy_explanation::Effect::try_from(e.effect).map(|x| x.as_str_name()).unwrap_or("?"),
            "outcome": proto::policy_explanation::Outcome::try_from(e.outcome).map(|x| x.as_str_name()).unwrap_or("?"),
            "at": format!("{}:{}", e.file, e.line),
            "scopes": e.scopes,
            "missing_scopes": e.missing_scopes,
            "error": e.error,
            "scope_matched": e.scope_matched,
            "failed_condition": (!e.failed_condition.is_empty()).then_some(&e.failed_condition),
            "outputs": (!e.outputs.is_empty()).then_some(&e.outputs),
        })).collect::<Vec<_>>(),
    });
    say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// A protobuf enum value as a person reads it: `REASON_INSUFFICIENT_SCOPE` → `insufficient_scope`.
fn short_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

/// The short form a person reads: `allow (item-read) in 0.84 ms`, or
/// `deny: insufficient_scope — needs read fido (items-create)`, then who asked and, with
/// `--explain`, one line per policy.
fn human_lines(r: &proto::AuthorizeResponse, allowed: bool, took: Duration) -> Vec<String> {
    let reason = proto::Reason::try_from(r.reason)
        .map_or_else(|_| "?".into(), |x| short_name(x.as_str_name(), "REASON_"));
    let policies = if r.policy_ids.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.policy_ids.join(", "))
    };
    let ms = took.as_secs_f64() * 1000.0;
    let mut lines = vec![if allowed {
        format!("allow{policies} in {ms:.2} ms")
    } else {
        let why = if !r.required_scopes.is_empty() {
            format!(" — needs {}", r.required_scopes.join(" "))
        } else if let Some(e) = r.errors.first() {
            format!(" — {e}")
        } else {
            String::new()
        };
        format!("deny: {reason}{why}{policies} in {ms:.2} ms")
    }];
    if let Some(p) = &r.principal {
        lines.push(format!("  as {} (decision {})", p.entity, r.decision_id));
    } else {
        lines.push(format!("  anonymous (decision {})", r.decision_id));
    }
    if let Some(o) = &r.outputs {
        for (name, value) in &o.headers {
            lines.push(format!("  header for the upstream: {name}: {value}"));
        }
        if !o.remove_headers.is_empty() {
            lines.push(format!(
                "  client copies dropped: {}",
                o.remove_headers.join(", ")
            ));
        }
        for (key, value) in &o.metadata {
            lines.push(format!("  metadata: {key} = {value}"));
        }
        if o.deny_status != 0 {
            lines.push(format!(
                "  answered as {} {}",
                o.deny_status, o.deny_message
            ));
        }
    }
    for e in &r.explanation {
        let outcome = proto::policy_explanation::Outcome::try_from(e.outcome)
            .map_or_else(|_| "?".into(), |x| short_name(x.as_str_name(), "OUTCOME_"));
        let missing = if e.missing_scopes.is_empty() {
            String::new()
        } else {
            format!(", missing {}", e.missing_scopes.join(" "))
        };
        let why = if !e.scope_matched {
            ", principal/action/resource did not match".to_owned()
        } else if e.failed_condition.is_empty() {
            String::new()
        } else {
            format!(", failed: {}", e.failed_condition)
        };
        let outputs = if e.outputs.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = e
                .outputs
                .iter()
                .map(|(k, v)| format!("@{k}(\"{v}\")"))
                .collect();
            format!(", outputs {}", list.join(" "))
        };
        lines.push(format!(
            "  {} {outcome} at {}:{}{missing}{why}{outputs}",
            e.policy_id, e.file, e.line
        ));
    }
    lines
}
