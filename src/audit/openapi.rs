//! OpenAPI import: one Cedar policy per operation, whose condition follows OpenAPI's
//! security semantics exactly — the alternatives of a `security` list are OR-ed, the schemes
//! of one requirement AND-ed, the scopes of a scheme AND-ed; operation-level `security`
//! overrides the document's; an empty requirement `{}` allows anonymous access and
//! `security: []` means no security. Non-OAuth schemes (which Arbiter cannot check) and
//! unknown schemes are reported, never dropped silently. And the reverse: where a policy
//! directory and the design disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

use crate::policy::scopes::ScopeExpr;
use crate::policy::PolicySnapshot;

/// HTTP methods OpenAPI operations use, in output order.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// Methods that are actions of Arbiter's schema.
const ACTIONS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Why a document cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// Not YAML/JSON, or not an OpenAPI 3.0/3.1 document.
    #[error("{0}")]
    Invalid(String),
}

/// One operation of the document, as its policy will say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Upper-case method.
    pub method: String,
    /// Path template, e.g. `/pets/{petId}`.
    pub path: String,
    /// `operationId`, or `METHOD /path`.
    pub name: String,
    /// The scope alternatives (OR of ANDs); `None` when anonymous access is allowed.
    pub scopes: Option<Vec<BTreeSet<String>>>,
}

/// The result of an import: the policy text and what was reported.
#[derive(Debug, Clone)]
pub struct Import {
    /// Cedar policies, one per operation, stable for the same input.
    pub policies: String,
    /// The operations, in output order.
    pub operations: Vec<Operation>,
    /// Warnings: non-OAuth schemes, unsupported methods, operations left out.
    pub warnings: Vec<String>,
}

/// Parses a document (YAML or JSON) and reads its operations and their security.
pub fn operations(text: &str) -> Result<(Vec<Operation>, Vec<String>), OpenApiError> {
    let doc: Value = yaml_serde::from_str(text)
        .map_err(|e| OpenApiError::Invalid(format!("not YAML or JSON: {e}")))?;
    let version = doc
        .get("openapi")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !(version.starts_with("3.0") || version.starts_with("3.1")) {
        return Err(OpenApiError::Invalid(format!(
            "only OpenAPI 3.0 and 3.1 documents are supported (found `openapi: {version}`)"
        )));
    }
    let schemes = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| OpenApiError::Invalid("the document has no `paths`".into()))?;
    let global = doc.get("security");
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut ops = Vec::new();
    let mut sorted_paths: Vec<(&String, &Value)> = paths.iter().collect();
    sorted_paths.sort_by(|a, b| a.0.cmp(b.0));
    for (path, item) in sorted_paths {
        if !path.starts_with('/') {
            errors.push(format!("path `{path}` does not start with `/`"));
            continue;
        }
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let upper = method.to_ascii_uppercase();
            let name = op
                .get("operationId")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{upper} {path}"), str::to_owned);
            if !ACTIONS.contains(&upper.as_str()) {
                warnings.push(format!(
                    "{name}: method {upper} is not an action of Arbiter's schema; no policy written"
                ));
                continue;
            }
            let security = op.get("security").or(global);
            match requirement_scopes(security, &schemes, &name, &mut warnings) {
                Ok(Some(scopes)) if scopes.is_empty() => warnings.push(format!(
                    "{name}: no alternative of its security can be checked by Arbiter; no policy written (the operation is denied)"
                )),
                Ok(scopes) => ops.push(Operation {
                    method: upper,
                    path: path.clone(),
                    name,
                    scopes,
                }),
                Err(e) => errors.push(e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(OpenApiError::Invalid(errors.join("\n")));
    }
    Ok((ops, warnings))
}

/// The scope alternatives of a `security` value; `None` for anonymous access (absent,
/// `[]`, or a `{}` alternative).
fn requirement_scopes(
    security: Option<&Value>,
    schemes: &serde_json::Map<String, Value>,
    op: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Vec<BTreeSet<String>>>, String> {
    let Some(list) = security else {
        return Ok(None);
    };
    let list = list
        .as_array()
        .ok_or_else(|| format!("{op}: `security` must be a list"))?;
    if list.is_empty() {
        return Ok(None);
    }
    let mut alternatives: Vec<BTreeSet<String>> = Vec::new();
    for (i, requirement) in list.iter().enumerate() {
        let requirement = requirement
            .as_object()
            .ok_or_else(|| format!("{op}: security requirement {i} must be an object"))?;
        if requirement.is_empty() {
            return Ok(None);
        }
        let mut all = BTreeSet::new();
        let mut checkable = true;
        for (scheme, scopes) in requirement {
            let Some(definition) = schemes.get(scheme) else {
                return Err(format!(
                    "{op}: security scheme `{scheme}` is not defined in components.securitySchemes"
                ));
            };
            let kind = definition
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if kind != "oauth2" && kind != "openIdConnect" {
                warnings.push(format!(
                    "{op}: alternative {i} needs the `{scheme}` scheme ({kind}), which Arbiter cannot check; that alternative is left out"
                ));
                checkable = false;
                continue;
            }
            let scopes = scopes
                .as_array()
                .ok_or_else(|| format!("{op}: scopes of `{scheme}` must be a list"))?;
            for s in scopes {
                let s = s
                    .as_str()
                    .ok_or_else(|| format!("{op}: a scope of `{scheme}` is not a string"))?;
                if s.is_empty() || s.contains(['"', '\\', ' ']) {
                    return Err(format!("{op}: `{s}` is not a valid scope"));
                }
                all.insert(s.to_owned());
            }
        }
        if checkable && !alternatives.contains(&all) {
            alternatives.push(all);
        }
    }
    Ok(Some(alternatives))
}

/// Imports a document as Cedar policies for `api`.
pub fn import(text: &str, api: &str) -> Result<Import, OpenApiError> {
    if api.is_empty()
        || !api
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(OpenApiError::Invalid(format!(
            "the API name `{api}` must be letters, digits, `-` or `_`"
        )));
    }
    let (operations, warnings) = operations(text)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Generated by `arbiter openapi import` for API `{api}`: one policy per operation.\n// Re-importing the same document gives the same file; edit the document, not this file."
    );
    let mut ids = BTreeSet::new();
    for op in &operations {
        let mut id = format!("{api}.{}", slug(&op.name));
        let mut n = 2;
        while !ids.insert(id.clone()) {
            id = format!("{api}.{}-{n}", slug(&op.name));
            n += 1;
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "@id({})", quote(&id));
        let _ = writeln!(out, "@api({})", quote(api));
        let _ = writeln!(out, "@operation({})", quote(&op.name));
        match &op.scopes {
            None => {
                let _ = writeln!(
                    out,
                    "permit (principal, action == Action::{}, resource == Endpoint::{});",
                    quote(&op.method),
                    quote(&op.path)
                );
            }
            Some(alternatives) => {
                if !alternatives.iter().any(BTreeSet::is_empty) {
                    let _ = writeln!(out, "@scopes({})", quote(&scope_annotation(alternatives)));
                }
                let _ = writeln!(
                    out,
                    "permit (principal, action == Action::{}, resource == Endpoint::{})\nwhen {{ {} }};",
                    quote(&op.method),
                    quote(&op.path),
                    condition(alternatives)
                );
            }
        }
    }
    Ok(Import {
        policies: out,
        operations,
        warnings,
    })
}

