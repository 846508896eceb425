//! Reads a policy directory into a validated set: the schema, every `*.cedar` file (each
//! policy renamed to its `@id`), and `entities.json`. Every error is collected with its
//! file and line, so a policy author sees all of them at once.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Effect, Entities, Policy, PolicyId, PolicySet, Schema, SchemaFragment,
    ValidationResult,
};
use sha2::{Digest, Sha256};

use super::bounds::{self, SetSize};
use super::data_files::{read_entities, read_revision};
use super::error::{from_diagnostic, PolicyError};
use super::files::{hash_file, relative, walk};
use super::halves;
pub use super::meta::PolicyMeta;
use super::outputs::PolicyOutputs;
use super::scope_conditions::{conditions_text, ScopeConditions};
use super::scopes::ScopeExpr;
use super::shape::SchemaShapes;
pub use super::spans::policy_texts;
use super::spans::{lines_of, policy_spans};

/// The schema file every policy directory has at its root.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The optional static entities file at the root.
pub const ENTITIES_FILE: &str = "entities.json";
/// The optional folder of entity files (a Cedar RFC 0101 policy store's `entities/`).
pub const ENTITIES_DIR: &str = "entities";
/// The optional store description of a Cedar RFC 0101 policy store; its
/// `policy_store.version` is the set's revision.
pub const METADATA_FILE: &str = "metadata.json";
/// The folder of a policy directory that holds properties (upper bounds proved by
/// `arbiter policies test`), never loaded as policies.
pub const PROPERTIES_DIR: &str = "properties";

/// Parsed and validated policies kept between reloads, by their exact source text: a reload
/// parses and validates only the policies whose text (or the schema) changed. A policy's
/// text is the slice of its file from its first annotation to its closing `;`.
#[derive(Default)]
pub(crate) struct LoadCache {
    /// SHA-256 of the schema text the `validated` marks refer to.
    schema: [u8; 32],
    chunks: HashMap<String, CachedPolicy>,
}

