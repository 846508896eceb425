//! Properties: upper bounds on what the policies may allow, written in Cedar beside them
//! (`DIR/properties/*.cedar`) and proved by `arbiter policies test`.
//!
//! A property is a `permit`. Its scope says which requests it is about; its conditions say
//! what every such request the live set allows must satisfy. "Health records only for HR
//! users, and with MFA for foreign employees" is
//! `permit (principal, action, resource == Endpoint::"/hr/employees/{id}/health") when { … }`:
//! the solver proves that the live set, restricted to the property's scope, implies it, or
//! finds a request the set allows and the property does not.

use std::path::Path;

use cedar_policy::{Effect, Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator};

use super::cases::Expectation;
use super::counterexample::Counterexample;
use super::prover::{pinned_route, restrict, route_slice, scope_condition, AnalysisError, Prover};
use crate::policy::{policy_texts, PolicySnapshot, PROPERTIES_DIR};

/// One property, as written.
#[derive(Debug, Clone)]
pub struct Property {
    /// Its `@id`, else `file:line`.
    pub id: String,
    /// `properties/<file>.cedar`.
    pub file: String,
    /// 1-based line it starts on.
    pub line: u32,
    /// The bound.
    pub policy: Policy,
}

/// Whether one property holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PropertyResult {
    /// Its `@id`, else `file:line`.
    pub id: String,
    /// `properties/<file>.cedar:<line>`.
    pub at: String,
    /// Proved for every request.
    pub holds: bool,
    /// When it fails: a request the policies allow and the property does not.
    pub counterexample: Option<Counterexample>,
}

/// The properties of a policy directory, parsed and validated against `schema`; none when
/// it has no `properties/` folder.
pub fn load(dir: &Path, schema: &Schema) -> Result<Vec<Property>, AnalysisError> {
    let folder = dir.join(PROPERTIES_DIR);
    let entries = match std::fs::read_dir(&folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(AnalysisError::Property(format!(
                "cannot read `{}`: {e}",
                folder.display()
            )))
        }
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    files.sort();
    let mut properties = Vec::new();
    for path in files {
        let file = format!(
            "{PROPERTIES_DIR}/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let text = std::fs::read_to_string(&path)
            .map_err(|e| AnalysisError::Property(format!("cannot read `{file}`: {e}")))?;
        crate::policy::bounds::check_cedar(&file, &text)
            .map_err(|e| AnalysisError::Property(e.to_string()))?;
        for (line, source) in policy_texts(&text) {
            let at = format!("{file}:{line}");
            let policy = Policy::parse(Some(PolicyId::new(&at)), source)
                .map_err(|e| AnalysisError::Property(format!("{at}: {e}")))?;
            if policy.effect() != Effect::Permit {
                return Err(AnalysisError::Property(format!(
                    "{at}: a property is a `permit`: it bounds what the policies may allow"
                )));
            }
            let id = policy
                .annotation("id")
                .map_or_else(|| at.clone(), str::to_owned);
            properties.push(Property {
                id,
                file: file.clone(),
                line,
                policy,
            });
        }
    }
    let mut set = PolicySet::new();
    for p in &properties {
        set.add(p.policy.clone())
            .map_err(|e| AnalysisError::Property(e.to_string()))?;
    }
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    if let Some(e) = result.validation_errors().next() {
        return Err(AnalysisError::Property(format!("{}: {e}", e.policy_id())));
    }
    Ok(properties)
}

/// Proves each property of the live set `snapshot`.
pub async fn prove(
    snapshot: &PolicySnapshot,
    properties: &[Property],
) -> Result<(Vec<PropertyResult>, usize), AnalysisError> {
    let mut prover = Prover::new(&snapshot.schema)?;
    let mut results = Vec::with_capacity(properties.len());
    for property in properties {
        let live = match pinned_route(&property.policy) {
            Some(template) => route_slice(snapshot, &template)?,
            None => snapshot.policies.clone(),
        };
        let live = restrict(
            &live,
            "arbiter-analysis-property",
            &scope_condition(&property.policy),
            &property.id,
        )?;
        let mut bound = PolicySet::new();
        bound
            .add(property.policy.clone())
            .map_err(|e| AnalysisError::Property(e.to_string()))?;
        let mut counterexample = None;
        for env in prover.all_envs().to_vec() {
            let (l, b) = (
                prover.compile_set(&live, &env)?,
                prover.compile_set(&bound, &env)?,
            );
            if let Some(example) = prover.allowed_only_by(&l, &b).await? {
                let name = format!("property {} forbids this", property.id);
                counterexample = Some(Counterexample::new(
                    &example,
                    snapshot,
                    true,
                    name,
                    Expectation::Deny,
                ));
                break;
            }
        }
        results.push(PropertyResult {
            id: property.id.clone(),
            at: format!("{}:{}", property.file, property.line),
            holds: counterexample.is_none(),
            counterexample,
        });
    }
    Ok((results, prover.queries))
}
