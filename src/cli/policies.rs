//! `arbiter policies validate|test|query|replay`: work with a policy directory.

use super::OutputArgs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use arbiter::audit::counterexample::Counterexample;
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
    /// Run the policy tests (`DIR/tests/*.yaml`) without a server, and prove the properties
    /// (`DIR/properties/*.cedar`) with the cvc5 solver (`CVC5`).
    Test {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Also list the policies no case made determining.
        #[arg(long)]
        coverage: bool,
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
    /// An administrator's bearer token for --addr (a server off loopback requires one with
    /// `[admin] read_scope`).
    #[arg(long, env = "ARBITER_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
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
                let mut request = tonic::Request::new(request);
                if let Some(token) = &args.admin_token {
                    let value = format!("Bearer {token}")
                        .parse()
                        .context("--admin-token is not a valid header value")?;
                    request.metadata_mut().insert("authorization", value);
                }
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

/// `arbiter policies test`: 0 when every case passes and every property holds, 1 on a
/// failure (or when properties cannot be proved for want of a solver), 3 when the policies, a
/// test file or a property are invalid.
pub(crate) fn policy_tests(
    dir: PathBuf,
    coverage: bool,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    use arbiter::audit::{cases, properties};
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
    let bounds = match properties::load(&dir, &snapshot.schema) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("arbiter: invalid property: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let started = std::time::Instant::now();
    let proved = if bounds.is_empty() {
        Ok((Vec::new(), 0))
    } else {
        solver_runtime()?.block_on(properties::prove(&snapshot, &bounds))
    };
    let (proofs, solver_error) = match proved {
        Ok((p, _)) => (p, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let failed = results.iter().filter(|r| !r.passed()).count();
    let broken = proofs.iter().filter(|p| !p.holds).count();
    let uncovered = if coverage {
        uncovered_policies(&snapshot, &results)
    } else {
        Vec::new()
    };
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
        let mut report = json!({
            "passed": results.len() - failed, "failed": failed, "cases": cases,
            "properties": proofs,
            "properties_unproved": solver_error.as_ref().map(|e| e.to_string()),
        });
        if coverage {
            report["uncovered"] = json!(uncovered
                .iter()
                .map(|(id, at)| json!({ "policy": id, "at": at }))
                .collect::<Vec<_>>());
        }
        say!("{report}");
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
        for p in &proofs {
            if p.holds {
                say!("PROVED {} › {}", p.at, p.id);
            } else {
                say!(
                    "FAIL  {} › {}: the policies allow a request it forbids",
                    p.at,
                    p.id
                );
                if let Some(example) = &p.counterexample {
                    print_counterexample(example);
                }
            }
        }
        for (id, at) in &uncovered {
            say!("UNCOVERED {at} › {id}: no case made it determining");
        }
        say!(
            "{} passed, {} failed ({} cases, policy version {}); {} of {} properties proved{}",
            results.len() - failed,
            failed,
            results.len(),
            snapshot.version,
            proofs.len() - broken,
            bounds.len(),
            if bounds.is_empty() {
                String::new()
            } else {
                format!(" in {:.1} s", started.elapsed().as_secs_f64())
            }
        );
        if coverage {
            say!(
                "coverage: {} of {} policies determined some case",
                snapshot.policy_count() - uncovered.len(),
                snapshot.policy_count()
            );
        }
    }
    if results.is_empty() {
        eprintln!(
            "warning: no test cases under `{}`",
            dir.join("tests").display()
        );
    }
    if let Some(e) = &solver_error {
        eprintln!(
            "arbiter: {} properties under `{}` were not proved: {e}",
            bounds.len(),
            dir.join(arbiter::policy::PROPERTIES_DIR).display()
        );
    }
    Ok(if failed == 0 && broken == 0 && solver_error.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The policies (id, `file:line`) that determined no case, in file order.
fn uncovered_policies(
    snapshot: &arbiter::policy::PolicySnapshot,
    results: &[arbiter::audit::cases::CaseResult],
) -> Vec<(String, String)> {
    let covered: std::collections::HashSet<&str> = results
        .iter()
        .flat_map(|r| r.determining.iter().map(String::as_str))
        .collect();
    let mut out: Vec<_> = snapshot
        .meta
        .iter()
        .filter(|(id, _)| !covered.contains(id.to_string().as_str()))
        .map(|(id, m)| ((m.file.clone(), m.line), id.to_string()))
        .collect();
    out.sort();
    out.into_iter()
        .map(|((file, line), id)| (id, format!("{file}:{line}")))
        .collect()
}

/// Prints a counterexample for a terminal: the `arbiter check` line, the test case, and the
/// solver's own form when Arbiter's decision path decides the request otherwise.
fn print_counterexample(example: &Counterexample) {
    if let Some(check) = &example.check {
        say!("    try: {check}");
    }
    say!("    as a case for policies/tests/*.yaml:");
    for line in example.yaml.lines() {
        say!("      {line}");
    }
    if !example.reproduced {
        say!("    note: Arbiter decides this request otherwise (it needs facts a token and context do not carry, such as group membership or an entities.json entry); as the solver found it:");
        for line in example.cedar.lines() {
            say!("      {line}");
        }
    }
}

/// The runtime the solver-backed commands (analyze, compare, test, rollout report) run on.
pub(crate) fn solver_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `arbiter policies analyze`: 0 when nothing is found, 2 when a route cannot be reached or a
/// policy never applies, can error or changes no decision, 3 when the policies are invalid,
/// 1 when the solver fails.
fn analyze(dir: PathBuf, json_out: bool) -> anyhow::Result<ExitCode> {
    let snapshot = match arbiter::policy::PolicySnapshot::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("arbiter: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let started = std::time::Instant::now();
    let analysis = match solver_runtime()?.block_on(arbiter::audit::analysis::analyze(&snapshot)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arbiter: cannot analyze: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let unreachable = analysis.unreachable().count();
    if json_out {
        say!("{}", serde_json::to_string_pretty(&analysis)?);
    } else {
        for r in analysis.unreachable() {
            let shadowed = r.shadowed.as_ref();
            let why = match shadowed.map(|s| s.by.as_slice()) {
                Some(by) if !by.is_empty() => format!("denied by {}", by.join(", ")),
                _ if shadowed.is_some_and(|s| s.counterexample.is_none()) => {
                    "its permits can never apply".into()
                }
                _ => "no request can be allowed".into(),
            };
            say!(
                "unreachable {} {} (permits at {}): {why}",
                r.method,
                r.route,
                r.permits.join(", ")
            );
            if let Some(example) = shadowed.and_then(|s| s.counterexample.as_ref()) {
                say!("  a request its permits allow, which the set denies:");
                print_counterexample(example);
            }
        }
        if analysis.issue_scope_reachable == Some(false) {
            say!("unreachable IssueScope: the token endpoint can never issue a scope");
        }
        for f in &analysis.policies {
            say!("{} {} at {}: {}", f.finding, f.policy, f.at, f.detail);
            if let Some(example) = &f.counterexample {
                print_counterexample(example);
            }
        }
        say!(
            "{} routes × methods proved, {unreachable} unreachable; {} policies, {} findings; {} solver queries in {:.1} s (version {})",
            analysis.routes.len(),
            snapshot.policy_count(),
            analysis.policies.len(),
            analysis.queries,
            started.elapsed().as_secs_f64(),
            snapshot.version
        );
    }
    Ok(if analysis.clean() {
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
    let started = std::time::Instant::now();
    let compared = solver_runtime()?.block_on(arbiter::audit::compare::compare(&old_set, &new_set));
    let (routes, queries) = match compared {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arbiter: cannot compare: {e}");
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
                say!("  allowed only by {}:", old.display());
                print_counterexample(example);
            }
            if let Some(example) = &r.only_new_allows {
                say!("  allowed only by {}:", new.display());
                print_counterexample(example);
            }
        }
        say!(
            "{} routes × methods compared: {} equivalent, {differing} differ; {queries} solver queries in {:.1} s",
            routes.len(),
            routes.len() - differing,
            started.elapsed().as_secs_f64()
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
        PoliciesCommand::Test {
            dir,
            coverage,
            output,
        } => policy_tests(dir, coverage, output.json()),
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
