//! One connection to the solver for a run of proofs: Cedar's symbolic compiler
//! (`cedar-policy-symcc`, checks proved correct in Lean) over a cvc5 1.3 executable (found
//! by [`Solver::find`]). Shared by `analysis`, `compare` and `properties`, which only say
//! what to prove. The solver process is killed when its prover is dropped, so a proof whose
//! caller went away leaves nothing running.
//!
//! The solver quantifies over every well-formed request, entity store and context of the
//! schema, which include every request Arbiter can make: a proof about them all is a proof
//! about Arbiter's real decisions too.

use std::collections::BTreeSet;

use cedar_policy::{
    ActionConstraint, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, RequestEnv,
    ResourceConstraint, Schema,
};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet, Env};

use crate::policy::{PolicySnapshot, ENDPOINT_TYPE};

/// What every request Arbiter makes satisfies, beyond the schema: a caller without a token
/// (`Anonymous`) has no scopes, no token claims and no client.
const WORLD: &str = "forbid (principal is Anonymous, action, resource) when { (context has scopes && !context.scopes.isEmpty()) || context has token || context has client };";

/// The id of `WORLD` in a compiled set.
const WORLD_ID: &str = "arbiter-analysis-world";

/// How to get a solver, for every message that says one is missing.
pub const SOLVER_HINT: &str = "install cvc5 1.3 (`python3 -m pip install cvc5==1.3.2`, then run from the repository so `tools/cvc5` is found, or put a cvc5 1.3 executable on the PATH, or name one in `[admin] solver` or `CVC5`; see the README)";

/// The solver named in the configuration (`[admin] solver`), for every proof of the process.
static CONFIGURED_SOLVER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Names the solver every proof of this process uses (`[admin] solver`); the first call wins.
pub fn configure_solver(path: std::path::PathBuf) {
    let _ = CONFIGURED_SOLVER.set(path);
}

/// The cvc5 executable proofs run, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solver {
    /// The executable.
    pub path: std::path::PathBuf,
    /// Where it was found: `[admin] solver`, `PATH`, `CVC5` or `tools/cvc5`.
    pub source: &'static str,
}

impl Solver {
    /// Finds cvc5: `[admin] solver`, then `cvc5` on the `PATH`, then the `CVC5` environment
    /// variable, then `tools/cvc5` (the driver over the PyPI wheel) in the working directory
    /// or beside the repository the binary was built in.
    pub fn find() -> Result<Self, AnalysisError> {
        if let Some(path) = CONFIGURED_SOLVER.get() {
            return Ok(Self {
                path: path.clone(),
                source: "[admin] solver",
            });
        }
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("cvc5"))
                .find(|p| p.is_file())
        });
        if let Some(path) = on_path {
            return Ok(Self {
                path,
                source: "PATH",
            });
        }
        if let Some(path) = std::env::var_os("CVC5").filter(|p| !p.is_empty()) {
            return Ok(Self {
                path: path.into(),
                source: "CVC5",
            });
        }
        let beside_build = std::env::current_exe().ok().and_then(|exe| {
            // target/{debug,release}[/deps]/arbiter → the repository root.
            exe.ancestors()
                .find(|a| a.join("tools/cvc5").is_file() && a.join("Cargo.toml").is_file())
                .map(|root| root.join("tools/cvc5"))
        });
        let tools = std::path::Path::new("tools/cvc5");
        let found = if tools.is_file() {
            std::path::absolute(tools).ok()
        } else {
            beside_build
        };
        found
            .map(|path| Self {
                path,
                source: "tools/cvc5",
            })
            .ok_or_else(|| AnalysisError::Solver("no cvc5 found".into()))
    }

    /// Starts the solver; it is killed when dropped.
    fn start(&self) -> Result<LocalSolver, AnalysisError> {
        tracing::debug!(solver = %self.path.display(), found_in = self.source, "starting the solver");
        LocalSolver::from_command(
            tokio::process::Command::new(&self.path)
                .args(["--lang", "smt", "--tlimit=60000"])
                .kill_on_drop(true),
        )
        .map_err(|e| {
            AnalysisError::Solver(format!(
                "{} (from {}): {e}",
                self.path.display(),
                self.source
            ))
        })
    }
}

/// Why a proof could not be run.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// cvc5 could not be started or failed.
    #[error("the cvc5 solver failed ({SOLVER_HINT}): {0}")]
    Solver(String),
    /// The policies could not be compiled for a request type.
    #[error("compiling the policies for {0}: {1}")]
    Compile(String, String),
    /// A property file is not a valid bound.
    #[error("{0}")]
    Property(String),
}

