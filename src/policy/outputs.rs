//! Decision outputs a policy carries in its annotations, for the gateway in front of the API:
//!
//! - `@header_<name>("value")` on a `permit`: a header for the upstream when that permit
//!   determines an allow (`@header_x_user_id` sets `x-user-id`; `_` becomes `-`);
//! - `@metadata_<key>("value")` on either: an entry of Envoy's `dynamic_metadata`;
//! - `@deny_status("404")` and `@deny_message("…")` on a `forbid`: the HTTP status and body
//!   a gateway answers a deny that forbid determines with (`404` hides that a resource
//!   exists).
//!
//! Values are text with `{…}` placeholders filled from what the decision verified, never from
//! what a caller sent unverified: `{principal}` (`Type::"id"`), `{principal.type}`,
//! `{principal.id}`, `{claims.NAME}` (a verified token claim), `{params.NAME}` (a path
//! parameter of the route) and `{scopes}` (the token's scopes, space-separated); `{{` and `}}`
//! are literal braces. Everything is checked when the policies load: an unknown key of these
//! families, a bad header name, a placeholder that does not exist, and two policies that can
//! determine the same decision with different values for the same output (a conflict, which
//! would make the answer depend on evaluation order).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use cedar_policy::{Effect, Policy, PolicyId, PrincipalConstraint};

use super::error::PolicyError;
use super::meta::PolicyMeta;

const HEADER: &str = "header_";
const METADATA: &str = "metadata_";
const DENY_STATUS: &str = "deny_status";
const DENY_MESSAGE: &str = "deny_message";

/// Headers a PDP must never set for the upstream: the connection's own and the request's
/// framing and routing, which belong to the proxy.
const RESERVED_HEADERS: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Headers that carry a caller's credentials, cookies or client address: a policy that set
/// one could hand the upstream an identity the caller never proved, so the loader refuses
/// them unless the operator allows one by name (`allow_output_headers`).
pub const IDENTITY_HEADERS: [&str; 13] = [
    "authorization",
    "cookie",
    "set-cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-forwarded-client-cert",
    "x-client-cert",
    "x-api-key",
];

/// Identity headers the operator lets policies set (`allow_output_headers`), for every load
/// of this process; the first call wins.
static ALLOWED_IDENTITY_HEADERS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Lets policies set these identity headers ([`IDENTITY_HEADERS`]); set once, at start.
pub fn allow_identity_headers(names: Vec<String>) {
    let _ =
        ALLOWED_IDENTITY_HEADERS.set(names.into_iter().map(|n| n.to_ascii_lowercase()).collect());
}

/// What one policy's annotations ask the gateway to do when it determines a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOutputs {
    /// Headers for the upstream (lower-case names), on an allow.
    pub headers: BTreeMap<String, Template>,
    /// Envoy `dynamic_metadata` entries.
    pub metadata: BTreeMap<String, Template>,
    /// The status to answer a deny with.
    pub deny_status: Option<u16>,
    /// The body to answer a deny with.
    pub deny_message: Option<Template>,
}

impl PolicyOutputs {
    /// Reads a policy's output annotations; `None` when it has none. Other annotations are
    /// left alone.
    pub fn read(policy: &Policy) -> Result<Option<Self>, String> {
        let mut out = Self::default();
        let mut any = false;
        for (key, value) in policy.annotations() {
            let parse = |v: &str| Template::parse(v).map_err(|e| format!("@{key}: {e}"));
            if let Some(name) = key.strip_prefix(HEADER) {
                if policy.effect() != Effect::Permit {
                    return Err(format!(
                        "@{key}: headers for the upstream apply only when a permit allows; \
                         a forbid never lets the request through"
                    ));
                }
                let name = header_name(name).map_err(|e| format!("@{key}: {e}"))?;
                out.headers.insert(name, parse(value)?);
            } else if let Some(name) = key.strip_prefix(METADATA) {
                if name.is_empty() {
                    return Err(format!("@{key}: the metadata key is empty"));
                }
                out.metadata.insert(name.to_owned(), parse(value)?);
            } else if key == DENY_STATUS {
                if policy.effect() != Effect::Forbid {
                    return Err(format!(
                        "@{key}: a deny status applies only when a forbid denies"
                    ));
                }
                out.deny_status = Some(deny_status(value).map_err(|e| format!("@{key}: {e}"))?);
            } else if key == DENY_MESSAGE {
                if policy.effect() != Effect::Forbid {
                    return Err(format!(
                        "@{key}: a deny message applies only when a forbid denies"
                    ));
                }
                out.deny_message = Some(parse(value)?);
            } else {
                continue;
            }
            any = true;
        }
        Ok(any.then_some(out))
    }

