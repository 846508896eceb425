//! Policy tests: `tests/*.yaml` beside the policies, each case a request (a principal with
//! scopes and claims, or anonymous; method, path, context) and the expected decision, and
//! optionally the reason and the determining policies. Run with `arbiter policies test`,
//! without a server, through the same path rules and decision code as `Authorize`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decision::{verdict_for_verified, AuthzRequest, EntityRef, Subject, Verdict};
use crate::policy::PolicySnapshot;
use crate::token::VerifiedToken;

/// The issuer named in test tokens.
pub const TEST_ISSUER: &str = "https://arbiter.local/dev";

/// One file of cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// What the file covers.
    #[serde(default)]
    pub name: Option<String>,
    /// The cases.
    pub cases: Vec<TestCase>,
}

/// One request and what must come of it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What it checks.
    pub name: String,
    /// `User::"alice"` or `Client::"demo"`; anonymous when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The client a user's token was issued to (default `policy-tests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The token's issuer (default: the development issuer, `https://arbiter.local/dev`);
    /// `entities.json` describes a principal only for the issuer its `iss` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The token's scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Further token claims (e.g. `acr`, `department`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    /// HTTP method (for a request to an API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Request path (for a request to an API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Instead of a request: may the token endpoint issue this scope to the principal (a
    /// `Client`, whose registered attributes are `claims`)? `Action::"IssueScope"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_scope: Option<String>,
    /// Instead of a request to an API: an action of the schema on a named `resource` (the
    /// workbench's `ViewPolicies` on `Console::"workbench"`), asked with the principal's
    /// token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The named resource of an `action` case, e.g. `Console::"workbench"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The caller's context.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
    /// `allow` or `deny`.
    pub expect: Expectation,
    /// The expected reason (`allow`, `policy_deny`, `insufficient_scope`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The expected determining policies, in any order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    /// The expected decision outputs (each part checked only when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<ExpectedOutputs>,
}

/// What a case expects of the decision's outputs: the headers and metadata exactly (when
/// given), the deny status and message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedOutputs {
    /// Headers for the upstream, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Metadata, by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    /// The deny status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_status: Option<u16>,
    /// The deny message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_message: Option<String>,
}

/// The expected decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    /// Allowed.
    Allow,
    /// Denied.
    #[default]
    Deny,
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The file it came from.
    pub file: PathBuf,
    /// The case's name.
    pub name: String,
    /// What differed from the expectation (empty: passed).
    pub mismatches: Vec<Mismatch>,
    /// The policies that determined the decision (for `--coverage`).
    pub determining: Vec<String>,
}

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `decision`, `reason`, `policies`, or which output.
    pub what: &'static str,
    /// Expected.
    pub expected: String,
    /// Actual.
    pub actual: String,
}

impl CaseResult {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Errors reading test files.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// A file could not be read.
    #[error("cannot read `{0}`: {1}")]
    Io(PathBuf, std::io::Error),
    /// A file is not valid.
    #[error("`{0}`: {1}")]
    Invalid(PathBuf, String),
}

/// The test files of a policy directory (`tests/*.yaml`, `*.yml`), sorted.
pub fn test_files(policy_dir: &Path) -> Result<Vec<PathBuf>, CasesError> {
    let dir = policy_dir.join("tests");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CasesError::Io(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and runs every case of `files` against `snapshot`.
pub fn run(snapshot: &PolicySnapshot, files: &[PathBuf]) -> Result<Vec<CaseResult>, CasesError> {
    let mut results = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| CasesError::Io(file.clone(), e))?;
        let parsed: TestFile = yaml_serde::from_str(&text)
            .map_err(|e| CasesError::Invalid(file.clone(), e.to_string()))?;
        for case in parsed.cases {
            let verdict = verdict_of_case(snapshot, &case).map_err(|e| {
                CasesError::Invalid(file.clone(), format!("case `{}`: {e}", case.name))
            })?;
            results.push(CaseResult {
                file: file.clone(),
                mismatches: compare(&case, &verdict),
                name: case.name,
                determining: verdict.policy_ids,
            });
        }
    }
    Ok(results)
}

