//! Reads a policy directory into a validated set: the schema, every `*.cedar` file (each
//! policy renamed to its `@id`), and `entities.json`. Every error is collected with its
//! file and line, so a policy author sees all of them at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Effect, Entities, Policy, PolicyId, PolicySet, Schema, SchemaFragment,
    ValidationMode, Validator,
};
use sha2::{Digest, Sha256};

use super::error::{from_diagnostic, PolicyError};
use super::scopes::ScopeExpr;
use super::shape::SchemaShapes;

/// The schema file every policy directory has at its root.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The optional static entities file at the root.
pub const ENTITIES_FILE: &str = "entities.json";
/// Directory depth beyond which the walk stops (protects against symlink loops).
const MAX_DEPTH: usize = 16;

/// Where a policy is written and what its annotations say.
#[derive(Debug, Clone)]
pub struct PolicyMeta {
    /// File relative to the policy directory.
    pub file: String,
    /// 1-based line where the policy (with its annotations) starts.
    pub line: u32,
    /// The parsed `@scopes` annotation, if any.
    pub scopes: Option<ScopeExpr>,
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// The action ids the policy's action scope names; `None` when unconstrained.
    pub actions: Option<Vec<String>>,
}

/// A fully parsed and validated policy directory, before indexing.
pub(crate) struct LoadedDir {
    pub version: String,
    pub schema: Schema,
    pub shapes: SchemaShapes,
    pub policies: PolicySet,
    pub meta: HashMap<PolicyId, PolicyMeta>,
    pub entities: Entities,
    pub warnings: Vec<PolicyError>,
}

/// Reads and validates `dir`, or returns every problem found.
pub(crate) fn load_dir(dir: &Path) -> Result<LoadedDir, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut hasher = Sha256::new();

    let mut files = Vec::new();
    if let Err(e) = walk(dir, dir, 0, &mut files) {
        return Err(vec![PolicyError::file(dir.display().to_string(), e)]);
    }
    files.sort();

    // Schema.
    let schema_text = match std::fs::read_to_string(dir.join(SCHEMA_FILE)) {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![PolicyError::file(
                SCHEMA_FILE,
                format!("cannot read the schema: {e}"),
            )])
        }
    };
    hash_file(&mut hasher, SCHEMA_FILE, &schema_text);
    let (schema, shapes) = parse_schema(&schema_text)?;

    // Policies, file by file.
    let mut meta: HashMap<PolicyId, PolicyMeta> = HashMap::new();
    let mut policies = Vec::new();
    let mut texts: HashMap<String, String> = HashMap::new();
    for path in &files {
        let rel = relative(dir, path);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(PolicyError::file(rel, format!("cannot read: {e}")));
                continue;
            }
        };
        hash_file(&mut hasher, &rel, &text);
        parse_policy_file(&rel, &text, &mut meta, &mut policies, &mut errors);
        texts.insert(rel, text);
    }

    // Entities.
    let entities_path = dir.join(ENTITIES_FILE);
    let entities = if entities_path.exists() {
        match std::fs::read_to_string(&entities_path) {
            Ok(text) => {
                hash_file(&mut hasher, ENTITIES_FILE, &text);
                match Entities::from_json_str(&text, Some(&schema)) {
                    Ok(e) => e,
                    Err(e) => {
                        errors.extend(from_diagnostic(ENTITIES_FILE, None, &e));
                        Entities::empty()
                    }
                }
            }
            Err(e) => {
                errors.push(PolicyError::file(
                    ENTITIES_FILE,
                    format!("cannot read: {e}"),
                ));
                Entities::empty()
            }
        }
    } else {
        Entities::empty()
    };

    let mut set = PolicySet::new();
    for policy in policies {
        let id = policy.id().clone();
        if let Err(e) = set.add(policy) {
            let m = &meta[&id];
            errors.push(PolicyError::at(&m.file, m.line, e.to_string()));
        }
    }

    // Validation against the schema, only once every file parsed: errors would only repeat.
    let mut warnings = Vec::new();
    if errors.is_empty() {
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        for e in result.validation_errors() {
            errors.extend(located(e.policy_id(), e, &meta, &texts));
        }
        for w in result.validation_warnings() {
            warnings.extend(located(w.policy_id(), w, &meta, &texts));
        }
    }

    if !errors.is_empty() {
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert(e.to_string()));
        return Err(errors);
    }
    let digest = hasher.finalize();
    Ok(LoadedDir {
        version: hex::encode(&digest[..8]),
        schema,
        shapes,
        policies: set,
        meta,
        entities,
        warnings,
    })
}

fn parse_schema(text: &str) -> Result<(Schema, SchemaShapes), Vec<PolicyError>> {
    let fragment = match SchemaFragment::from_cedarschema_str(text) {
        Ok((f, _)) => f,
        Err(e) => return Err(from_diagnostic(SCHEMA_FILE, Some(text), &e)),
    };
    let schema = match Schema::from_cedarschema_str(text) {
        Ok((s, _)) => s,
        Err(e) => return Err(from_diagnostic(SCHEMA_FILE, Some(text), &e)),
    };
    let shapes = SchemaShapes::from_fragment(fragment)
        .map_err(|m| vec![PolicyError::file(SCHEMA_FILE, m)])?;
    Ok((schema, shapes))
}

