//! Questions auditors ask of the policies: which ones carry an annotation, read an
//! attribute, compare with a value, name an entity, apply to an action, an endpoint or a
//! scope. Facts come from Cedar's own JSON form of each policy (its EST), never from the
//! text, so a comment or a string that looks like an attribute never matches and
//! `principal["x"]` is the same attribute as `principal.x`. The facts are indexed once per
//! snapshot.

use std::collections::{BTreeSet, HashSet};

use cedar_policy::Policy;
use serde_json::Value;

use super::PolicySnapshot;

/// What one policy says, for queries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyFacts {
    /// Policy id.
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    /// File, relative to the policy directory.
    pub file: String,
    /// Line where it starts.
    pub line: u32,
    /// Annotations, key and value.
    pub annotations: Vec<(String, String)>,
    /// Attribute paths it reads, e.g. `principal.department`, `context.employee.nationality`.
    pub attributes: SortedSet<String>,
    /// Literals it compares with (strings, numbers, booleans, entity ids, IP ranges).
    pub literals: SortedSet<String>,
    /// Entities it names: `(type, id)`, id empty for a type alone (`is`, `principal is T`).
    pub entities: SortedSet<(String, String)>,
    /// Actions its scope admits; `None` for every action.
    pub actions: Option<Vec<String>>,
    /// Scopes it asks for: `@scopes` and `context.scopes.contains*` literals.
    pub scopes: SortedSet<String>,
    /// The policy in Cedar syntax.
    pub text: String,
}

/// A set frozen once its policy is indexed: sorted, in one boxed slice. (A `BTreeSet` keeps
/// a node of eleven slots for even one entry, and the index holds four sets per policy: at
/// 100 000 policies that was a tenth of the server's memory.)
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct SortedSet<T>(Box<[T]>);

impl<T: Ord> SortedSet<T> {
    /// Whether `item` is in the set.
    pub fn contains(&self, item: &T) -> bool {
        self.0.binary_search(item).is_ok()
    }

    /// The items, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Ord> From<BTreeSet<T>> for SortedSet<T> {
    fn from(set: BTreeSet<T>) -> Self {
        Self(set.into_iter().collect())
    }
}

impl<'a, T> IntoIterator for &'a SortedSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What [`facts_of`] gathers from a policy's JSON form before the sets are frozen.
#[derive(Default)]
struct Gathered {
    attributes: BTreeSet<String>,
    literals: BTreeSet<String>,
    entities: BTreeSet<(String, String)>,
    scopes: BTreeSet<String>,
}

/// Every policy's facts, in file order.
#[derive(Debug, Default)]
pub struct QueryIndex {
    facts: Vec<PolicyFacts>,
}

impl QueryIndex {
    /// Indexes a snapshot's policies.
    pub fn build(snapshot: &PolicySnapshot) -> Self {
        let mut facts: Vec<PolicyFacts> = snapshot
            .policies
            .policies()
            .map(|p| facts_of(snapshot, p))
            .collect();
        facts.sort_by(|a, b| (&a.file, a.line, &a.id).cmp(&(&b.file, b.line, &b.id)));
        Self { facts }
    }

    /// Every policy's facts.
    pub fn facts(&self) -> &[PolicyFacts] {
        &self.facts
    }
}

/// A query: every given filter must hold (AND); a filter kind given several times must
/// hold for each value.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `key` or `key=value`.
    pub annotations: Vec<String>,
    /// Attribute paths (`principal.nationality`) or path tails (`nationality`).
    pub attributes: Vec<String>,
    /// Literals.
    pub values: Vec<String>,
    /// `Type` or `Type::id` / `Type::"id"`.
    pub entities: Vec<String>,
    /// Action ids (`GET`, `IssueScope`).
    pub actions: Vec<String>,
    /// `METHOD /concrete/path`: policies that can apply to that request.
    pub endpoints: Vec<String>,
    /// Scope names.
    pub scopes: Vec<String>,
    /// `permit` or `forbid`.
    pub effect: Option<String>,
    /// File globs (`*` and `?`), relative to the policy directory.
    pub files: Vec<String>,
}

/// A policy that matched, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    /// The policy.
    #[serde(flatten)]
    pub facts: PolicyFacts,
    /// Which filter matched which part of the policy.
    pub why: Vec<String>,
}