    /// Every output with its annotation key and value as written, for explanations.
    pub fn annotations(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, t) in &self.headers {
            out.push((
                format!("{HEADER}{}", name.replace('-', "_")),
                t.source.clone(),
            ));
        }
        for (name, t) in &self.metadata {
            out.push((format!("{METADATA}{name}"), t.source.clone()));
        }
        if let Some(s) = self.deny_status {
            out.push((DENY_STATUS.to_owned(), s.to_string()));
        }
        if let Some(t) = &self.deny_message {
            out.push((DENY_MESSAGE.to_owned(), t.source.clone()));
        }
        out
    }
}

/// `x_user_id` → `x-user-id`, checked as an HTTP header name a PDP may set.
fn header_name(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("the header name is empty".into());
    }
    let name = key.replace('_', "-").to_ascii_lowercase();
    axum::http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    if RESERVED_HEADERS.contains(&name.as_str()) || name.starts_with(':') {
        return Err(format!(
            "`{name}` belongs to the proxy; a policy cannot set it"
        ));
    }
    let allowed = ALLOWED_IDENTITY_HEADERS
        .get()
        .is_some_and(|a| a.contains(&name));
    if IDENTITY_HEADERS.contains(&name.as_str()) && !allowed {
        return Err(format!(
            "`{name}` carries a caller's credentials, cookies or address; a policy cannot set it (an operator can allow it with `allow_output_headers`)"
        ));
    }
    if crate::wire::is_arbiter_header(&name) {
        return Err(format!(
            "`{name}`: the `x-arbiter-` headers are Arbiter's own; a policy cannot set them"
        ));
    }
    Ok(name)
}

fn deny_status(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(s) if (400..=599).contains(&s) => Ok(s),
        _ => Err(format!("`{text}` is not a deny status: one of 400 to 599")),
    }
}

/// An output value: text and placeholders, parsed once when the policies load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Principal,
    PrincipalType,
    PrincipalId,
    Claim(String),
    Param(String),
    Scopes,
}

/// What a template is filled from: only what the decision verified.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    /// The principal, as Cedar saw it.
    pub principal: Option<&'a cedar_policy::EntityUid>,
    /// The verified token's claims.
    pub claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The verified token's scopes.
    pub scopes: &'a [String],
    /// The route's path parameters.
    pub params: Option<&'a matchit::Params<'a, 'a>>,
}

impl Template {
    /// Parses `text` with its `{…}` placeholders.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(format!("`{text}`: a lone `}}` (write `}}}}` for a brace)"));
            } else {
                let end = tail
                    .find('}')
                    .ok_or_else(|| format!("`{text}`: a `{{` is not closed"))?;
                let name = tail[1..end].trim();
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(placeholder(name).map_err(|e| format!("`{text}`: {e}"))?);
                rest = &tail[end + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self {
            source: text.to_owned(),
            parts,
        })
    }

    /// The value as written in the annotation.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Fills the placeholders; fails when the decision has nothing verified for one (no
    /// token, a claim it lacks, a parameter the route does not have). `None` when it needs
    /// path parameters and the question named no path (AuthZEN names a route template):
    /// there is no request to forward, so there is nothing to fill.
    pub fn render(&self, v: &Verified<'_>) -> Result<Option<String>, String> {
        let needs_path = self.parts.iter().any(|p| matches!(p, Part::Param(_)));
        if needs_path && v.params.is_none() {
            return Ok(None);
        }
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Principal => {
                    let _ = write!(out, "{}", principal(v)?);
                }
                Part::PrincipalType => {
                    let _ = write!(out, "{}", principal(v)?.type_name());
                }
                Part::PrincipalId => out.push_str(principal(v)?.id().unescaped()),
                Part::Claim(name) => {
                    let value = v
                        .claims
                        .and_then(|c| c.get(name))
                        .ok_or_else(|| format!("the token has no claim `{name}`"))?;
                    match value {
                        serde_json::Value::String(s) => out.push_str(s),
                        serde_json::Value::Number(n) => out.push_str(&n.to_string()),
                        serde_json::Value::Bool(b) => {
                            out.push_str(if *b { "true" } else { "false" })
                        }
                        _ => {
                            return Err(format!(
                                "claim `{name}` is not a string, number or boolean"
                            ))
                        }
                    }
                }
                Part::Param(name) => out.push_str(
                    v.params
                        .and_then(|p| p.get(name))
                        .ok_or_else(|| format!("the route has no parameter `{name}`"))?,
                ),
                Part::Scopes => out.push_str(&v.scopes.join(" ")),
            }
        }
        Ok(Some(out))
    }
}

