//! The entities one request is evaluated against: the snapshot's static store when nothing
//! else is needed, otherwise a store of its own — a token's principal bound to its issuer
//! (what `entities.json` says of it only when its `iss` names that issuer, else the token's
//! own claims), and the attributes a caller asserts (AuthZEN `properties`).

use std::collections::HashSet;

use cedar_policy::{Entities, Entity, EntityUid, RestrictedExpression};
use serde_json::{Map, Value};

use super::context::{record_fields_except, Mode};
use super::{Caller, EntityRef, EntitySet, Reason, Subject, Target, Verdict, USER};
use crate::policy::{PolicySnapshot, ISSUER_ATTRIBUTE};

/// The entities a request is evaluated against. A token's principal and client get what
/// `entities.json` says of them only when it binds them to the token's issuer (`iss`
/// attribute); otherwise the principal's attributes come from its own token's claims, and
/// the static entity of the same id stays out of the request. Attributes a caller asserts
/// (AuthZEN `properties`) apply over the static ones.
pub(super) fn entities_for<'s>(
    snapshot: &'s PolicySnapshot,
    target: Target<'_>,
    caller: Caller<'_>,
    principal: &EntityUid,
    client: Option<&EntityUid>,
) -> Result<EntitySet<'s>, Box<Verdict>> {
    let asserted: Vec<&EntityRef> = match caller {
        Caller::Subject(Subject::Asserted(s)) if !s.properties.is_empty() => Some(s),
        _ => None,
    }
    .into_iter()
    .chain(target.asserted())
    .collect();
    // A token's principal and an authenticated client belong to an issuer; their own
    // attributes are the token's claims or the client's registration.
    let (issuer, own) = match caller {
        Caller::Token(token) => (token.issuer.as_str(), &token.claims),
        Caller::Subject(Subject::Client { issuer, client }) => (issuer, &client.properties),
        Caller::Anonymous | Caller::Subject(Subject::Asserted(_)) => {
            if asserted.is_empty() {
                return Ok(EntitySet::Static(&snapshot.entities));
            }
            return with_asserted(snapshot.entities.clone(), snapshot, &asserted)
                .map(EntitySet::Built);
        }
    };
    // (in entities.json, bound to this issuer); a client acting for itself is its principal.
    let known = |u: &EntityUid| {
        let present = snapshot.entities.get(u).is_some();
        (present, present && snapshot.entity_bound_to(u, issuer))
    };
    let (principal_present, principal_bound) = known(principal);
    let (client_present, client_bound) = match client {
        Some(c) if c == principal => (principal_present, principal_bound),
        Some(c) => known(c),
        None => (false, false),
    };
    let claim_attrs = if principal_bound {
        Vec::new()
    } else {
        claim_attributes(snapshot, principal, own)
    };
    let principal_foreign = principal_present && !principal_bound;
    let client_foreign = client.filter(|_| client_present && !client_bound);
    if claim_attrs.is_empty() && !principal_foreign && client_foreign.is_none() {
        if asserted.is_empty() {
            return Ok(EntitySet::Static(&snapshot.entities));
        }
        return with_asserted(snapshot.entities.clone(), snapshot, &asserted).map(EntitySet::Built);
    }
    let principal_entity = if principal_bound {
        None
    } else {
        Some(
            Entity::new(
                principal.clone(),
                claim_attrs.into_iter().collect(),
                HashSet::new(),
            )
            .map_err(|e| {
                Box::new(Verdict::deny(
                    Reason::InvalidToken,
                    format!("token claims: {e}"),
                ))
            })?,
        )
    };
    let failed = |e: cedar_policy::entities_errors::EntitiesError| {
        Box::new(Verdict::deny(Reason::Error, e.to_string()))
    };
    if !asserted.is_empty() {
        // Rare (AuthZEN with a bearer token and resource attributes): the whole static
        // store without what belongs to other issuers, plus the token's principal.
        let foreign = principal_foreign
            .then(|| principal.clone())
            .into_iter()
            .chain(client_foreign.cloned());
        let base = snapshot
            .entities
            .clone()
            .remove_entities(foreign)
            .map_err(failed)?
            .upsert_entities(principal_entity, None)
            .map_err(failed)?;
        return with_asserted(base, snapshot, &asserted).map(EntitySet::Built);
    }
    // A store of its own: the resource and its ancestors, the principal, and the client.
    let mut list: Vec<Entity> = match target {
        Target::Endpoint(endpoint, _) => endpoint.entities.clone(),
        Target::Entity(r) => {
            let mut list = Vec::new();
            add_known(snapshot, &mut list, &r.uid);
            list
        }
    };
    match principal_entity {
        None => add_known(snapshot, &mut list, principal),
        Some(entity) => {
            list.retain(|e| e.uid() != *principal);
            list.push(entity);
        }
    }
    if let (Some(client), true) = (client, client_bound) {
        add_known(snapshot, &mut list, client);
    }
    Entities::from_entities(list, None)
        .map(EntitySet::Built)
        .map_err(failed)
}

