//! The policies that can apply when the token endpoint asks whether a scope may be issued
//! (`Action::"IssueScope"` on `Scope::"<name>"`), indexed by scope like endpoints are by route.

use std::collections::HashMap;

use cedar_policy::{Policy, PolicySet, ResourceConstraint};

/// The entity type of the resources of `IssueScope`.
pub const SCOPE_TYPE: &str = "Scope";

/// Policy slices by scope name.
#[derive(Debug, Default)]
pub struct ScopeIndex {
    /// Policies that can apply to any scope (unconstrained, `is Scope`, `in …`).
    global: PolicySet,
    /// Per named scope: its own policies plus the global ones.
    by_scope: HashMap<String, PolicySet>,
}

impl ScopeIndex {
    /// Indexes a validated policy set.
    pub(crate) fn build(policies: &PolicySet) -> Result<Self, String> {
        let mut global: Vec<&Policy> = Vec::new();
        let mut own: HashMap<String, Vec<&Policy>> = HashMap::new();
        for policy in policies.policies() {
            match policy.resource_constraint() {
                ResourceConstraint::Any => global.push(policy),
                ResourceConstraint::Is(ty) | ResourceConstraint::IsIn(ty, _) => {
                    if ty.to_string() == SCOPE_TYPE {
                        global.push(policy);
                    }
                }
                // Scope hierarchies are rare: an `in` is evaluated for every scope.
                ResourceConstraint::In(_) => global.push(policy),
                ResourceConstraint::Eq(uid) => {
                    if uid.type_name().to_string() == SCOPE_TYPE {
                        own.entry(uid.id().unescaped().to_owned())
                            .or_default()
                            .push(policy);
                    }
                }
            }
        }
        let (global, by_scope) = slices(global, own)?;
        Ok(Self { global, by_scope })
    }

    /// The policies that can apply to issuing `scope`.
    pub fn policies_for(&self, scope: &str) -> &PolicySet {
        self.by_scope.get(scope).unwrap_or(&self.global)
    }
}

/// The slices of an index: the policies that apply to every key (`global`), and per key its
/// own policies with the global ones. Shared by the scope and resource indexes.
pub(super) fn slices<'p, K: std::hash::Hash + Eq>(
    global: Vec<&'p Policy>,
    own: HashMap<K, Vec<&'p Policy>>,
) -> Result<(PolicySet, HashMap<K, PolicySet>), String> {
    let set = |list: Vec<&Policy>| {
        PolicySet::from_policies(list.into_iter().cloned()).map_err(|e| e.to_string())
    };
    let mut by_key = HashMap::with_capacity(own.len());
    for (key, mine) in own {
        by_key.insert(key, set(global.iter().copied().chain(mine).collect())?);
    }
    Ok((set(global)?, by_key))
}
