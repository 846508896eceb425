//! Scopes as decisions: may this client be issued this scope, in this context? The token
//! endpoint asks once per requested scope; the same policies, reload and audit as the PDP.
//! Mapping: principal `Client::"<id>"` (attributes from `entities.json` when it binds the
//! client to this issuer with `iss`, else from its registration), action `Action::"IssueScope"`, resource `Scope::"<name>"`, context typed
//! by the schema (`grant_type`, `ip`, `fraud_score`, `audience`, `time`, …).

use std::collections::HashSet;

use cedar_policy::{
    Context, Decision as CedarDecision, Entities, Entity, EntityUid, Request, RestrictedExpression,
};
use serde_json::{Map, Value};

use super::context::{entity_uid, record_fields, Mode};
use super::AUTHORIZER;
use crate::policy::{PolicySnapshot, SCOPE_TYPE};

/// The action id.
pub const ISSUE_SCOPE: &str = "IssueScope";

/// One scope's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeVerdict {
    /// Whether the scope may be issued.
    pub allowed: bool,
    /// The determining policies.
    pub policy_ids: Vec<String>,
    /// Evaluation errors (any error denies: fail closed).
    pub errors: Vec<String>,
}

/// Decides whether `issuer`'s client `client_id` (with registration `attributes` such as
/// `name`, `org`) may be issued `scope` in `context`.
pub fn decide_scope(
    snapshot: &PolicySnapshot,
    issuer: &str,
    client_id: &str,
    attributes: &Map<String, Value>,
    scope: &str,
    context: &Map<String, Value>,
) -> ScopeVerdict {
    match evaluate(snapshot, issuer, client_id, attributes, scope, context) {
        Ok(v) => v,
        Err(e) => ScopeVerdict {
            allowed: false,
            policy_ids: Vec::new(),
            errors: vec![e],
        },
    }
}

fn evaluate(
    snapshot: &PolicySnapshot,
    issuer: &str,
    client_id: &str,
    attributes: &Map<String, Value>,
    scope: &str,
    context: &Map<String, Value>,
) -> Result<ScopeVerdict, String> {
    let shape = snapshot
        .shapes
        .contexts
        .get(ISSUE_SCOPE)
        .ok_or("the schema has no `IssueScope` action")?;
    let principal = entity_uid("Client", client_id)?;
    let resource = entity_uid(SCOPE_TYPE, scope)?;
    let action = entity_uid("Action", ISSUE_SCOPE)?;
    let context = Context::from_pairs(record_fields(context, shape, Mode::Strict, "")?)
        .map_err(|e| e.to_string())?;
    let request = Request::new(principal.clone(), action, resource.clone(), context, None)
        .map_err(|e| e.to_string())?;

    // The client: from entities.json, else from its registration by the schema's shape.
    let mut list: Vec<Entity> = Vec::new();
    let add_known = |uid: &EntityUid, list: &mut Vec<Entity>| {
        if let Some(e) = snapshot.entities.get(uid) {
            list.push(e.clone());
            for a in snapshot.entities.ancestors(uid).into_iter().flatten() {
                if let Some(e) = snapshot.entities.get(a) {
                    if !list.iter().any(|x| x.uid() == *a) {
                        list.push(e.clone());
                    }
                }
            }
            true
        } else {
            false
        }
    };
    if !snapshot.entity_bound_to(&principal, issuer) || !add_known(&principal, &mut list) {
        let attrs: Vec<(String, RestrictedExpression)> =
            match snapshot.shapes.entities.get("Client") {
                Some(shape) => {
                    record_fields(attributes, shape, Mode::Lenient, "").unwrap_or_default()
                }
                None => Vec::new(),
            };
        list.push(
            Entity::new(principal, attrs.into_iter().collect(), HashSet::new())
                .map_err(|e| e.to_string())?,
        );
    }
    add_known(&resource, &mut list);
    let entities = Entities::from_entities(list, None).map_err(|e| e.to_string())?;

    let response =
        AUTHORIZER.is_authorized(&request, snapshot.scopes.policies_for(scope), &entities);
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(ToString::to_string)
        .collect();
    Ok(ScopeVerdict {
        allowed: response.decision() == CedarDecision::Allow && errors.is_empty(),
        policy_ids: response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect(),
        errors,
    })
}