fn principal<'a>(v: &Verified<'a>) -> Result<&'a cedar_policy::EntityUid, String> {
    v.principal
        .ok_or_else(|| "the decision has no principal".to_owned())
}

fn placeholder(name: &str) -> Result<Part, String> {
    let part = match name {
        "principal" => Part::Principal,
        "principal.type" => Part::PrincipalType,
        "principal.id" => Part::PrincipalId,
        "scopes" => Part::Scopes,
        _ => match name.split_once('.') {
            Some(("claims", claim)) if !claim.is_empty() => Part::Claim(claim.to_owned()),
            Some(("params", param)) if !param.is_empty() => Part::Param(param.to_owned()),
            _ => {
                return Err(format!(
                    "unknown placeholder `{{{name}}}` (one of principal, principal.type, \
                     principal.id, claims.NAME, params.NAME, scopes; a caller's context is \
                     not verified and cannot be used)"
                ))
            }
        },
    };
    Ok(part)
}

/// Conflicts among the policies of one endpoint's slice: two that can determine the same
/// decision (same effect, overlapping actions and principal types) and give one output two
/// different values. Each conflict is reported once, at the policy later in file order,
/// naming the other and where it is.
pub(crate) fn conflicts(
    slice: &[&Policy],
    meta: &HashMap<PolicyId, PolicyMeta>,
) -> Vec<PolicyError> {
    let with: Vec<(&Policy, &PolicyMeta, &PolicyOutputs)> = slice
        .iter()
        .filter_map(|p| {
            let m = meta.get(p.id())?;
            Some((*p, m, m.outputs.as_deref()?))
        })
        .collect();
    let mut errors = Vec::new();
    for (i, (a, am, ao)) in with.iter().enumerate() {
        for (b, bm, bo) in &with[i + 1..] {
            if am.effect != bm.effect || !may_overlap(a, am, b, bm) {
                continue;
            }
            let (first, fm, second, sm) = if (&am.file, am.line) <= (&bm.file, bm.line) {
                (a, am, b, bm)
            } else {
                (b, bm, a, am)
            };
            for what in differing(ao, bo) {
                errors.push(PolicyError::at(
                    &sm.file,
                    sm.line,
                    format!(
                        "`{}` and `{}` (at {}:{}) can decide the same request and give {what} \
                         different values; give them one value, or make their actions or \
                         principals disjoint",
                        second.id(),
                        first.id(),
                        fm.file,
                        fm.line
                    ),
                ));
            }
        }
    }
    errors
}

/// The outputs two policies both set to different values.
fn differing(a: &PolicyOutputs, b: &PolicyOutputs) -> Vec<String> {
    let mut out = Vec::new();
    for (name, t) in &a.headers {
        if b.headers.get(name).is_some_and(|u| u != t) {
            out.push(format!("header `{name}`"));
        }
    }
    for (name, t) in &a.metadata {
        if b.metadata.get(name).is_some_and(|u| u != t) {
            out.push(format!("metadata `{name}`"));
        }
    }
    if matches!((a.deny_status, b.deny_status), (Some(x), Some(y)) if x != y) {
        out.push("@deny_status".into());
    }
    if matches!((&a.deny_message, &b.deny_message), (Some(x), Some(y)) if x != y) {
        out.push("@deny_message".into());
    }
    out
}