/// Runs a query over a snapshot.
pub fn query(snapshot: &PolicySnapshot, q: &Query) -> Result<Vec<Hit>, String> {
    if let Some(e) = &q.effect {
        if e != "permit" && e != "forbid" {
            return Err(format!("effect is `permit` or `forbid`, not `{e}`"));
        }
    }
    let mut endpoint_sets: Vec<(String, HashSet<String>, String)> = Vec::new();
    for e in &q.endpoints {
        let (method, path) = e
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("an endpoint is `METHOD /path`, not `{e}`"))?;
        let method = method.trim().to_ascii_uppercase();
        let path = super::path::normalize(path.trim()).map_err(|err| format!("`{path}`: {err}"))?;
        let ids: HashSet<String> = match snapshot.routes.at(&path) {
            Some(route) => route
                .endpoint
                .policies
                .policies()
                .map(|p| p.id().to_string())
                .collect(),
            None => HashSet::new(),
        };
        endpoint_sets.push((method, ids, e.trim().to_owned()));
    }
    let index = snapshot.query_index();
    let mut hits = Vec::new();
    'policies: for f in index.facts() {
        let mut why = Vec::new();
        if let Some(e) = &q.effect {
            if f.effect != e {
                continue;
            }
            why.push(format!("effect {e}"));
        }
        for a in &q.annotations {
            let (key, value) = match a.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (a.trim(), None),
            };
            let key = key.trim_start_matches('@');
            let found = f
                .annotations
                .iter()
                .find(|(k, v)| k == key && value.is_none_or(|want| v == want));
            match found {
                Some((k, v)) => why.push(format!("annotation @{k}(\"{v}\")")),
                None => continue 'policies,
            }
        }
        for want in &q.attributes {
            match f
                .attributes
                .iter()
                .find(|have| attribute_matches(have, want))
            {
                Some(have) => why.push(format!("reads {have}")),
                None => continue 'policies,
            }
        }
        for want in &q.values {
            if !f.literals.contains(want) {
                continue 'policies;
            }
            why.push(format!("compares with {want:?}"));
        }
        for want in &q.entities {
            let (ty, id) = parse_entity(want);
            let found = f
                .entities
                .iter()
                .find(|(t, i)| *t == ty && id.as_ref().is_none_or(|id| i == id));
            match found {
                Some((t, i)) if i.is_empty() => why.push(format!("names type {t}")),
                Some((t, i)) => why.push(format!("names {t}::{i:?}")),
                None => continue 'policies,
            }
        }
        for want in &q.actions {
            if !admits(f, want) {
                continue 'policies;
            }
            why.push(match &f.actions {
                None => format!("applies to every action, so to {want}"),
                Some(_) => format!("action {want}"),
            });
        }
        for (method, ids, label) in &endpoint_sets {
            if !ids.contains(&f.id) || !admits(f, method) {
                continue 'policies;
            }
            why.push(format!("can apply to {label}"));
        }
        for want in &q.scopes {
            if !f.scopes.contains(want) {
                continue 'policies;
            }
            why.push(format!("scope {want}"));
        }
        for glob in &q.files {
            if !glob_matches(glob, &f.file) {
                continue 'policies;
            }
            why.push(format!("in {}", f.file));
        }
        hits.push(Hit {
            facts: f.clone(),
            why,
        });
    }
    Ok(hits)
}

fn admits(f: &PolicyFacts, action: &str) -> bool {
    f.actions
        .as_ref()
        .is_none_or(|list| list.iter().any(|a| a == action))
}

/// `have` (a full path) matches `want`: the same path, a longer path below it, or — when
/// `want` does not start at a variable — any place its segments appear in a row.
fn attribute_matches(have: &str, want: &str) -> bool {
    let want = want.trim();
    if have == want || have.starts_with(&format!("{want}.")) {
        return true;
    }
    let rooted = ["principal", "action", "resource", "context"]
        .iter()
        .any(|v| want == *v || want.starts_with(&format!("{v}.")));
    if rooted {
        return false;
    }
    let have: Vec<&str> = have.split('.').collect();
    let want: Vec<&str> = want.split('.').collect();
    have.windows(want.len()).any(|w| w == want.as_slice())
}

fn parse_entity(text: &str) -> (String, Option<String>) {
    match text.split_once("::") {
        Some((ty, id)) => {
            let id = id.trim();
            let id = serde_json::from_str::<String>(id).unwrap_or_else(|_| id.to_owned());
            (ty.trim().to_owned(), Some(id))
        }
        None => (text.trim().to_owned(), None),
    }
}

/// `*` any run of characters, `?` one character.
fn glob_matches(glob: &str, text: &str) -> bool {
    fn go(g: &[char], t: &[char]) -> bool {
        match (g.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&g[1..], t) || (!t.is_empty() && go(g, &t[1..])),
            (Some('?'), Some(_)) => go(&g[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&g[1..], &t[1..]),
            _ => false,
        }
    }
    let g: Vec<char> = glob.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&g, &t)
}