impl std::fmt::Debug for LoadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadCache")
            .field("policies", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

struct CachedPolicy {
    /// As parsed, under cedar's placeholder id.
    policy: Policy,
    /// Parsed on its own, so its diagnostics' offsets start at its text (not its file's).
    standalone: bool,
    /// Validated without error under `LoadCache::schema`, with these warnings.
    validated: Option<Vec<String>>,
    /// What its conditions require of scopes, once read (reading costs a re-parse).
    conditions: Option<ScopeConditions>,
    /// Seen in the current load (unseen entries are dropped after it).
    used: bool,
}

/// Where a policy's source text starts in its file: diagnostics of a policy parsed on its own
/// have offsets relative to it.
type Origins = HashMap<PolicyId, (String, usize)>;

/// A fully parsed and validated policy directory, before indexing.
pub(crate) struct LoadedDir {
    pub version: String,
    pub revision: Option<String>,
    pub schema: Schema,
    pub shapes: SchemaShapes,
    pub policies: PolicySet,
    pub meta: HashMap<PolicyId, PolicyMeta>,
    pub entities: Entities,
    pub warnings: Vec<PolicyError>,
}

/// Reads and validates `dir`, or returns every problem found.
pub(crate) fn load_dir(
    dir: &Path,
    mut cache: Option<&mut LoadCache>,
) -> Result<LoadedDir, Vec<PolicyError>> {
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
    let mut size = SetSize::default();
    size.add(SCHEMA_FILE, &schema_text)
        .and_then(|()| bounds::check_cedar(SCHEMA_FILE, &schema_text))
        .map_err(|e| vec![e])?;
    let (schema, shapes) = parse_schema(&schema_text)?;
    if let Some(c) = cache.as_deref_mut() {
        let schema_hash: [u8; 32] = Sha256::digest(schema_text.as_bytes()).into();
        if c.schema != schema_hash {
            // Everything must be validated again; start afresh.
            c.schema = schema_hash;
            c.chunks.clear();
        }
        c.chunks.values_mut().for_each(|p| p.used = false);
    }

    // Policies, file by file.
    let parsing = tracing::debug_span!("policy.parse", files = files.len()).entered();
    let mut meta: HashMap<PolicyId, PolicyMeta> = HashMap::new();
    let mut policies = Vec::new();
    let mut texts: HashMap<String, String> = HashMap::new();
    let mut origins: Origins = HashMap::new();
    let mut chunk_of: HashMap<PolicyId, String> = HashMap::new();
    let mut same_conditions: HashMap<String, ScopeConditions> = HashMap::new();
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
        if let Err(e) = size
            .add(&rel, &text)
            .and_then(|()| bounds::check_cedar(&rel, &text))
        {
            errors.push(e);
            continue;
        }
        let parsed = match cache.as_deref_mut() {
            Some(c) => parse_chunks(&text, c),
            None => None,
        };
        let parsed = match parsed {
            Some(p) => p,
            None => match parse_whole(&rel, &text, &mut errors) {
                Some(p) => {
                    if let Some(c) = cache.as_deref_mut() {
                        remember_whole(&p, c);
                    }
                    p
                }
                None => continue,
            },
        };
        for (policy, line, base, chunk) in parsed {
            let conditions =
                scope_conditions(&policy, &chunk, cache.as_deref_mut(), &mut same_conditions);
            if let Some(id) = admit(&rel, line, &policy, conditions, &mut meta, &mut errors) {
                origins.insert(id.clone(), (rel.clone(), base));
                if !chunk.is_empty() {
                    chunk_of.insert(id.clone(), chunk);
                }
                policies.push(policy.new_id(id));
            }
        }
        texts.insert(rel, text);
    }

    let revision = match read_revision(dir, &mut hasher) {
        Ok(r) => r,
        Err(e) => {
            errors.push(e);
            None
        }
    };

    // Entities.
    let entities = match read_entities(dir, &schema, &mut hasher, &mut size) {
        Ok(e) => e,
        Err(e) => {
            errors.extend(e);
            Entities::empty()
        }
    };

    drop(parsing);
    let mut set = PolicySet::new();
    for policy in policies {
        let id = policy.id().clone();
        if let Err(e) = set.add(policy) {
            let m = &meta[&id];
            errors.push(PolicyError::at(&m.file, m.line, e.to_string()));
        }
    }

    // Validated once all files parsed (errors would repeat), but not what the cache validated.
    let mut warnings = Vec::new();
    if errors.is_empty() {
        let _validating = tracing::debug_span!("policy.validate").entered();
        let mut to_validate = PolicySet::new();
        for policy in set.policies() {
            let cached = chunk_of
                .get(policy.id())
                .and_then(|chunk| cache.as_deref().and_then(|c| c.chunks.get(chunk)))
                .and_then(|c| c.validated.as_ref());
            match cached {
                Some(earlier) => {
                    let m = &meta[policy.id()];
                    warnings.extend(
                        earlier
                            .iter()
                            .map(|w| PolicyError::at(&m.file, m.line, w.clone())),
                    );
                }
                None => {
                    let _ = to_validate.add(policy.clone());
                }
            }
        }
        let results = halves::validate(&schema, &to_validate);
        let mut failed: HashMap<&PolicyId, ()> = HashMap::new();
        let mut new_warnings: HashMap<&PolicyId, Vec<String>> = HashMap::new();
        for e in results.iter().flat_map(ValidationResult::validation_errors) {
            failed.insert(e.policy_id(), ());
            errors.extend(located(e.policy_id(), e, &origins, &texts));
        }
        for w in results
            .iter()
            .flat_map(ValidationResult::validation_warnings)
        {
            let located = located(w.policy_id(), w, &origins, &texts);
            new_warnings
                .entry(w.policy_id())
                .or_default()
                .extend(located.iter().map(|e| e.message.clone()));
            warnings.extend(located);
        }
        if let Some(c) = cache.as_deref_mut() {
            for policy in to_validate.policies() {
                if failed.contains_key(policy.id()) {
                    continue;
                }
                if let Some(entry) = chunk_of.get(policy.id()).and_then(|k| c.chunks.get_mut(k)) {
                    entry.validated = Some(new_warnings.remove(policy.id()).unwrap_or_default());
                }
            }
        }
    }
    if let Some(c) = cache {
        c.chunks.retain(|_, p| p.used);
    }

    if !errors.is_empty() {
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert(e.to_string()));
        return Err(errors);
    }
    let digest = hasher.finalize();
    Ok(LoadedDir {
        version: hex::encode(&digest[..8]),
        revision,
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
        Err(e) => return Err(from_diagnostic(SCHEMA_FILE, Some(text), 0, &e)),
    };
    let schema = match Schema::from_cedarschema_str(text) {
        Ok((s, _)) => s,
        Err(e) => return Err(from_diagnostic(SCHEMA_FILE, Some(text), 0, &e)),
    };
    let shapes = SchemaShapes::from_fragment(fragment)
        .map_err(|m| vec![PolicyError::file(SCHEMA_FILE, m)])?;
    Ok((schema, shapes))
}