/// The solver and the schema every query of a run is posed under.
pub struct Prover<'s> {
    symcc: CedarSymCompiler<LocalSolver>,
    schema: &'s Schema,
    envs: Vec<RequestEnv>,
    /// Solver queries posed so far.
    pub queries: usize,
}

impl<'s> Prover<'s> {
    /// Starts cvc5 for queries under `schema`.
    pub fn new(schema: &'s Schema) -> Result<Self, AnalysisError> {
        let solver = Solver::find()?.start()?;
        let symcc =
            CedarSymCompiler::new(solver).map_err(|e| AnalysisError::Solver(e.to_string()))?;
        Ok(Self {
            symcc,
            schema,
            envs: schema.request_envs().collect(),
            queries: 0,
        })
    }

    /// The request types (principal, action, resource types) of the schema whose resource
    /// type is `resource_type` and whose action is `action` (any when `None`).
    pub fn envs(&self, resource_type: &str, action: Option<&str>) -> Vec<RequestEnv> {
        self.envs
            .iter()
            .filter(|e| {
                e.resource().to_string() == resource_type
                    && action.is_none_or(|a| e.action().id().unescaped() == a)
            })
            .cloned()
            .collect()
    }

    /// Every request type of the schema.
    pub fn all_envs(&self) -> &[RequestEnv] {
        &self.envs
    }

    /// Compiles a set for one request type, with the facts of every request Arbiter makes
    /// (`WORLD`): every query asks what a set allows, and a request Arbiter never makes is
    /// then allowed by no set.
    pub fn compile_set(
        &self,
        set: &PolicySet,
        env: &RequestEnv,
    ) -> Result<CompiledPolicySet, AnalysisError> {
        let mut set = set.clone();
        let world = Policy::parse(Some(PolicyId::new(WORLD_ID)), WORLD)
            .map_err(|e| AnalysisError::Compile(WORLD_ID.into(), e.to_string()))?;
        set.add(world)
            .map_err(|e| AnalysisError::Compile(WORLD_ID.into(), e.to_string()))?;
        CompiledPolicySet::compile(&set, env, self.schema)
            .map_err(|e| AnalysisError::Compile(env_name(env), e.to_string()))
    }

    /// Compiles one policy for one request type.
    pub fn compile(
        &self,
        policy: &Policy,
        env: &RequestEnv,
    ) -> Result<CompiledPolicy, AnalysisError> {
        CompiledPolicy::compile(policy, env, self.schema)
            .map_err(|e| AnalysisError::Compile(env_name(env), e.to_string()))
    }

    /// A request `set` allows, if there is one.
    pub async fn allowed_request(
        &mut self,
        set: &CompiledPolicySet,
    ) -> Result<Option<Env>, AnalysisError> {
        self.queries += 1;
        self.symcc
            .check_always_denies_with_counterexample_opt(set)
            .await
            .map_err(solver_error)
    }

    /// A request `a` allows and `b` denies, if there is one.
    pub async fn allowed_only_by(
        &mut self,
        a: &CompiledPolicySet,
        b: &CompiledPolicySet,
    ) -> Result<Option<Env>, AnalysisError> {
        self.queries += 1;
        self.symcc
            .check_implies_with_counterexample_opt(a, b)
            .await
            .map_err(solver_error)
    }

    /// Whether `policy` matches no request at all.
    pub async fn never_matches(&mut self, policy: &CompiledPolicy) -> Result<bool, AnalysisError> {
        self.queries += 1;
        self.symcc
            .check_never_matches_opt(policy)
            .await
            .map_err(solver_error)
    }

    /// A request on which evaluating `policy` errors, if there is one.
    pub async fn erring_request(
        &mut self,
        policy: &CompiledPolicy,
    ) -> Result<Option<Env>, AnalysisError> {
        self.queries += 1;
        self.symcc
            .check_never_errors_with_counterexample_opt(policy)
            .await
            .map_err(solver_error)
    }
}

fn solver_error(e: cedar_policy_symcc::err::Error) -> AnalysisError {
    AnalysisError::Solver(e.to_string())
}

/// `User GET Endpoint`, for messages.
pub fn env_name(env: &RequestEnv) -> String {
    format!("{} {} {}", env.principal(), env.action(), env.resource())
}