/// The `@scopes` text of alternatives: `a && b || c`, or `authenticated` for a token with
/// no particular scope.
fn scope_annotation(alternatives: &[BTreeSet<String>]) -> String {
    alternatives
        .iter()
        .map(|a| {
            let parts: Vec<&str> = a.iter().map(String::as_str).collect();
            match parts.len() {
                0 => String::new(),
                1 => parts[0].to_owned(),
                _ if alternatives.len() == 1 => parts.join(" && "),
                _ => format!("({})", parts.join(" && ")),
            }
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" || ")
}

fn condition(alternatives: &[BTreeSet<String>]) -> String {
    let one = |a: &BTreeSet<String>| -> String {
        match a.len() {
            0 => "!(principal is Anonymous)".to_owned(),
            1 => format!(
                "context.scopes.contains({})",
                quote(a.iter().next().map_or("", String::as_str))
            ),
            _ => format!(
                "context.scopes.containsAll([{}])",
                a.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
            ),
        }
    };
    match alternatives {
        [only] => one(only),
        many => many
            .iter()
            .map(|a| format!("({})", one(a)))
            .collect::<Vec<_>>()
            .join(" || "),
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// Where a policy set and a design disagree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// `missing_policy`, `not_in_design` or `scopes_differ`.
    pub kind: &'static str,
    /// `METHOD /path`.
    pub operation: String,
    /// Details.
    pub detail: String,
}

/// Compares the design with the policies of `api` (those annotated `@api("<api>")`) and,
/// for operations, with any permit on the same method and route.
pub fn diff(
    text: &str,
    api: &str,
    snapshot: &PolicySnapshot,
) -> Result<Vec<Difference>, OpenApiError> {
    let (operations, _) = operations(text)?;
    let index = snapshot.query_index();
    // (method, path) → policies with their @scopes, among permits naming one endpoint.
    let mut policies: BTreeMap<(String, String), Vec<RoutePolicy>> = BTreeMap::new();
    for f in index.facts() {
        if f.effect != "permit" {
            continue;
        }
        let endpoints: Vec<&str> = f
            .entities
            .iter()
            .filter(|(t, id)| t == "Endpoint" && !id.is_empty())
            .map(|(_, id)| id.as_str())
            .collect();
        let [endpoint] = endpoints.as_slice() else {
            continue;
        };
        let Some(actions) = &f.actions else { continue };
        let scopes = f
            .annotations
            .iter()
            .find(|(k, _)| k == "scopes")
            .map(|(_, v)| v.clone());
        let ours = f.annotations.iter().any(|(k, v)| k == "api" && v == api);
        for a in actions {
            policies
                .entry((a.clone(), (*endpoint).to_owned()))
                .or_default()
                .push((f.id.clone(), scopes.clone(), ours));
        }
    }
    let mut out = Vec::new();
    let mut designed = BTreeSet::new();
    for op in &operations {
        let key = (op.method.clone(), op.path.clone());
        designed.insert(key.clone());
        let label = format!("{} {}", op.method, op.path);
        match policies.get(&key) {
            None => out.push(Difference {
                kind: "missing_policy",
                operation: label,
                detail: format!("operation `{}` has no permit policy", op.name),
            }),
            Some(found) => {
                // An alternative with no scope means any token: no @scopes to compare.
                let want = op
                    .scopes
                    .as_ref()
                    .filter(|a| !a.iter().any(BTreeSet::is_empty))
                    .map(|a| normalize(a));
                let matches = found.iter().any(|(_, scopes, _)| {
                    let have = scopes
                        .as_deref()
                        .and_then(|s| ScopeExpr::parse(s).ok())
                        .map(|e| normalize(e.alternatives()));
                    have == want
                });
                if !matches {
                    out.push(Difference {
                        kind: "scopes_differ",
                        operation: label,
                        detail: format!(
                            "the design asks for {}; the policies ({}) ask for {}",
                            want.as_ref()
                                .map_or("no scopes (anonymous)".to_owned(), describe),
                            found
                                .iter()
                                .map(|(id, _, _)| id.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            found
                                .iter()
                                .map(|(_, s, _)| s.clone().unwrap_or_else(|| "no @scopes".into()))
                                .collect::<Vec<_>>()
                                .join(" / ")
                        ),
                    });
                }
            }
        }
    }
    for ((method, path), found) in &policies {
        if designed.contains(&(method.clone(), path.clone())) {
            continue;
        }
        for (id, _, ours) in found {
            if *ours {
                out.push(Difference {
                    kind: "not_in_design",
                    operation: format!("{method} {path}"),
                    detail: format!("policy `{id}` is for an operation the design does not have"),
                });
            }
        }
    }
    Ok(out)
}

/// A permit on one route: its id, its `@scopes`, and whether it is annotated `@api(<api>)`.
type RoutePolicy = (String, Option<String>, bool);

fn normalize(alternatives: &[BTreeSet<String>]) -> BTreeSet<BTreeSet<String>> {
    alternatives.iter().cloned().collect()
}

fn describe(alternatives: &BTreeSet<BTreeSet<String>>) -> String {
    alternatives
        .iter()
        .map(|a| a.iter().cloned().collect::<Vec<_>>().join(" && "))
        .collect::<Vec<_>>()
        .join(" || ")
}

/// Adds the operations' endpoints to an `entities.json` document, each under
/// `Api::"<api>"` (created if needed); existing entities are kept as they are.
pub fn merge_entities(
    current: Value,
    api: &str,
    operations: &[Operation],
) -> Result<Value, String> {
    let Value::Array(mut list) = current else {
        return Err("entities.json must be a JSON array".into());
    };
    let has = |list: &[Value], ty: &str, id: &str| {
        list.iter().any(|e| {
            e.pointer("/uid/type").and_then(Value::as_str) == Some(ty)
                && e.pointer("/uid/id").and_then(Value::as_str) == Some(id)
        })
    };
    if !has(&list, "Api", api) {
        list.push(
            serde_json::json!({ "uid": { "type": "Api", "id": api }, "attrs": {}, "parents": [] }),
        );
    }
    let paths: BTreeSet<&str> = operations.iter().map(|o| o.path.as_str()).collect();
    for path in paths {
        if !has(&list, "Endpoint", path) {
            list.push(serde_json::json!({
                "uid": { "type": "Endpoint", "id": path },
                "attrs": {},
                "parents": [ { "type": "Api", "id": api } ],
            }));
        }
    }
    Ok(Value::Array(list))
}
