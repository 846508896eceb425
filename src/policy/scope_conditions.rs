//! Scope requirements read from a permit's own conditions: which scopes a token must hold
//! for the permit to apply, in disjunctive normal form, from `context.scopes.contains(…)`,
//! `containsAll([…])` and `containsAny([…])` combined by `&&` and `||`. A policy in plain
//! Cedar then gets `INSUFFICIENT_SCOPE` and `required_scopes` like an annotated one, and an
//! `@scopes` annotation is checked against what its conditions say.

use std::collections::BTreeSet;

use serde_json::Value;

/// More alternatives than this and the requirement is not derived (a hostile policy cannot
/// make a load blow up).
const MAX_ALTERNATIVES: usize = 64;

/// Alternatives of scope sets: a token holding every scope of any one satisfies it. `[{}]`
/// is no requirement.
type Dnf = Vec<BTreeSet<String>>;

/// What a policy's conditions require of `context.scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopeConditions {
    /// Necessary for the policy to apply: a token satisfying none of them cannot meet its
    /// conditions. Empty when the conditions require no scope.
    pub alternatives: Vec<BTreeSet<String>>,
    /// Whether that is all the conditions say about scopes (every mention of
    /// `context.scopes` was read).
    pub exact: bool,
    /// Whether the conditions name `context.scopes` at all.
    pub mentions: bool,
}

impl ScopeConditions {
    /// Conditions that require no scope (they never name `context.scopes`).
    pub(crate) fn none() -> Self {
        Self {
            alternatives: Vec::new(),
            exact: true,
            mentions: false,
        }
    }

    /// Why an annotation cannot be right about these conditions, if it cannot: the
    /// conditions never name scopes (so a permit needs none), or a token holding every
    /// scope of some alternative of the annotation still lacks what the conditions
    /// require. Sound: a right annotation (exactly what the permit needs) is never refused;
    /// one that asks for more than needed may pass where the conditions hide it.
    pub(crate) fn refutes(&self, annotated: &[BTreeSet<String>]) -> Option<String> {
        if !self.mentions {
            return Some("require no scope".into());
        }
        let enough = |alt: &BTreeSet<String>| {
            self.alternatives.is_empty() || self.alternatives.iter().any(|n| n.is_subset(alt))
        };
        if annotated.iter().all(enough) {
            return None;
        }
        Some(format!(
            "require `{}`",
            super::scopes::ScopeExpr::from_alternatives(self.alternatives.clone())
        ))
    }

    /// Reads the conditions of a policy in Cedar's JSON form (`Policy::to_json`).
    pub(crate) fn of(est: &Value) -> Self {
        let mut need: Dnf = vec![BTreeSet::new()];
        let mut exact = true;
        let mentions = mentions_scopes(est.get("conditions").unwrap_or(&Value::Null));
        if let Some(Value::Array(conditions)) = est.get("conditions") {
            for condition in conditions {
                let Some(body) = condition.get("body") else {
                    continue;
                };
                if condition.get("kind").and_then(Value::as_str) == Some("when") {
                    let (part, part_exact) = requirement(body);
                    exact &= part_exact;
                    match product(&need, &part) {
                        Some(p) => need = p,
                        None => {
                            return Self {
                                alternatives: Vec::new(),
                                exact: false,
                                mentions,
                            }
                        }
                    }
                } else if mentions_scopes(body) {
                    // What `unless` forbids of scopes is not a requirement.
                    exact = false;
                }
            }
        }
        let alternatives = if need.iter().any(BTreeSet::is_empty) {
            Vec::new()
        } else {
            minimal(need)
        };
        Self {
            alternatives,
            exact,
            mentions,
        }
    }
}

