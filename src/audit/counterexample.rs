//! A request the solver found, made usable: a policy test case (`policies/tests/*.yaml`), a
//! ready-to-run `arbiter check` line, and whether Arbiter's own decision path decides it as
//! the solver said the policies do.
//!
//! The solver speaks Cedar (a principal, an action, a resource, a context and entities);
//! Arbiter's callers speak tokens, methods, paths and context JSON. Cedar's `context.scopes`
//! and `context.token` are a token's scopes and claims, `context.params` fill the route
//! template, a principal's attributes are its token's claims of the same names, and what is
//! left of the context is what a gateway sends. A request that needs more than a token can
//! carry (group membership, say) is still reported, marked as not reproduced.

use serde_json::{Map, Value};

use super::cases::{self, Expectation, TestCase};
use crate::policy::{PolicySnapshot, ENDPOINT_TYPE, SCOPE_TYPE};

/// Claims a token's verifier fills itself; a counterexample's values for them are dropped.
const FILLED_CLAIMS: [&str; 5] = ["iss", "sub", "client_id", "exp", "iat"];

/// Context keys Arbiter fills from the token and the route, never from the caller.
const FILLED_CONTEXT: [&str; 4] = ["scopes", "token", "client", "params"];

/// The principal id put in place of the empty one the solver picks when no policy names one.
const PLACEHOLDER_ID: &str = "counterexample";

/// One request the solver found, in every form a policy author can use.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Counterexample {
    /// The request as a policy test case, expecting what the author should want.
    pub case: TestCase,
    /// The same case as YAML, for `policies/tests/*.yaml`.
    pub yaml: String,
    /// `arbiter check …` for a running server (none for `IssueScope`).
    pub check: Option<String>,
    /// Whether Arbiter's decision path, given this request, decides it as the solver said.
    pub reproduced: bool,
    /// The request as the solver concretized it, in Cedar terms.
    pub cedar: String,
}

impl Counterexample {
    /// Builds the forms of `env`, a request the solver says `snapshot` decides as `allowed`,
    /// as a case named `name` that expects `expect`.
    pub fn new(
        env: &cedar_policy_symcc::Env,
        snapshot: &PolicySnapshot,
        allowed: bool,
        name: String,
        expect: Expectation,
    ) -> Self {
        let mut case = to_case(env);
        case.name = name;
        case.expect = expect;
        let reproduced =
            cases::verdict_of_case(snapshot, &case).is_ok_and(|v| v.allowed == allowed);
        let yaml = yaml_serde::to_string(&vec![&case]).unwrap_or_default();
        let check = case.method.is_some().then(|| check_line(&case));
        Self {
            case,
            yaml,
            check,
            reproduced,
            cedar: describe(env),
        }
    }
}

/// The request of `env` as a test case (name and expectation left to the caller).
fn to_case(env: &cedar_policy_symcc::Env) -> TestCase {
    let request = &env.request;
    let mut case = TestCase::default();
    let context = request
        .context()
        .and_then(|c| c.to_json_value().ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    let principal = request.principal();
    let principal_type = principal.map(|p| p.type_name().to_string());
    if let Some(p) = principal.filter(|_| principal_type.as_deref() != Some("Anonymous")) {
        case.principal = Some(if p.id().unescaped().is_empty() {
            // the solver's pick when no policy names one; a token needs a real id
            format!("{}::\"{PLACEHOLDER_ID}\"", p.type_name())
        } else {
            p.to_string()
        });
        case.claims = entity_attributes(env, p);
    }
    if let Some(Value::Array(scopes)) = context.get("scopes") {
        case.scopes = scopes
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
    }
    if let Some(Value::Object(token)) = context.get("token") {
        for (k, v) in token {
            if !FILLED_CLAIMS.contains(&k.as_str()) {
                case.claims.insert(k.clone(), plain(v));
            }
        }
    }
    if principal_type.as_deref() == Some("User") {
        case.client = context
            .get("client")
            .and_then(entity_id)
            .filter(|c| !c.is_empty());
    }
    let resource = request.resource();
    let action = request.action().map(|a| a.id().unescaped().to_owned());
    match resource.map(|r| r.type_name().to_string()).as_deref() {
        Some(ENDPOINT_TYPE) => {
            let template = resource.map(|r| r.id().unescaped().to_owned());
            let params = match context.get("params") {
                Some(Value::Object(p)) => p.clone(),
                _ => Map::new(),
            };
            case.path = template.map(|t| fill_template(&t, &params));
            case.method = action;
        }
        Some(SCOPE_TYPE) => {
            case.issue_scope = resource.map(|r| r.id().unescaped().to_owned());
        }
        _ => {}
    }
    case.context = context
        .iter()
        .filter(|(k, _)| !FILLED_CONTEXT.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), plain(v)))
        .collect();
    case
}