/// The token a case describes, as if an issuer had signed and Arbiter verified it.
pub fn case_token(case: &TestCase) -> Result<Option<VerifiedToken>, String> {
    let Some(principal) = &case.principal else {
        if !case.scopes.is_empty() || !case.claims.is_empty() {
            return Err("scopes or claims need a `principal`".into());
        }
        return Ok(None);
    };
    let (kind, id) = parse_entity(principal)?;
    let (sub, client_id) = match kind {
        "User" => (
            id.clone(),
            case.client.clone().unwrap_or_else(|| "policy-tests".into()),
        ),
        "Client" => (id.clone(), id.clone()),
        other => return Err(format!("a principal is a User or a Client, not `{other}`")),
    };
    let mut claims = case.claims.clone();
    let standard = [
        (
            "iss",
            Value::from(case.issuer.as_deref().unwrap_or(TEST_ISSUER)),
        ),
        ("sub", Value::from(sub)),
        ("client_id", Value::from(client_id)),
        ("scope", Value::from(case.scopes.join(" "))),
        ("exp", Value::from(u64::MAX / 2)),
        ("iat", Value::from(crate::clock::now())),
    ];
    for (k, v) in standard {
        claims.insert(k.into(), v);
    }
    VerifiedToken::from_verified_claims(claims)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn parse_entity(text: &str) -> Result<(&str, String), String> {
    let (kind, quoted) = text
        .split_once("::")
        .ok_or_else(|| format!("`{text}` is not an entity such as User::\"alice\""))?;
    let id: String = serde_json::from_str(quoted.trim())
        .map_err(|_| format!("`{text}`: the id must be a quoted string"))?;
    Ok((kind.trim(), id))
}

/// Decides a case's request through the same path rules and decision code as `Authorize`
/// (or, for `issue_scope`, as the token endpoint).
pub fn verdict_of_case(snapshot: &PolicySnapshot, case: &TestCase) -> Result<Verdict, String> {
    if let (Some(action), Some(resource)) = (&case.action, &case.resource) {
        if case.issue_scope.is_some() || case.method.is_some() || case.path.is_some() {
            return Err("an `action` case names a `resource`, not a method, path or scope".into());
        }
        return named_resource(snapshot, case, action, resource);
    }
    if case.action.is_some() || case.resource.is_some() {
        return Err("`action` and `resource` go together".into());
    }
    Ok(match (&case.issue_scope, &case.method, &case.path) {
        (Some(scope), None, None) => issue_scope(snapshot, case, scope)?,
        (None, Some(method), Some(path)) => {
            let token = case_token(case)?;
            verdict_for_verified(
                snapshot,
                &AuthzRequest {
                    subject: None,
                    resource: None,
                    token: "",
                    method,
                    path,
                    context: &case.context,
                    explain: false,
                    client_cert_sha256: "",
                },
                token.as_ref(),
            )
        }
        _ => {
            return Err(
                "give `method` and `path`, `issue_scope`, or `action` and `resource`".into(),
            )
        }
    })
}

/// An `action` case: the principal's token asks for `action` on the named `resource`, as the
/// workbench asks for each screen.
fn named_resource(
    snapshot: &PolicySnapshot,
    case: &TestCase,
    action: &str,
    resource: &str,
) -> Result<Verdict, String> {
    let uid: cedar_policy::EntityUid = resource.parse().map_err(|e| {
        format!("`{resource}` is not an entity such as Console::\"workbench\": {e}")
    })?;
    let resource = EntityRef {
        uid,
        properties: Map::new(),
    };
    let token = case_token(case)?;
    Ok(verdict_for_verified(
        snapshot,
        &AuthzRequest {
            subject: None,
            resource: Some(&resource),
            token: "",
            method: action,
            path: "",
            context: &case.context,
            explain: false,
            client_cert_sha256: "",
        },
        token.as_ref(),
    ))
}

/// An `IssueScope` case, as the token endpoint would decide it.
fn issue_scope(snapshot: &PolicySnapshot, case: &TestCase, scope: &str) -> Result<Verdict, String> {
    let principal = case
        .principal
        .as_deref()
        .ok_or("an `issue_scope` case needs a `Client` principal")?;
    let (kind, client_id) = parse_entity(principal)?;
    if kind != "Client" {
        return Err("scopes are issued to a `Client` principal".into());
    }
    let mut context = case.context.clone();
    context
        .entry("grant_type")
        .or_insert_with(|| Value::from("client_credentials"));
    let issuer = case.issuer.as_deref().unwrap_or(TEST_ISSUER);
    let client = EntityRef {
        uid: crate::decision::client_uid(&client_id),
        properties: case.claims.clone(),
    };
    let resource = EntityRef {
        uid: crate::decision::scope_uid(scope),
        properties: Map::new(),
    };
    Ok(verdict_for_verified(
        snapshot,
        &AuthzRequest {
            token: "",
            subject: Some(Subject::Client {
                issuer,
                client: &client,
            }),
            method: crate::decision::issue::ISSUE_SCOPE,
            path: "",
            resource: Some(&resource),
            context: &context,
            explain: false,
            client_cert_sha256: "",
        },
        None,
    ))
}

fn compare(case: &TestCase, verdict: &Verdict) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let decision = |allowed: bool| if allowed { "allow" } else { "deny" };
    let expected_allow = case.expect == Expectation::Allow;
    if verdict.allowed != expected_allow {
        out.push(Mismatch {
            what: "decision",
            expected: decision(expected_allow).into(),
            actual: format!(
                "{} ({}{}{})",
                decision(verdict.allowed),
                verdict.reason.as_str(),
                if verdict.policy_ids.is_empty() {
                    ""
                } else {
                    " by "
                },
                verdict.policy_ids.join(", ")
            ) + &if verdict.errors.is_empty() {
                String::new()
            } else {
                format!("; {}", verdict.errors.join("; "))
            },
        });
    }
    if let Some(reason) = &case.reason {
        if reason != verdict.reason.as_str() {
            out.push(Mismatch {
                what: "reason",
                expected: reason.clone(),
                actual: verdict.reason.as_str().into(),
            });
        }
    }
    if let Some(policies) = &case.policies {
        let mut expected = policies.clone();
        expected.sort();
        let mut actual = verdict.policy_ids.clone();
        actual.sort();
        if expected != actual {
            out.push(Mismatch {
                what: "policies",
                expected: expected.join(", "),
                actual: actual.join(", "),
            });
        }
    }
    if let Some(expected) = &case.outputs {
        let o = &verdict.outputs;
        let show = |m: &std::collections::BTreeMap<String, String>| {
            let list: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{{{}}}", list.join(", "))
        };
        let mut check = |what: &'static str, expected: String, actual: String| {
            if expected != actual {
                out.push(Mismatch {
                    what,
                    expected,
                    actual,
                });
            }
        };
        if let Some(h) = &expected.headers {
            check("output headers", show(h), show(&o.headers));
        }
        if let Some(m) = &expected.metadata {
            check("output metadata", show(m), show(&o.metadata));
        }
        let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        if let Some(s) = expected.deny_status {
            check(
                "deny status",
                s.to_string(),
                or_none(o.deny_status.map(|s| s.to_string())),
            );
        }
        if let Some(m) = &expected.deny_message {
            check("deny message", m.clone(), or_none(o.deny_message.clone()));
        }
    }
    out
}
