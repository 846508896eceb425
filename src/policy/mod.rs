//! The policy directory: loading, validating and indexing it into an immutable
//! [`PolicySnapshot`], and the [`LivePolicies`] that swaps whole snapshots so readers never
//! block and never see half a set.
//!
//! This module knows nothing of tokens or transports.

pub mod bounds;
mod data_files;
mod error;
mod files;
pub mod format;
mod halves;
mod index;
mod live;
mod load;
mod meta;
pub mod outputs;
pub mod path;
pub mod query;
mod reads;
mod resource_index;
mod scope_conditions;
mod scope_index;
pub mod scopes;
mod shape;
mod spans;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cedar_policy::{Entities, PolicyId, PolicySet, Schema};

pub use error::{LoadError, PolicyError};
pub(crate) use files::hash_file;
pub use index::{endpoint_uid, Endpoint, RouteMatch, RouteTable, ENDPOINT_TYPE};
pub use live::{
    reload_in_background, LivePolicies, ReloadCounters, ReloadOutcome, ReloadResult, ReloadStatus,
    Reloaded, Trigger, RELOAD_HISTORY,
};
pub use load::{
    policy_texts, PolicyMeta, ENTITIES_DIR, ENTITIES_FILE, METADATA_FILE, PROPERTIES_DIR,
    SCHEMA_FILE,
};
pub use reads::{context_reads, ContextReads};
pub use resource_index::ResourceIndex;
pub use scope_index::{ScopeIndex, SCOPE_TYPE};
pub use shape::{AttrType, RecordShape, SchemaShapes};
pub use watch::watch;

/// One loaded, validated and indexed policy directory. Immutable once built.
#[derive(Debug)]
pub struct PolicySnapshot {
    /// Content hash of every file that makes up the set.
    pub version: String,
    /// What replicas report and decisions carry: the bundle's (or `metadata.json`'s)
    /// revision, or else the content hash.
    pub revision: String,
    /// The directory it was read from.
    pub source: PathBuf,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// The schema every policy validated against.
    pub schema: Schema,
    /// Context and entity shapes read from the schema.
    pub shapes: SchemaShapes,
    /// The whole policy set.
    pub policies: PolicySet,
    /// Where each policy is written and its parsed annotations.
    pub meta: HashMap<PolicyId, PolicyMeta>,
    /// Static entities from `entities.json`.
    pub entities: Entities,
    /// Route templates and the policy slice of each.
    pub routes: RouteTable,
    /// Policy slices for issuing scopes at the token endpoint.
    pub scopes: ScopeIndex,
    /// Policies by the entity type of a named resource (neither endpoint nor scope).
    pub resources: ResourceIndex,
    /// Validator warnings, kept for status and logs.
    pub warnings: Vec<PolicyError>,
    /// Every header name a policy of the set can set (sorted): a client's own copies of
    /// them are dropped on every forwarded request, whichever policy decided it.
    pub output_headers: Vec<String>,
    /// The issuer each `User`/`Client` of `entities.json` belongs to (its `iss` attribute):
    /// a token's principal gets that entity only from that issuer.
    entity_issuers: HashMap<cedar_policy::EntityUid, String>,
    /// Facts for policy queries, built on first use (or right after the snapshot goes live).
    query_index: std::sync::OnceLock<query::QueryIndex>,
}

impl PolicySnapshot {
    /// Reads, validates and indexes a policy directory.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        Self::load_with(dir, None, None)
    }

    /// Like [`PolicySnapshot::load`], reusing (and refreshing) what `cache` holds from earlier
    /// loads: unchanged policies are neither parsed nor validated again, and the endpoints
    /// of `previous` that come out the same are shared rather than built again.
    pub(crate) fn load_with(
        dir: &Path,
        cache: Option<&mut load::LoadCache>,
        previous: Option<&PolicySnapshot>,
    ) -> Result<Self, LoadError> {
        bounds::with_load_stack(|| Self::load_bounded(dir, cache, previous))
    }

    /// The load itself, on a thread with the stack [`bounds`] sizes for it.
    fn load_bounded(
        dir: &Path,
        cache: Option<&mut load::LoadCache>,
        previous: Option<&PolicySnapshot>,
    ) -> Result<Self, LoadError> {
        let fail = |errors| LoadError {
            dir: dir.to_path_buf(),
            errors,
        };
        let loaded = load::load_dir(dir, cache).map_err(fail)?;
        let _indexing = tracing::debug_span!("policy.index").entered();
        let routes = RouteTable::build(
            &loaded.policies,
            &loaded.meta,
            &loaded.entities,
            previous.map(|p| &p.routes),
        )
        .map_err(fail)?;
        let scopes = ScopeIndex::build(&loaded.policies)
            .map_err(|m| fail(vec![PolicyError::file("<index>", m)]))?;
        let resources = ResourceIndex::build(&loaded.policies)
            .map_err(|m| fail(vec![PolicyError::file("<index>", m)]))?;
        let entity_issuers = entity_issuers(&loaded.entities);
        let mut output_headers: Vec<String> = loaded
            .meta
            .values()
            .filter_map(|m| m.outputs.as_deref())
            .flat_map(|o| o.headers.keys().cloned())
            .collect();
        output_headers.sort();
        output_headers.dedup();
        Ok(Self {
            output_headers,
            entity_issuers,
            revision: loaded.revision.unwrap_or_else(|| loaded.version.clone()),
            version: loaded.version,
            source: dir.to_path_buf(),
            loaded_at: SystemTime::now(),
            schema: loaded.schema,
            shapes: loaded.shapes,
            policies: loaded.policies,
            meta: loaded.meta,
            entities: loaded.entities,
            routes,
            scopes,
            resources,
            warnings: loaded.warnings,
            query_index: std::sync::OnceLock::new(),
        })
    }

    /// The facts policy queries run over, indexed once per snapshot.
    pub fn query_index(&self) -> &query::QueryIndex {
        self.query_index
            .get_or_init(|| bounds::with_load_stack(|| query::QueryIndex::build(self)))
    }

    /// Whether `entities.json` describes `uid` as a principal of `issuer`: the entity exists
    /// and its `iss` attribute names that issuer. Entities bound to no issuer describe no
    /// token's principal (only subjects a policy enforcement point asserts, e.g. AuthZEN's).
    pub fn entity_bound_to(&self, uid: &cedar_policy::EntityUid, issuer: &str) -> bool {
        self.entity_issuers.get(uid).is_some_and(|i| i == issuer)
    }

    /// Number of policies in the set.
    pub fn policy_count(&self) -> usize {
        self.meta.len()
    }
}

/// The attribute of a `User` or `Client` in `entities.json` naming the issuer it belongs to.
pub const ISSUER_ATTRIBUTE: &str = "iss";

/// `iss` of every `User` and `Client` entity that has one.
fn entity_issuers(entities: &Entities) -> HashMap<cedar_policy::EntityUid, String> {
    entities
        .iter()
        .filter(|e| matches!(e.uid().type_name().basename(), "User" | "Client"))
        .filter_map(|e| match e.attr(ISSUER_ATTRIBUTE) {
            Some(Ok(cedar_policy::EvalResult::String(iss))) => Some((e.uid(), iss)),
            _ => None,
        })
        .collect()
}

/// A copy of the bundled policy directory (its files, not `tests/` or `properties/`), for
/// tests that change it.
#[cfg(test)]
pub(crate) fn bundled_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}