/// Whether two policies can apply to one request: their actions intersect and their
/// principal types do (conservative: anything it cannot tell apart overlaps).
fn may_overlap(a: &Policy, am: &PolicyMeta, b: &Policy, bm: &PolicyMeta) -> bool {
    let actions = match (&am.actions, &bm.actions) {
        (Some(x), Some(y)) => x.iter().any(|a| y.contains(a)),
        _ => true,
    };
    let types = match (principal_type(a), principal_type(b)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    actions && types
}

fn principal_type(p: &Policy) -> Option<String> {
    match p.principal_constraint() {
        PrincipalConstraint::Is(t) | PrincipalConstraint::IsIn(t, _) => Some(t.to_string()),
        PrincipalConstraint::Eq(uid) => Some(uid.type_name().to_string()),
        PrincipalConstraint::Any | PrincipalConstraint::In(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(src: &str) -> Result<Option<PolicyOutputs>, String> {
        PolicyOutputs::read(&src.parse::<Policy>().unwrap())
    }

    #[test]
    fn reads_headers_metadata_and_deny_outputs() {
        let o = outputs(
            r#"@header_x_user_id("{principal.id}") @metadata_tenant("t-{claims.tenant}")
               permit (principal, action, resource);"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.headers.keys().collect::<Vec<_>>(), ["x-user-id"]);
        assert_eq!(o.metadata["tenant"].source(), "t-{claims.tenant}");
        let o = outputs(r#"@deny_status("404") @deny_message("no such item") forbid (principal, action, resource);"#)
            .unwrap()
            .unwrap();
        assert_eq!(o.deny_status, Some(404));
        assert_eq!(
            outputs(r#"@id("x") permit (principal, action, resource);"#).unwrap(),
            None
        );
    }

    #[test]
    fn refuses_what_cannot_work() {
        for (src, says) in [
            (
                r#"@header_x("a") forbid (principal, action, resource);"#,
                "only when a permit",
            ),
            (
                r#"@deny_status("404") permit (principal, action, resource);"#,
                "only when a forbid",
            ),
            (
                r#"@deny_status("200") forbid (principal, action, resource);"#,
                "400 to 599",
            ),
            (
                r#"@header_host("a") permit (principal, action, resource);"#,
                "belongs to the proxy",
            ),
            (
                r#"@header_authorization("Bearer x") permit (principal, action, resource);"#,
                "credentials, cookies or address",
            ),
            (
                r#"@header_x_forwarded_for("{claims.ip}") permit (principal, action, resource);"#,
                "credentials, cookies or address",
            ),
            (
                r#"@header_cookie("a=b") permit (principal, action, resource);"#,
                "credentials, cookies or address",
            ),
            (
                r#"@header_x("{context.user}") permit (principal, action, resource);"#,
                "unknown placeholder",
            ),
            (
                r#"@header_x("{principal") permit (principal, action, resource);"#,
                "not closed",
            ),
            (
                r#"@header_("a") permit (principal, action, resource);"#,
                "empty",
            ),
        ] {
            let err = outputs(src).unwrap_err();
            assert!(err.contains(says), "{src}: {err}");
        }
    }

    #[test]
    fn renders_only_what_was_verified() {
        let t = Template::parse("{principal.type}:{principal.id} {{{claims.tenant}}} {scopes}")
            .unwrap();
        let uid: cedar_policy::EntityUid = r#"User::"alice""#.parse().unwrap();
        let serde_json::Value::Object(claims) = serde_json::json!({"tenant": "acme", "n": [1]})
        else {
            unreachable!()
        };
        let scopes = ["read".to_owned(), "otp".to_owned()];
        let v = Verified {
            principal: Some(&uid),
            claims: Some(&claims),
            scopes: &scopes,
            params: None,
        };
        assert_eq!(
            t.render(&v).unwrap().as_deref(),
            Some("User:alice {acme} read otp")
        );
        let err = Template::parse("{claims.missing}")
            .unwrap()
            .render(&v)
            .unwrap_err();
        assert!(err.contains("no claim `missing`"), "{err}");
        let err = Template::parse("{claims.n}")
            .unwrap()
            .render(&v)
            .unwrap_err();
        assert!(err.contains("not a string"), "{err}");
        // No path in the question (a route template): nothing to fill, no error.
        assert_eq!(Template::parse("{params.id}").unwrap().render(&v), Ok(None));
        let mut router = matchit::Router::new();
        router.insert("/item/{id}", ()).unwrap();
        let m = router.at("/item/7").unwrap();
        let v = Verified {
            params: Some(&m.params),
            ..v
        };
        assert_eq!(
            Template::parse("{params.id}").unwrap().render(&v),
            Ok(Some("7".to_owned()))
        );
        let err = Template::parse("{params.name}")
            .unwrap()
            .render(&v)
            .unwrap_err();
        assert!(err.contains("no parameter `name`"), "{err}");
    }
}