/// The policies Arbiter evaluates on one route, with a forbid for every other resource and
/// for every place of the route in the hierarchy but its own (from `entities.json`): what the
/// result allows, Arbiter allows on that route. A route the index does not know is decided by
/// the whole set.
pub fn route_slice(snapshot: &PolicySnapshot, template: &str) -> Result<PolicySet, AnalysisError> {
    let endpoint = snapshot.routes.by_template(template);
    let (policies, uid) = match endpoint {
        Some(e) => (&e.policies, e.uid.clone()),
        None => (&snapshot.policies, crate::policy::endpoint_uid(template)),
    };
    let ancestors: BTreeSet<String> = endpoint
        .map(|e| {
            e.entities
                .iter()
                .skip(1)
                .map(|a| a.uid().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut condition = format!("resource == {uid}");
    // every entity some route sits under: in it exactly when entities.json says so
    let containers: BTreeSet<String> = snapshot
        .routes
        .endpoints()
        .iter()
        .flat_map(|e| e.entities.iter().skip(1).map(|a| a.uid().to_string()))
        .collect();
    for container in &containers {
        if ancestors.contains(container) {
            condition += &format!(" && resource in {container}");
        } else {
            condition += &format!(" && !(resource in {container})");
        }
    }
    restrict(policies, ROUTE_PIN, &condition, &uid.to_string())
}

/// The id of the forbid `route_slice` adds.
const ROUTE_PIN: &str = "arbiter-analysis-route";

/// `set` with one more forbid (named `id`) for every request where `condition` does not hold.
pub fn restrict(
    set: &PolicySet,
    id: &str,
    condition: &str,
    what: &str,
) -> Result<PolicySet, AnalysisError> {
    let pin = Policy::parse(
        Some(PolicyId::new(id)),
        format!("forbid (principal, action, resource) unless {{ {condition} }};"),
    )
    .map_err(|e| AnalysisError::Compile(what.to_owned(), e.to_string()))?;
    let mut restricted = set.clone();
    restricted
        .add(pin)
        .map_err(|e| AnalysisError::Compile(what.to_owned(), e.to_string()))?;
    Ok(restricted)
}

/// The route a policy is written for (`resource == Endpoint::"…"`), if just one.
pub fn pinned_route(policy: &Policy) -> Option<String> {
    match policy.resource_constraint() {
        ResourceConstraint::Eq(uid) if uid.type_name().to_string() == ENDPOINT_TYPE => {
            Some(uid.id().unescaped().to_owned())
        }
        _ => None,
    }
}

/// A policy's scope (principal, action, resource constraints) as a Cedar condition.
pub fn scope_condition(policy: &Policy) -> String {
    let entity = |var: &str, op: &str, uid: &EntityUid| format!("{var} {op} {uid}");
    let principal = match policy.principal_constraint() {
        PrincipalConstraint::Any => None,
        PrincipalConstraint::In(u) => Some(entity("principal", "in", &u)),
        PrincipalConstraint::Eq(u) => Some(entity("principal", "==", &u)),
        PrincipalConstraint::Is(t) => Some(format!("principal is {t}")),
        PrincipalConstraint::IsIn(t, u) => Some(format!("principal is {t} in {u}")),
    };
    let action = match policy.action_constraint() {
        ActionConstraint::Any => None,
        ActionConstraint::Eq(u) => Some(entity("action", "==", &u)),
        ActionConstraint::In(us) => Some(format!(
            "action in [{}]",
            us.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    let resource = match policy.resource_constraint() {
        ResourceConstraint::Any => None,
        ResourceConstraint::In(u) => Some(entity("resource", "in", &u)),
        ResourceConstraint::Eq(u) => Some(entity("resource", "==", &u)),
        ResourceConstraint::Is(t) => Some(format!("resource is {t}")),
        ResourceConstraint::IsIn(t, u) => Some(format!("resource is {t} in {u}")),
    };
    let parts: Vec<String> = [principal, action, resource]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        "true".into()
    } else {
        parts.join(" && ")
    }
}

/// How Cedar decides a concrete request on `set`: allowed, and the determining policies
/// (for a counterexample: which forbids denied it), without the analysis' own pins.
pub fn concrete_decision(set: &PolicySet, env: &Env) -> (bool, Vec<PolicyId>) {
    let response = cedar_policy::Authorizer::new().is_authorized(&env.request, set, &env.entities);
    let allowed = response.decision() == cedar_policy::Decision::Allow;
    let ids = response
        .diagnostics()
        .reason()
        .filter(|id| !id.to_string().starts_with("arbiter-analysis-"))
        .cloned()
        .collect();
    (allowed, ids)
}
