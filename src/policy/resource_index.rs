//! The policies that can apply to a named resource that is neither an endpoint nor a scope
//! (AuthZEN's resources, the workbench's `Console::"workbench"`), indexed by the resource's
//! entity type, so such a decision evaluates a slice rather than the whole set: at 10 000
//! route policies the whole set cost each workbench page about 50 ms of decisions.

use std::collections::HashMap;

use cedar_policy::{EntityTypeName, Policy, PolicySet, ResourceConstraint};

use super::{ENDPOINT_TYPE, SCOPE_TYPE};

/// Policy slices by resource entity type.
#[derive(Debug, Default)]
pub struct ResourceIndex {
    /// Policies that can apply to a resource of any type: unconstrained, or `in` an entity
    /// (hierarchies are not followed here, so every `in` is kept).
    global: PolicySet,
    /// Per type some policy names (`==`, `is`): its own policies plus the global ones.
    by_type: HashMap<EntityTypeName, PolicySet>,
}

impl ResourceIndex {
    /// Indexes a validated policy set. Endpoints and scopes have indexes of their own and are
    /// left out (their policies would copy most of a large set).
    pub(crate) fn build(policies: &PolicySet) -> Result<Self, String> {
        let mut global: Vec<&Policy> = Vec::new();
        let mut own: HashMap<EntityTypeName, Vec<&Policy>> = HashMap::new();
        let indexed_elsewhere =
            |ty: &EntityTypeName| ty.basename() == ENDPOINT_TYPE || ty.basename() == SCOPE_TYPE;
        for policy in policies.policies() {
            let ty = match policy.resource_constraint() {
                ResourceConstraint::Any | ResourceConstraint::In(_) => {
                    global.push(policy);
                    continue;
                }
                ResourceConstraint::Is(ty) | ResourceConstraint::IsIn(ty, _) => ty,
                ResourceConstraint::Eq(uid) => uid.type_name().clone(),
            };
            if !indexed_elsewhere(&ty) {
                own.entry(ty).or_default().push(policy);
            }
        }
        let (global, by_type) = super::scope_index::slices(global, own)?;
        Ok(Self { global, by_type })
    }

    /// The policies that can apply to a resource of entity type `ty`.
    pub fn policies_for(&self, ty: &EntityTypeName) -> &PolicySet {
        self.by_type.get(ty).unwrap_or(&self.global)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_gets_its_own_and_the_global_policies_only() {
        let set: PolicySet = r#"
            permit (principal, action, resource == Console::"workbench");
            permit (principal, action, resource is Todo);
            forbid (principal, action, resource) when { context.x == 1 };
            permit (principal, action, resource in Group::"g");
            permit (principal, action, resource == Endpoint::"/a");
        "#
        .parse()
        .unwrap();
        let index = ResourceIndex::build(&set).unwrap();
        let ty = |t: &str| t.parse::<EntityTypeName>().unwrap();
        assert_eq!(index.policies_for(&ty("Console")).policies().count(), 3);
        assert_eq!(index.policies_for(&ty("Todo")).policies().count(), 3);
        assert_eq!(index.policies_for(&ty("Other")).policies().count(), 2);
        assert!(!index.by_type.contains_key(&ty("Endpoint")));
    }
}