/// The static entities with the attributes callers asserted applied over them (parents
/// kept), validated against the schema.
fn with_asserted(
    base: Entities,
    snapshot: &PolicySnapshot,
    asserted: &[&EntityRef],
) -> Result<Entities, Box<Verdict>> {
    let invalid = |m: String| Box::new(Verdict::deny(Reason::InvalidRequest, m));
    let mut extra = Vec::with_capacity(asserted.len());
    for r in asserted {
        let (mut attrs, parents) = match snapshot.entities.get(&r.uid) {
            Some(existing) => {
                let v = existing
                    .to_json_value()
                    .map_err(|e| Box::new(Verdict::deny(Reason::Error, e.to_string())))?;
                (
                    v.get("attrs")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                    v.get("parents")
                        .cloned()
                        .unwrap_or_else(|| Value::Array(Vec::new())),
                )
            }
            None => (Map::new(), Value::Array(Vec::new())),
        };
        attrs.extend(r.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        let json = serde_json::json!({
            "uid": { "type": r.uid.type_name().to_string(), "id": r.uid.id().unescaped() },
            "attrs": attrs,
            "parents": parents,
        });
        extra.push(
            Entity::from_json_value(json, Some(&snapshot.schema))
                .map_err(|e| invalid(format!("{}: {e}", r.uid)))?,
        );
    }
    base.upsert_entities(extra, Some(&snapshot.schema))
        .map_err(|e| invalid(e.to_string()))
}

/// Attributes of a principal that `entities.json` does not describe for its issuer, from
/// its own same-named values (a token's claims, a client's registration) the schema
/// declares for its type.
fn claim_attributes(
    snapshot: &PolicySnapshot,
    principal: &EntityUid,
    own: &Map<String, Value>,
) -> Vec<(String, RestrictedExpression)> {
    let type_name = if principal.type_name() == &*USER {
        "User"
    } else {
        "Client"
    };
    let Some(shape) = snapshot.shapes.entities.get(type_name) else {
        return Vec::new();
    };
    // `iss` is the binding of entities.json entities, not something a token asserts about
    // its own principal (policies read the issuer as `context.token.iss`). Leaving it out
    // also keeps the common case — no other declared claim present — on the static store,
    // with no entity store built per decision.
    // Claims that do not fit a required attribute leave the principal without attributes.
    record_fields_except(own, shape, Mode::Lenient, "", Some(ISSUER_ATTRIBUTE)).unwrap_or_default()
}

/// Adds an entity of `entities.json` and its ancestors, skipping any already present.
fn add_known(snapshot: &PolicySnapshot, out: &mut Vec<Entity>, uid: &EntityUid) {
    let mut push = |u: &EntityUid| {
        if !out.iter().any(|e| e.uid() == *u) {
            if let Some(e) = snapshot.entities.get(u) {
                out.push(e.clone());
            }
        }
    };
    push(uid);
    if let Some(ancestors) = snapshot.entities.ancestors(uid) {
        for a in ancestors {
            push(a);
        }
    }
}