fn facts_of(snapshot: &PolicySnapshot, policy: &Policy) -> PolicyFacts {
    let meta = snapshot.meta.get(policy.id());
    let mut g = Gathered::default();
    if let Some(expr) = meta.and_then(|m| m.scopes.as_ref()) {
        g.scopes
            .extend(expr.scopes().into_iter().map(str::to_owned));
    }
    if let Ok(est) = policy.to_json() {
        for part in ["principal", "action", "resource"] {
            if let Some(c) = est.get(part) {
                scope_entities(c, &mut g);
            }
        }
        if let Some(Value::Array(conditions)) = est.get("conditions") {
            for c in conditions {
                if let Some(body) = c.get("body") {
                    walk(body, &mut g);
                }
            }
        }
    }
    PolicyFacts {
        id: policy.id().to_string(),
        effect: match policy.effect() {
            cedar_policy::Effect::Permit => "permit",
            cedar_policy::Effect::Forbid => "forbid",
        },
        file: meta.map(|m| m.file.clone()).unwrap_or_default(),
        line: meta.map_or(0, |m| m.line),
        annotations: policy
            .annotations()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        attributes: g.attributes.into(),
        literals: g.literals.into(),
        entities: g.entities.into(),
        actions: meta.and_then(|m| m.actions.clone()),
        scopes: g.scopes.into(),
        text: policy.to_string(),
    }
}

/// Entities of a scope constraint (`==`, `in`, `is … in …`).
fn scope_entities(c: &Value, facts: &mut Gathered) {
    if let Some(t) = c.get("entity_type").and_then(Value::as_str) {
        facts.entities.insert((t.to_owned(), String::new()));
    }
    for key in ["entity", "in"] {
        if let Some(v) = c.get(key) {
            entity_ref(v, facts);
        }
    }
    if let Some(Value::Array(list)) = c.get("entities") {
        for v in list {
            entity_ref(v, facts);
        }
    }
}

fn entity_ref(v: &Value, facts: &mut Gathered) {
    let v = v.get("entity").unwrap_or(v);
    let v = v.get("__entity").unwrap_or(v);
    if let (Some(t), Some(i)) = (
        v.get("type").and_then(Value::as_str),
        v.get("id").and_then(Value::as_str),
    ) {
        facts.entities.insert((t.to_owned(), i.to_owned()));
        facts.literals.insert(i.to_owned());
    }
}

/// The dotted path of an attribute access chain rooted at a variable, if it is one.
fn path_of(expr: &Value) -> Option<String> {
    if let Some(var) = expr.get("Var").and_then(Value::as_str) {
        return Some(var.to_owned());
    }
    let access = expr.get(".")?;
    let left = path_of(access.get("left")?)?;
    let attr = access.get("attr")?.as_str()?;
    Some(format!("{left}.{attr}"))
}

/// Collects attributes, literals, entities and scopes from an expression, whatever its
/// shape: known nodes are read, every other node is walked through.
fn walk(expr: &Value, facts: &mut Gathered) {
    match expr {
        Value::Array(items) => items.iter().for_each(|e| walk(e, facts)),
        Value::Object(map) => {
            for (key, inner) in map {
                match key.as_str() {
                    "." | "has" => {
                        if let (Some(left), Some(attr)) =
                            (inner.get("left"), inner.get("attr").and_then(Value::as_str))
                        {
                            if let Some(base) = path_of(left) {
                                facts.attributes.insert(format!("{base}.{attr}"));
                            }
                            walk(left, facts);
                        }
                    }
                    "Value" => literal(inner, facts),
                    "is" => {
                        if let Some(t) = inner.get("entity_type").and_then(Value::as_str) {
                            facts.entities.insert((t.to_owned(), String::new()));
                        }
                        walk(inner, facts);
                    }
                    "contains" | "containsAll" | "containsAny" => {
                        let on_scopes = inner
                            .get("left")
                            .and_then(path_of)
                            .is_some_and(|p| p == "context.scopes");
                        if on_scopes {
                            if let Some(right) = inner.get("right") {
                                let mut names = BTreeSet::new();
                                string_literals(right, &mut names);
                                facts.scopes.extend(names);
                            }
                        }
                        walk(inner, facts);
                    }
                    _ => walk(inner, facts),
                }
            }
        }
        _ => {}
    }
}

fn literal(v: &Value, facts: &mut Gathered) {
    match v {
        Value::String(s) => {
            facts.literals.insert(s.clone());
        }
        Value::Number(n) => {
            facts.literals.insert(n.to_string());
        }
        Value::Bool(b) => {
            facts.literals.insert(b.to_string());
        }
        Value::Array(items) => items.iter().for_each(|i| literal(i, facts)),
        Value::Object(map) if map.contains_key("__entity") => entity_ref(v, facts),
        Value::Object(map) => map.values().for_each(|i| literal(i, facts)),
        Value::Null => {}
    }
}

fn string_literals(expr: &Value, out: &mut BTreeSet<String>) {
    match expr {
        Value::Object(map) => {
            if let Some(Value::String(s)) = map.get("Value") {
                out.insert(s.clone());
            }
            for v in map.values() {
                string_literals(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|e| string_literals(e, out)),
        _ => {}
    }
}
