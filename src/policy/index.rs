//! The route table and the per-endpoint policy slices, built once per load.
//!
//! Every request's resource is an `Endpoint`, so a policy can only apply to the endpoints its
//! resource scope admits: `resource == Endpoint::"/x"` to one, `resource in Api::"a"` to the
//! endpoints below `Api::"a"`, an unconstrained resource to all. Each endpoint keeps the policy
//! set of exactly those policies, so a decision evaluates a slice whose size does not grow with
//! unrelated policies, and gives the same answer as the whole set would.
//!
//! A reload builds the table again, but an endpoint whose policies and entities did not
//! change is shared with the previous table rather than built twice: after a policy author's
//! edit, the old and new snapshots hold one copy of the endpoints it did not touch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet, ResourceConstraint,
};

use super::error::PolicyError;
use super::load::{PolicyMeta, ENTITIES_FILE};

/// The entity type of every PDP resource.
pub const ENDPOINT_TYPE: &str = "Endpoint";

/// One route template with everything a decision on it needs.
#[derive(Debug)]
pub struct Endpoint {
    /// The route template, e.g. `/item/{id}`.
    pub template: String,
    /// `Endpoint::"<template>"`.
    pub uid: EntityUid,
    /// The endpoint entity followed by its ancestors (from `entities.json`).
    pub entities: Vec<Entity>,
    /// The policies that can apply to this endpoint.
    pub policies: PolicySet,
    /// Their ids, sorted, for explanations and scope hints.
    pub policy_ids: Vec<PolicyId>,
    /// The context attributes these policies can read; `None` for all.
    pub context_reads: super::ContextReads,
    /// Whether any of these policies has outputs (a decision on an endpoint without them
    /// fills none).
    pub has_outputs: bool,
}

/// Maps request paths to endpoints.
#[derive(Debug)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    endpoints: Vec<Arc<Endpoint>>,
}

/// A matched route: the endpoint and the path parameters.
pub struct RouteMatch<'s, 'p> {
    /// The endpoint the path matched.
    pub endpoint: &'s Endpoint,
    /// Path parameters by name, e.g. `id` → `42`.
    pub params: matchit::Params<'s, 'p>,
}

impl RouteTable {
    /// Finds the endpoint for a normalized path (exact and case-sensitive per segment).
    pub fn at<'s, 'p>(&'s self, path: &'p str) -> Option<RouteMatch<'s, 'p>> {
        let m = self.router.at(path).ok()?;
        let endpoint = self.endpoints.get(*m.value)?;
        Some(RouteMatch {
            endpoint,
            params: m.params,
        })
    }

    /// The endpoint of a route template, exactly as a policy names it (AuthZEN's `route`
    /// resources name templates, not paths).
    pub fn by_template(&self, template: &str) -> Option<&Endpoint> {
        self.shared(template).map(|e| &**e)
    }

    fn shared(&self, template: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints
            .binary_search_by(|e| e.template.as_str().cmp(template))
            .ok()
            .and_then(|i| self.endpoints.get(i))
    }