/// Parses a whole file at once; the cold path, and the one that reports syntax errors.
/// Yields each policy with its line, its text's start offset (0: offsets are file-relative)
/// and no cache key.
fn parse_whole(
    rel: &str,
    text: &str,
    errors: &mut Vec<PolicyError>,
) -> Option<Vec<(Policy, u32, usize, String)>> {
    let spans = policy_spans(text);
    if spans.len() >= halves::IN_HALVES_FROM {
        if let Some(parsed) = halves::parse(text, &spans) {
            return Some(parsed);
        }
    }
    let set = match PolicySet::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            errors.extend(from_diagnostic(rel, Some(text), 0, &e));
            return None;
        }
    };
    // Lines of each policy start, computed in one pass over the file.
    let lines = lines_of(text, &spans);
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
    // The source text of policy N, when the file splits into exactly the policies cedar saw.
    let aligned = spans.len() == set.policies().count() + set.templates().count();
    let chunk_for = |id: &PolicyId| -> String {
        id.to_string()
            .strip_prefix("policy")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|_| aligned)
            .and_then(|n| spans.get(n))
            .map(|&(start, end)| text[start..end].to_owned())
            .unwrap_or_default()
    };
    let mut parsed: Vec<(Policy, u32, usize, String)> = set
        .policies()
        .map(|p| (p.clone(), line_for(p.id()), 0, chunk_for(p.id())))
        .collect();
    parsed.sort_by_key(|(_, line, _, _)| *line);
    Some(parsed)
}

/// Parses a file policy by policy, reusing what the cache already holds. `None` when any
/// piece does not parse on its own: the caller then parses the whole file, which reports
/// errors exactly.
fn parse_chunks(text: &str, cache: &mut LoadCache) -> Option<Vec<(Policy, u32, usize, String)>> {
    let spans = policy_spans(text);
    let lines = lines_of(text, &spans);
    // A file mostly new to the cache parses faster whole.
    let usable = |c: &CachedPolicy| c.standalone || c.validated.is_some();
    let hits = spans
        .iter()
        .filter(|&&(start, end)| cache.chunks.get(&text[start..end]).is_some_and(usable))
        .count();
    if hits * 2 < spans.len() {
        return None;
    }
    let mut out = Vec::with_capacity(spans.len());
    for (i, &(start, end)) in spans.iter().enumerate() {
        let chunk = &text[start..end];
        let policy = match cache.chunks.get_mut(chunk).filter(|c| usable(c)) {
            Some(hit) => {
                hit.used = true;
                hit.policy.clone()
            }
            None => {
                let policy = Policy::parse(None, chunk).ok()?;
                cache.chunks.insert(
                    chunk.to_owned(),
                    CachedPolicy {
                        policy: policy.clone(),
                        standalone: true,
                        validated: None,
                        conditions: None,
                        used: true,
                    },
                );
                policy
            }
        };
        out.push((policy, lines[i], start, chunk.to_owned()));
    }
    Some(out)
}