/// The requirement of an expression and whether it is exact.
fn requirement(expr: &Value) -> (Dnf, bool) {
    let none = || vec![BTreeSet::new()];
    let Value::Object(map) = expr else {
        return (none(), true);
    };
    if map.len() == 1 {
        if let Some((op, inner)) = map.iter().next() {
            let sides = || {
                (
                    inner.get("left").map(requirement),
                    inner.get("right").map(requirement),
                )
            };
            match op.as_str() {
                "&&" => {
                    if let (Some((l, le)), Some((r, re))) = sides() {
                        return match product(&l, &r) {
                            Some(p) => (p, le && re),
                            None => (none(), false),
                        };
                    }
                }
                "||" => {
                    if let (Some((mut l, le)), Some((r, re))) = sides() {
                        l.extend(r);
                        let l = if l.iter().any(BTreeSet::is_empty) {
                            none()
                        } else {
                            minimal(l)
                        };
                        return if l.len() > MAX_ALTERNATIVES {
                            (none(), false)
                        } else {
                            (l, le && re)
                        };
                    }
                }
                "contains" | "containsAll" | "containsAny" if on_scopes(inner) => {
                    return match inner.get("right").and_then(|r| literals(op, r)) {
                        Some(dnf) => (dnf, true),
                        None => (none(), false),
                    };
                }
                _ => {}
            }
        }
    }
    (none(), !mentions_scopes(expr))
}

/// Whether a `contains*` call is on `context.scopes`.
fn on_scopes(call: &Value) -> bool {
    call.get("left").is_some_and(is_context_scopes)
}

fn is_context_scopes(expr: &Value) -> bool {
    expr.get(".").is_some_and(|access| {
        access.get("attr").and_then(Value::as_str) == Some("scopes")
            && access
                .get("left")
                .and_then(|l| l.get("Var"))
                .and_then(Value::as_str)
                == Some("context")
    })
}

/// The requirement of `contains("a")`, `containsAll(["a","b"])` or `containsAny([…])` with
/// literal strings; `None` for anything computed.
fn literals(op: &str, right: &Value) -> Option<Dnf> {
    let one = |v: &Value| v.get("Value").and_then(Value::as_str).map(str::to_owned);
    if op == "contains" {
        return Some(vec![BTreeSet::from([one(right)?])]);
    }
    let items = match right.get("Set").or_else(|| right.get("Value")) {
        Some(Value::Array(items)) => items,
        _ => return None,
    };
    let names: Option<Vec<String>> = items
        .iter()
        .map(|i| one(i).or_else(|| i.as_str().map(str::to_owned)))
        .collect();
    let names = names?;
    if op == "containsAll" {
        return Some(vec![names.into_iter().collect()]);
    }
    // `containsAny([])` is false: no token satisfies it, which no scope can fix.
    if names.is_empty() || names.len() > MAX_ALTERNATIVES {
        return None;
    }
    Some(names.into_iter().map(|n| BTreeSet::from([n])).collect())
}

/// Whether `context.scopes` appears anywhere in an expression.
fn mentions_scopes(expr: &Value) -> bool {
    match expr {
        Value::Object(map) => is_context_scopes(expr) || map.values().any(mentions_scopes),
        Value::Array(items) => items.iter().any(mentions_scopes),
        _ => false,
    }
}

/// `a ∧ b` in DNF, or `None` past [`MAX_ALTERNATIVES`].
fn product(a: &Dnf, b: &Dnf) -> Option<Dnf> {
    if a.len() * b.len() > MAX_ALTERNATIVES * MAX_ALTERNATIVES {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            out.push(x.union(y).cloned().collect());
        }
    }
    let out = minimal(out);
    (out.len() <= MAX_ALTERNATIVES).then_some(out)
}

/// Drops duplicates and supersets of another alternative (they never help), smallest first.
pub(crate) fn minimal(mut alternatives: Dnf) -> Dnf {
    let mut kept: Dnf = Vec::with_capacity(alternatives.len());
    alternatives.sort();
    alternatives.sort_by_key(BTreeSet::len);
    for alt in alternatives {
        if !kept.iter().any(|k| k.is_subset(&alt)) {
            kept.push(alt);
        }
    }
    kept
}