/// An entity's attributes as plain JSON (its `iss` is the issuer's business, not a claim).
fn entity_attributes(
    env: &cedar_policy_symcc::Env,
    uid: &cedar_policy::EntityUid,
) -> Map<String, Value> {
    let Ok(Value::Array(entities)) = env.entities.to_json_value() else {
        return Map::new();
    };
    let wanted = (uid.type_name().to_string(), uid.id().unescaped().to_owned());
    entities
        .iter()
        .find(|e| {
            let u = &e["uid"];
            u["type"].as_str() == Some(wanted.0.as_str())
                && u["id"].as_str() == Some(wanted.1.as_str())
        })
        .and_then(|e| e["attrs"].as_object())
        .map(|attrs| {
            attrs
                .iter()
                .filter(|(k, _)| k.as_str() != crate::policy::ISSUER_ATTRIBUTE)
                .map(|(k, v)| (k.clone(), plain(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Cedar's JSON (`{"__extn": {"fn": "ip", "arg": "10.0.0.1"}}`, `{"__entity": …}`) as the
/// plain JSON a caller sends, which Arbiter reads by the schema.
fn plain(value: &Value) -> Value {
    match value {
        Value::Object(m) if m.contains_key("__extn") => m["__extn"]["arg"].clone(),
        Value::Object(m) if m.contains_key("__entity") => m["__entity"]["id"].clone(),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), plain(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(plain).collect()),
        other => other.clone(),
    }
}

fn entity_id(value: &Value) -> Option<String> {
    value
        .get("__entity")
        .and_then(|e| e["id"].as_str())
        .map(str::to_owned)
}

/// A concrete path for a route template, each `{param}` (or `{*param}`) filled with the
/// counterexample's value when it is a plain path segment, else with `1`.
fn fill_template(template: &str, params: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = rest[open + 1..open + close].trim_start_matches('*');
        let value = params
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| {
                !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            })
            .unwrap_or("1");
        out.push_str(value);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// `arbiter check` for a case's request, with a development token carrying its scopes and
/// claims (the server must trust the development issuer, as `arbiter serve` does by default).
fn check_line(case: &TestCase) -> String {
    let mut line = String::from("arbiter check");
    if let Some(principal) = &case.principal {
        let (kind, id) = principal.split_once("::").unwrap_or(("", principal));
        let id: String = serde_json::from_str(id).unwrap_or_default();
        let mut token = String::from("arbiter token dev");
        if kind == "User" {
            let client = case.client.as_deref().unwrap_or("policy-tests");
            token += &format!(" --client {} --sub {}", quote(client), quote(&id));
        } else {
            token += &format!(" --client {}", quote(&id));
        }
        token += &format!(" --scope {}", quote(&case.scopes.join(" ")));
        if !case.claims.is_empty() {
            token += &format!(
                " --claims {}",
                quote(&Value::Object(case.claims.clone()).to_string())
            );
        }
        line += &format!(" --token \"$({token})\"");
    }
    if !case.context.is_empty() {
        line += &format!(
            " --context {}",
            quote(&Value::Object(case.context.clone()).to_string())
        );
    }
    line += &format!(
        " {} {}",
        case.method.as_deref().unwrap_or_default(),
        quote(case.path.as_deref().unwrap_or_default())
    );
    line
}

/// Single-quoted for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A counterexample as the solver concretized it, without the action entities every
/// request store holds: the request, its context, and the entities it needs.
pub fn describe(env: &cedar_policy_symcc::Env) -> String {
    env.to_string()
        .lines()
        .filter(|l| !l.trim_start().starts_with("Action::"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_filled_with_plain_segments_only() {
        let params: Map<String, Value> = serde_json::from_str(r#"{"id": "a b"}"#).unwrap();
        assert_eq!(fill_template("/item/{id}", &params), "/item/1");
        let params: Map<String, Value> = serde_json::from_str(r#"{"id": "x7"}"#).unwrap();
        assert_eq!(
            fill_template("/item/{id}/health", &params),
            "/item/x7/health"
        );
        assert_eq!(fill_template("/files/{*rest}", &Map::new()), "/files/1");
    }

    #[test]
    fn cedar_json_becomes_what_a_caller_sends() {
        let v: Value = serde_json::from_str(
            r#"{"ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}, "n": [1, {"a": true}]}"#,
        )
        .unwrap();
        assert_eq!(
            plain(&v),
            serde_json::json!({"ip": "10.0.0.1", "n": [1, {"a": true}]})
        );
    }

    #[test]
    fn check_lines_quote_for_the_shell() {
        let case = TestCase {
            principal: Some(r#"User::"o'neil""#.into()),
            scopes: vec!["read".into(), "fido".into()],
            method: Some("GET".into()),
            path: Some("/item/1".into()),
            ..TestCase::default()
        };
        assert_eq!(
            check_line(&case),
            r#"arbiter check --token "$(arbiter token dev --client 'policy-tests' --sub 'o'\''neil' --scope 'read fido')" GET '/item/1'"#
        );
    }
}