/// Keeps the policies of a file parsed whole, for the next load. Such a policy's diagnostics
/// are relative to the file as it was, so it is reused only once validated (see `usable`).
fn remember_whole(parsed: &[(Policy, u32, usize, String)], cache: &mut LoadCache) {
    for (policy, _, _, chunk) in parsed {
        if chunk.is_empty() {
            continue;
        }
        cache
            .chunks
            .entry(chunk.clone())
            .and_modify(|c| c.used = true)
            .or_insert_with(|| CachedPolicy {
                policy: policy.clone(),
                standalone: false,
                validated: None,
                conditions: None,
                used: true,
            });
    }
}

/// What a permit's conditions require of scopes (`None` for a forbid): kept with the
/// policy's text in the cache, so a reload reads only changed policies again; read once per
/// distinct condition text in a load (reading costs a re-parse of the policy); a text that
/// never names `scopes` requires none without being read.
fn scope_conditions(
    policy: &Policy,
    chunk: &str,
    cache: Option<&mut LoadCache>,
    same: &mut HashMap<String, ScopeConditions>,
) -> Option<ScopeConditions> {
    if policy.effect() != Effect::Permit {
        return None;
    }
    let mut read = || {
        if !chunk.is_empty() && !chunk.contains("scopes") {
            return Some(ScopeConditions::none());
        }
        let conditions = conditions_text(chunk).filter(|_| !chunk.is_empty());
        if let Some(known) = conditions.and_then(|c| same.get(c)) {
            return Some(known.clone());
        }
        let read = policy.to_json().ok().map(|est| ScopeConditions::of(&est))?;
        if let Some(c) = conditions {
            same.insert(c.to_owned(), read.clone());
        }
        Some(read)
    };
    match cache.and_then(|c| c.chunks.get_mut(chunk)) {
        Some(cached) if !chunk.is_empty() => {
            if cached.conditions.is_none() {
                cached.conditions = read();
            }
            cached.conditions.clone()
        }
        _ => read(),
    }
}

/// Checks a parsed policy's `@id` and `@scopes` and records its metadata; returns its id.
fn admit(
    rel: &str,
    line: u32,
    policy: &Policy,
    derived: Option<ScopeConditions>,
    meta: &mut HashMap<PolicyId, PolicyMeta>,
    errors: &mut Vec<PolicyError>,
) -> Option<PolicyId> {
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
        return None;
    };
    if id.trim().is_empty() {
        errors.push(PolicyError::at(rel, line, "@id is empty"));
        return None;
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
        return None;
    }
    let annotated = match scopes_text.map(ScopeExpr::parse) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            errors.push(PolicyError::at(rel, line, e.to_string()));
            return None;
        }
        None => None,
    };
    // A permit's conditions say which scopes it needs; `@scopes` is optional, and must
    // say the same where the conditions can be read whole.
    let refuted = match (&annotated, &derived) {
        (Some(annotated), Some(derived)) => derived
            .refutes(annotated.alternatives())
            .map(|says| (annotated.source().to_owned(), says)),
        _ => None,
    };
    if let Some((source, says)) = refuted {
        errors.push(PolicyError::at(
            rel,
            line,
            format!("@scopes(\"{source}\") disagrees with the policy's conditions, which {says}"),
        ));
        return None;
    }
    let outputs = PolicyOutputs::read(policy)
        .map_err(|e| errors.push(PolicyError::at(rel, line, e)))
        .ok()?
        .map(std::sync::Arc::new);
    let scopes = match (annotated, derived) {
        (Some(annotated), _) => Some(annotated),
        (None, Some(derived)) if !derived.alternatives.is_empty() => {
            Some(ScopeExpr::from_alternatives(derived.alternatives))
        }
        (None, _) => None,
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
            outputs,
        },
    );
    Some(new_id)
}

fn located(
    id: &PolicyId,
    diag: &dyn miette::Diagnostic,
    origins: &Origins,
    texts: &HashMap<String, String>,
) -> Vec<PolicyError> {
    match origins.get(id) {
        Some((file, base)) => {
            from_diagnostic(file, texts.get(file).map(String::as_str), *base, diag)
        }
        None => from_diagnostic("<policies>", None, 0, diag),
    }
}
