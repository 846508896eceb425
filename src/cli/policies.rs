//! `arbiter policies validate|test|query|replay`: work with a policy directory.

use super::OutputArgs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use arbiter::wire::proto::{self};

#[derive(Debug, Subcommand)]
pub(crate) enum PoliciesCommand {
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
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Format every `.cedar` file with Cedar's formatter (comments kept); `--check` only
    /// reports (exit 1 if a file would change, 3 if one does not parse).
    Fmt {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Change nothing; exit 1 when a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Prove what the policies can ever allow, with Cedar's symbolic compiler and the cvc5
    /// solver (`CVC5` names a cvc5 1.3 executable): routes no request can reach (exit 2 if
    /// any), and whether the token endpoint can issue any scope.
    Analyze {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Prove whether two policy directories decide every route alike (exit 0), or which way
    /// they differ, with a request one allows and the other denies (exit 2).
    Compare {
        /// The policy directory as it is.
        old: PathBuf,
        /// The changed one (its schema is the one both are read under).
        new: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Run the policy tests (`DIR/tests/*.yaml`) without a server.
    Test {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// Policy directory [default: policies]; ignored with --addr.
    pub(crate) dir: Option<PathBuf>,
    /// Query the live set of a running server instead (gRPC URL).
    #[arg(long)]
    pub(crate) addr: Option<String>,
    /// Annotation `KEY` or `KEY=VALUE`, e.g. `tag=healthcare`.
    #[arg(long = "annotation", value_name = "KEY[=VALUE]")]
    pub(crate) annotations: Vec<String>,
    /// Attribute read anywhere in the policy: `principal.nationality`, or a tail.
    #[arg(long = "attribute", value_name = "PATH")]
    pub(crate) attributes: Vec<String>,
    /// A literal the policy compares with, e.g. `US`.
    #[arg(long = "value", value_name = "LITERAL")]
    pub(crate) values: Vec<String>,
    /// An entity type or entity named: `User` or `User::"alice"`.
    #[arg(long = "entity", value_name = "TYPE[::ID]")]
    pub(crate) entities: Vec<String>,
    /// An action the policy applies to, e.g. `DELETE`.
    #[arg(long = "action", value_name = "NAME")]
    pub(crate) actions: Vec<String>,
    /// A request the policy can apply to: "METHOD /concrete/path".
    #[arg(long = "endpoint", value_name = "METHOD PATH")]
    pub(crate) endpoints: Vec<String>,
    /// A scope the policy asks for.
    #[arg(long = "scope", value_name = "NAME")]
    pub(crate) scopes: Vec<String>,
    /// permit or forbid.
    #[arg(long)]
    pub(crate) effect: Option<String>,
    /// Source file glob, relative to the policy directory.
    #[arg(long = "file", value_name = "GLOB")]
    pub(crate) files: Vec<String>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// `arbiter policies replay`: 0 when no allow/deny flips, 2 when some do, 3 when the
/// candidate is invalid.
pub(crate) fn replay_decisions(
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
pub(crate) fn query_policies(args: QueryArgs) -> anyhow::Result<ExitCode> {
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
    if args.output.json() {
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
pub(crate) fn policy_tests(dir: PathBuf, json_out: bool) -> anyhow::Result<ExitCode> {
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

/// `arbiter policies analyze`: 0 when every route a permit is written for can be reached,
/// 2 when one cannot, 3 when the policies are invalid, 1 when the solver fails.
fn analyze(dir: PathBuf, json_out: bool) -> anyhow::Result<ExitCode> {
    let snapshot = match arbiter::policy::PolicySnapshot::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("arbiter: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let analysis = match runtime.block_on(arbiter::audit::analysis::analyze(&snapshot)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arbiter: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let unreachable = analysis.unreachable().count();
    if json_out {
        say!("{}", serde_json::to_string_pretty(&analysis)?);
    } else {
        for r in analysis.unreachable() {
            say!(
                "unreachable {} {}: no request can be allowed (permits at {})",
                r.method,
                r.route,
                r.permits.join(", ")
            );
        }
        if analysis.issue_scope_reachable == Some(false) {
            say!("unreachable IssueScope: the token endpoint can never issue a scope");
        }
        say!(
            "{} routes × methods proved, {unreachable} unreachable; {} solver queries in {:.1} s (version {})",
            analysis.routes.len(),
            analysis.queries,
            started.elapsed().as_secs_f64(),
            snapshot.version
        );
    }
    Ok(if unreachable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `arbiter policies compare`: 0 when equivalent on every route, 2 when not, 3 when a
/// directory is invalid, 1 when the solver fails.
fn compare(old: &Path, new: &Path, json_out: bool) -> anyhow::Result<ExitCode> {
    let load = |dir: &Path| {
        arbiter::policy::PolicySnapshot::load(dir).map_err(|e| eprintln!("arbiter: {e}"))
    };
    let (Ok(old_set), Ok(new_set)) = (load(old), load(new)) else {
        return Ok(ExitCode::from(3));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let routes = match runtime.block_on(arbiter::audit::analysis::compare(&old_set, &new_set)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arbiter: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let differing = routes.iter().filter(|r| r.relation != "equivalent").count();
    if json_out {
        say!("{}", serde_json::to_string_pretty(&routes)?);
    } else {
        for r in routes.iter().filter(|r| r.relation != "equivalent") {
            say!(
                "{} {} {}: {}",
                r.relation,
                r.method,
                r.route,
                match r.relation {
                    "narrower" => "the new set denies requests the old one allows",
                    "wider" => "the new set allows requests the old one denies",
                    _ => "each allows requests the other denies",
                }
            );
            if let Some(example) = &r.only_old_allows {
                say!(
                    "  allowed only by {}:\n    {}",
                    old.display(),
                    example.replace('\n', "\n    ")
                );
            }
            if let Some(example) = &r.only_new_allows {
                say!(
                    "  allowed only by {}:\n    {}",
                    new.display(),
                    example.replace('\n', "\n    ")
                );
            }
        }
        say!(
            "{} routes × methods compared: {} equivalent, {differing} differ",
            routes.len(),
            routes.len() - differing
        );
    }
    Ok(if differing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub(crate) fn validate(dir: PathBuf) -> anyhow::Result<ExitCode> {
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

/// Runs one `policies` subcommand.
pub(crate) fn run(cmd: PoliciesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PoliciesCommand::Validate { dir } => validate(dir),
        PoliciesCommand::Analyze { dir, output } => analyze(dir, output.json()),
        PoliciesCommand::Compare { old, new, output } => compare(&old, &new, output.json()),
        PoliciesCommand::Test { dir, output } => policy_tests(dir, output.json()),
        PoliciesCommand::Fmt { dir, check } => fmt(&dir, check),
        PoliciesCommand::Query(args) => query_policies(*args),
        PoliciesCommand::Replay {
            log,
            candidate,
            output,
        } => replay_decisions(&log, &candidate, output.json()),
    }
}

/// `arbiter policies fmt`: 0 formatted (or, with `--check`, nothing to change), 1 with
/// `--check` when a file would change, 3 when a file does not parse.
fn fmt(dir: &std::path::Path, check: bool) -> anyhow::Result<ExitCode> {
    let report = arbiter::policy::format::format_dir(dir, check)
        .with_context(|| format!("cannot format `{}`", dir.display()))?;
    for (file, e) in &report.errors {
        eprintln!("{}: {e}", file.display());
    }
    for file in &report.changed {
        say!(
            "{} {}",
            if check { "would format" } else { "formatted" },
            file.display()
        );
    }
    Ok(if !report.errors.is_empty() {
        ExitCode::from(3)
    } else if check && !report.changed.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