/// The text of a policy after its head (`when { … }` and `unless { … }` up to the `;`):
/// policies whose conditions read the same require the same scopes, so a load reads each
/// distinct condition once. `None` when the text is not the plain shape this scan knows
/// (annotations, `permit`/`forbid`, a parenthesised head); strings and comments are
/// skipped, so a `)` inside them never ends the head.
pub(crate) fn conditions_text(policy: &str) -> Option<&str> {
    let bytes = policy.as_bytes();
    let mut i = 0;
    // Whitespace and `//` comments.
    let skip = |mut i: usize| loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes[i..].starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else {
            return i;
        }
    };
    // A string literal starting at `i` (a `"`): the index after its closing quote.
    let string = |mut i: usize| {
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    };
    // A parenthesised group starting at `i` (a `(`): the index after its `)`.
    let group = |mut i: usize| {
        let mut depth = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i = string(i)?;
                    continue;
                }
                b'/' if bytes[i..].starts_with(b"//") => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    };
    loop {
        i = skip(i);
        if bytes.get(i) != Some(&b'@') {
            break;
        }
        i += 1;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        i = skip(i);
        if bytes.get(i) == Some(&b'(') {
            i = group(i)?;
        }
    }
    let rest = &policy[i..];
    let after = rest
        .strip_prefix("permit")
        .or_else(|| rest.strip_prefix("forbid"))?;
    i = skip(policy.len() - after.len());
    if bytes.get(i) != Some(&b'(') {
        return None;
    }
    let end = group(i)?;
    Some(&policy[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> ScopeConditions {
        let policy: cedar_policy::Policy = text.parse().unwrap();
        ScopeConditions::of(&policy.to_json().unwrap())
    }

    fn alts(c: &ScopeConditions) -> Vec<Vec<&str>> {
        c.alternatives
            .iter()
            .map(|a| a.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn conjunctions_and_disjunctions_of_scope_checks_become_dnf() {
        let c = of(
            r#"permit(principal, action, resource) when { context.scopes.contains("read") && context.scopes.containsAny(["fido", "otp"]) };"#,
        );
        assert!(c.exact);
        assert_eq!(alts(&c), vec![vec!["fido", "read"], vec!["otp", "read"]]);
        let c = of(
            r#"permit(principal, action, resource) when { context.scopes.containsAll(["a", "b"]) || context.scopes.contains("a") } when { context.scopes.contains("c") };"#,
        );
        assert_eq!(alts(&c), vec![vec!["a", "c"]]);
        assert!(c.exact);
    }

    #[test]
    fn other_conditions_are_no_requirement_and_unreadable_ones_are_not_exact() {
        let c = of(
            r#"permit(principal, action, resource) when { context.scopes.contains("read") && context has token };"#,
        );
        assert_eq!(alts(&c), vec![vec!["read"]]);
        assert!(c.exact);
        // Either side may hold: `read` is not necessary.
        let c = of(
            r#"permit(principal, action, resource) when { context.scopes.contains("read") || principal is User };"#,
        );
        assert!(c.alternatives.is_empty() && c.exact);
        let c =
            of(r#"permit(principal, action, resource) when { !context.scopes.contains("read") };"#);
        assert!(c.alternatives.is_empty() && !c.exact);
        let c =
            of(r#"permit(principal, action, resource) unless { context.scopes.contains("x") };"#);
        assert!(!c.exact);
        let c = of("permit(principal, action, resource);");
        assert!(c.alternatives.is_empty() && c.exact);
    }

    #[test]
    fn the_conditions_text_starts_after_the_head_whatever_its_strings_and_comments() {
        let text = "// why\n@id(\"a)\")\n@scopes(\"read\")\npermit (\n  principal == User::\"x)\\\")\", // )\n  action, resource\n)\nwhen { context.scopes.contains(\"read\") };";
        assert_eq!(
            conditions_text(text),
            Some("\nwhen { context.scopes.contains(\"read\") };")
        );
        assert_eq!(
            conditions_text("forbid(principal, action, resource);"),
            Some(";")
        );
        assert_eq!(conditions_text("permit principal"), None);
        assert_eq!(conditions_text("@id(\"unterminated"), None);
    }
}