fn parse_policy_file(
    rel: &str,
    text: &str,
    meta: &mut HashMap<PolicyId, PolicyMeta>,
    out: &mut Vec<Policy>,
    errors: &mut Vec<PolicyError>,
) {
    let set = match PolicySet::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            errors.extend(from_diagnostic(rel, Some(text), &e));
            return;
        }
    };
    // Lines of each policy start, computed in one pass over the file.
    let lines = lines_of(text, &policy_starts(text));
    // Cedar names the Nth policy or template of a file `policyN`.
    let line_for = |id: &PolicyId| -> u32 {
        id.to_string()
            .strip_prefix("policy")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| lines.get(n).copied())
            .unwrap_or(1)
    };
    for template in set.templates() {
        errors.push(PolicyError::at(
            rel,
            line_for(template.id()),
            "policy templates (with ?principal or ?resource) are not supported in the policy directory",
        ));
    }
    let mut parsed: Vec<(u32, &Policy)> = set.policies().map(|p| (line_for(p.id()), p)).collect();
    parsed.sort_by_key(|(line, _)| *line);
    for (line, policy) in parsed {
        // One pass over the annotations: `Policy::annotation` parses its key on every call.
        let (mut id, mut scopes_text) = (None, None);
        for (key, value) in policy.annotations() {
            match key {
                "id" => id = Some(value),
                "scopes" => scopes_text = Some(value),
                _ => {}
            }
        }
        let Some(id) = id else {
            errors.push(PolicyError::at(
                rel,
                line,
                "policy has no @id annotation (every policy needs a unique @id(\"…\"))",
            ));
            continue;
        };
        if id.trim().is_empty() {
            errors.push(PolicyError::at(rel, line, "@id is empty"));
            continue;
        }
        let new_id = PolicyId::new(id);
        if let Some(first) = meta.get(&new_id) {
            errors.push(PolicyError::at(
                rel,
                line,
                format!(
                    "duplicate @id `{id}` (first used at {}:{})",
                    first.file, first.line
                ),
            ));
            continue;
        }
        let scopes = match scopes_text.map(ScopeExpr::parse) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                errors.push(PolicyError::at(rel, line, e.to_string()));
                continue;
            }
            None => None,
        };
        meta.insert(
            new_id.clone(),
            PolicyMeta {
                file: rel.to_owned(),
                line,
                scopes,
                effect: policy.effect(),
                actions: match policy.action_constraint() {
                    ActionConstraint::Any => None,
                    ActionConstraint::Eq(a) => Some(vec![a.id().unescaped().to_owned()]),
                    ActionConstraint::In(list) => {
                        Some(list.iter().map(|a| a.id().unescaped().to_owned()).collect())
                    }
                },
            },
        );
        out.push(policy.new_id(new_id));
    }
}

fn located(
    id: &PolicyId,
    diag: &dyn miette::Diagnostic,
    meta: &HashMap<PolicyId, PolicyMeta>,
    texts: &HashMap<String, String>,
) -> Vec<PolicyError> {
    match meta.get(id) {
        Some(m) => {
            let mut errs = from_diagnostic(&m.file, texts.get(&m.file).map(String::as_str), diag);
            for e in &mut errs {
                e.line = e.line.or(Some(m.line));
            }
            errs
        }
        None => from_diagnostic("<policies>", None, diag),
    }
}

/// Byte offsets where each top-level policy of a Cedar file starts (at its first annotation),
/// skipping comments and string literals. Cedar's parser keeps no public source location for a
/// policy, so this is how `file:line` is known for policies that validate but need reporting.
fn policy_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    let mut at_policy_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b if b.is_ascii_whitespace() => {}
            _ => {
                if at_policy_start {
                    starts.push(i);
                    at_policy_start = false;
                }
                if b == b'"' {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                } else if b == b';' {
                    at_policy_start = true;
                }
            }
        }
        i += 1;
    }
    starts
}

/// 1-based lines of ascending byte offsets, in one pass.
fn lines_of(text: &str, offsets: &[usize]) -> Vec<u32> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(offsets.len());
    let (mut pos, mut line) = (0usize, 1u32);
    for &offset in offsets {
        let end = offset.min(bytes.len());
        line += bytes[pos..end].iter().filter(|&&b| b == b'\n').count() as u32;
        pos = end;
        out.push(line);
    }
    out
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "directory nesting deeper than {MAX_DEPTH} below `{}`",
            root.display()
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read directory: {e}"))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // hidden files, editor swap files, Kubernetes' `..data` internals
        }
        let path = entry.path();
        // follow symlinks: ConfigMap volumes link every file into `..data`
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a dangling link
        };
        if meta.is_dir() {
            walk(root, &path, depth + 1, out)?;
        } else if path.extension().is_some_and(|e| e == "cedar") {
            out.push(path);
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn hash_file(hasher: &mut Sha256, name: &str, text: &str) {
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update((text.len() as u64).to_le_bytes());
    hasher.update(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_policy_starts_past_comments_and_strings() {
        let text = "// a; comment\n@id(\"a;\")\npermit(principal, action, resource);\n\n  forbid(principal, action, resource) when { \"x;\" == \"y\" };\n";
        let starts = policy_starts(text);
        assert_eq!(starts.len(), 2);
        assert_eq!(lines_of(text, &starts), vec![2, 5]);
    }
}
