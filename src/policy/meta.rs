//! What the set knows of each policy beyond Cedar's own: where it is written and what its
//! annotations say. Read by the loader, the index and the outputs checks alike.

use cedar_policy::Effect;

use super::outputs::PolicyOutputs;
use super::scopes::ScopeExpr;

/// Where a policy is written and what its annotations say.
#[derive(Debug, Clone)]
pub struct PolicyMeta {
    /// File relative to the policy directory.
    pub file: String,
    /// 1-based line where the policy (with its annotations) starts.
    pub line: u32,
    /// The parsed `@scopes` annotation, if any.
    pub scopes: Option<ScopeExpr>,
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// The action ids the policy's action scope names; `None` when unconstrained.
    pub actions: Option<Vec<String>>,
    /// What its annotations ask a gateway to do when it determines a decision.
    pub outputs: Option<std::sync::Arc<PolicyOutputs>>,
}