    /// Every endpoint, in template order.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Builds the routes and slices for a validated policy set, sharing with `previous` (the
    /// live table, on a reload) every endpoint that would come out the same.
    pub(crate) fn build(
        policies: &PolicySet,
        meta: &HashMap<PolicyId, PolicyMeta>,
        entities: &Entities,
        previous: Option<&RouteTable>,
    ) -> Result<Self, Vec<PolicyError>> {
        let mut errors = Vec::new();

        // 1. Every endpoint named by a policy or by entities.json, with where it was first seen.
        let mut templates: BTreeMap<String, String> = BTreeMap::new();
        for policy in policies.policies() {
            if let Some(uid) = resource_uid(policy) {
                if is_endpoint(&uid) {
                    let origin = meta
                        .get(policy.id())
                        .map_or_else(String::new, |m| format!("{}:{}", m.file, m.line));
                    templates
                        .entry(uid.id().unescaped().to_owned())
                        .or_insert(origin);
                }
            }
        }
        for entity in entities.iter() {
            if is_endpoint(&entity.uid()) {
                templates
                    .entry(entity.uid().id().unescaped().to_owned())
                    .or_insert_with(|| ENTITIES_FILE.to_owned());
            }
        }

        // 2. The router.
        let mut router = matchit::Router::new();
        let mut order = Vec::with_capacity(templates.len());
        for (template, origin) in &templates {
            if let Err(message) = check_template(template) {
                errors.push(located(origin, format!("endpoint `{template}`: {message}")));
                continue;
            }
            if let Err(e) = router.insert(template.clone(), order.len()) {
                errors.push(located(origin, format!("endpoint `{template}`: {e}")));
                continue;
            }
            order.push(template.clone());
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        // 3. Which endpoints each entity (an endpoint or one of its ancestors) covers.
        let mut covers: HashMap<EntityUid, Vec<usize>> = HashMap::new();
        let mut endpoint_entities = Vec::with_capacity(order.len());
        for (i, template) in order.iter().enumerate() {
            let uid = endpoint_uid(template);
            let mut list = vec![entities
                .get(&uid)
                .cloned()
                .unwrap_or_else(|| Entity::new_no_attrs(uid.clone(), HashSet::new()))];
            covers.entry(uid.clone()).or_default().push(i);
            if let Some(ancestors) = entities.ancestors(&uid) {
                for a in ancestors {
                    covers.entry(a.clone()).or_default().push(i);
                    list.push(
                        entities
                            .get(a)
                            .cloned()
                            .unwrap_or_else(|| Entity::new_no_attrs(a.clone(), HashSet::new())),
                    );
                }
            }
            endpoint_entities.push((uid, list));
        }

        // 4. Assign each policy to the endpoints it can apply to. A policy only for issuing
        // scopes never applies to an endpoint (its action never matches an HTTP method).
        let mut global: Vec<&Policy> = Vec::new();
        let mut own: Vec<Vec<&Policy>> = vec![Vec::new(); order.len()];
        for policy in policies.policies() {
            if only_issue_scope(policy) {
                continue;
            }
            match policy.resource_constraint() {
                ResourceConstraint::Any => global.push(policy),
                ResourceConstraint::Is(ty) => {
                    if ty.to_string() == ENDPOINT_TYPE {
                        global.push(policy);
                    }
                }
                ResourceConstraint::Eq(uid) => {
                    if is_endpoint(&uid) {
                        for &i in covers.get(&uid).into_iter().flatten() {
                            if endpoint_entities[i].0 == uid {
                                own[i].push(policy);
                            }
                        }
                    }
                }
                ResourceConstraint::In(uid) => {
                    for &i in covers.get(&uid).into_iter().flatten() {
                        own[i].push(policy);
                    }
                }
                ResourceConstraint::IsIn(ty, uid) => {
                    if ty.to_string() == ENDPOINT_TYPE {
                        for &i in covers.get(&uid).into_iter().flatten() {
                            own[i].push(policy);
                        }
                    }
                }
            }
        }

        // 5. One policy set per endpoint (the previous table's, when it holds the same), with
        // what its policies read of the context (read once per policy, when first needed).
        let mut reads: HashMap<PolicyId, super::ContextReads> = HashMap::new();
        let mut endpoints = Vec::with_capacity(order.len());
        let mut conflicts: Vec<PolicyError> = Vec::new();
        for ((template, (uid, list)), mine) in order.into_iter().zip(endpoint_entities).zip(own) {
            let mut slice: Vec<&Policy> = global.iter().copied().chain(mine).collect();
            slice.sort_by(|a, b| a.id().cmp(b.id()));
            slice.dedup_by(|a, b| a.id() == b.id());
            if let Some(same) = previous
                .and_then(|p| p.shared(&template))
                .filter(|old| old.uid == uid && old.entities == list && old.holds(&slice))
            {
                endpoints.push(Arc::clone(same));
                continue;
            }
            conflicts.extend(super::outputs::conflicts(&slice, meta));
            let with_outputs: Vec<_> = slice
                .iter()
                .filter_map(|p| meta.get(p.id())?.outputs.as_deref())
                .collect();
            let has_outputs = !with_outputs.is_empty();
            let policy_ids = slice.iter().map(|p| p.id().clone()).collect();
            let mut context_reads = Some(std::collections::HashSet::new());
            for p in &slice {
                let these = reads
                    .entry(p.id().clone())
                    .or_insert_with(|| super::context_reads(&p.to_string()));
                match (&mut context_reads, these) {
                    (Some(all), Some(these)) => all.extend(these.iter().cloned()),
                    _ => context_reads = None,
                }
            }
            let set = PolicySet::from_policies(slice.into_iter().cloned()).map_err(|e| {
                vec![PolicyError::file(
                    "<index>",
                    format!("cannot build the slice of `{template}`: {e}"),
                )]
            })?;
            endpoints.push(Arc::new(Endpoint {
                template,
                uid,
                entities: list,
                policies: set,
                policy_ids,
                context_reads,
                has_outputs,
            }));
        }
        if !conflicts.is_empty() {
            // Policies that apply to many endpoints conflict on each: say it once.
            let mut seen = HashSet::new();
            conflicts.retain(|e| seen.insert(e.to_string()));
            return Err(conflicts);
        }
        Ok(Self { router, endpoints })
    }
}

impl Endpoint {
    /// Whether this endpoint's set is exactly `slice` (sorted by id): the same ids, and each
    /// policy the same as Cedar compares them (its parsed form, not its layout).
    fn holds(&self, slice: &[&Policy]) -> bool {
        self.policy_ids.len() == slice.len()
            && self.policy_ids.iter().zip(slice).all(|(id, p)| {
                id == p.id() && self.policies.policy(id).is_some_and(|old| old == *p)
            })
    }
}

/// `Endpoint::"<template>"`.
pub fn endpoint_uid(template: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        ENDPOINT_TYPE
            .parse()
            .unwrap_or_else(|_| unreachable!("`Endpoint` is a valid type name")),
        cedar_policy::EntityId::new(template),
    )
}

fn is_endpoint(uid: &EntityUid) -> bool {
    uid.type_name().to_string() == ENDPOINT_TYPE
}

/// Whether a policy's action scope names nothing but `IssueScope`.
fn only_issue_scope(policy: &Policy) -> bool {
    let is_issue = |a: &EntityUid| a.id().unescaped() == "IssueScope";
    match policy.action_constraint() {
        ActionConstraint::Eq(a) => is_issue(&a),
        ActionConstraint::In(list) => !list.is_empty() && list.iter().all(is_issue),
        ActionConstraint::Any => false,
    }
}

/// The entity a policy's resource scope names, if any.
fn resource_uid(policy: &Policy) -> Option<EntityUid> {
    match policy.resource_constraint() {
        ResourceConstraint::Eq(uid) | ResourceConstraint::In(uid) => Some(uid),
        ResourceConstraint::IsIn(_, uid) => Some(uid),
        ResourceConstraint::Any | ResourceConstraint::Is(_) => None,
    }
}

fn located(origin: &str, message: String) -> PolicyError {
    match origin.rsplit_once(':') {
        Some((file, line)) if line.parse::<u32>().is_ok() => {
            PolicyError::at(file, line.parse().unwrap_or(1), message)
        }
        _ => PolicyError::file(
            if origin.is_empty() {
                "<policies>"
            } else {
                origin
            },
            message,
        ),
    }
}

/// Route templates are absolute paths whose parameters follow OpenAPI (`{id}`, `{*rest}`).
fn check_template(template: &str) -> Result<(), &'static str> {
    if !template.starts_with('/') {
        return Err("a route template must start with `/`");
    }
    if template.contains(['?', '#']) {
        return Err("a route template has no query or fragment");
    }
    if template.split('/').any(|s| s == "." || s == "..") {
        return Err("a route template has no dot-segments");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{bundled_copy, PolicySnapshot};

    fn shared(s: &PolicySnapshot, template: &str) -> Arc<super::Endpoint> {
        Arc::clone(s.routes.shared(template).unwrap())
    }

    #[test]
    fn a_reload_shares_only_the_endpoints_it_did_not_change() {
        let dir = bundled_copy();
        let before = PolicySnapshot::load_with(dir.path(), None, None).unwrap();
        let items = dir.path().join("items.cedar");
        let text = std::fs::read_to_string(&items).unwrap();
        // `item-read` now asks for `write`: `/item/{id}` changes, `/items` and HR do not.
        let edited = text
            .replace(
                "@scopes(\"read\")\npermit (\n  principal,\n  action == Action::\"GET\",",
                "@scopes(\"write\")\npermit (\n  principal,\n  action == Action::\"GET\",",
            )
            .replace(
                "when { context.scopes.contains(\"read\") };",
                "when { context.scopes.contains(\"write\") };",
            );
        assert_ne!(edited, text);
        std::fs::write(&items, edited).unwrap();
        let after = PolicySnapshot::load_with(dir.path(), None, Some(&before)).unwrap();

        for untouched in ["/items", "/hr/employees/{id}"] {
            assert!(
                Arc::ptr_eq(&shared(&before, untouched), &shared(&after, untouched)),
                "{untouched} is shared"
            );
        }
        let (old, new) = (shared(&before, "/item/{id}"), shared(&after, "/item/{id}"));
        assert!(!Arc::ptr_eq(&old, &new));
        let id = "item-read".parse().unwrap();
        assert_ne!(old.policies.policy(&id), new.policies.policy(&id));
        assert_eq!(
            new.policies.policy(&id),
            after.policies.policy(&id),
            "the new slice holds the new policy"
        );

        // A layout-only change (a comment, blank lines) changes no endpoint.
        let again = std::fs::read_to_string(&items).unwrap();
        std::fs::write(&items, format!("// a comment\n\n{again}")).unwrap();
        let relaid = PolicySnapshot::load_with(dir.path(), None, Some(&after)).unwrap();
        assert_ne!(relaid.version, after.version);
        for template in ["/items", "/item/{id}"] {
            assert!(Arc::ptr_eq(
                &shared(&after, template),
                &shared(&relaid, template)
            ));
        }
    }
}
