//! The data files of a policy directory besides its policies: the entities (`entities.json`,
//! and a Cedar RFC 0101 store's `entities/*.json`) and the store's description
//! (`metadata.json`, whose version is the set's revision). Each adds to the version hash.

use std::path::Path;

use cedar_policy::{Entities, Schema};
use sha2::Sha256;

use super::bounds::{self, SetSize};
use super::error::{from_diagnostic, PolicyError};
use super::files::hash_file;
use super::load::{ENTITIES_DIR, ENTITIES_FILE, METADATA_FILE};

/// `entities.json` and, as in a Cedar RFC 0101 policy store, every `entities/*.json` (each
/// a JSON array of entities or an object of them by id), as one set (none: empty). Each
/// file's size and hierarchy are checked before Cedar reads it.
pub(super) fn read_entities(
    dir: &Path,
    schema: &Schema,
    hasher: &mut Sha256,
    size: &mut SetSize,
) -> Result<Entities, Vec<PolicyError>> {
    let mut names = Vec::new();
    if dir.join(ENTITIES_FILE).exists() {
        names.push(ENTITIES_FILE.to_owned());
    }
    if let Ok(listing) = std::fs::read_dir(dir.join(ENTITIES_DIR)) {
        let mut more: Vec<String> = listing
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .map(|n| format!("{ENTITIES_DIR}/{n}"))
            .collect();
        more.sort();
        names.extend(more);
    }
    if names.is_empty() {
        return Ok(Entities::empty());
    }
    let mut all = Vec::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name))
            .map_err(|e| vec![PolicyError::file(name, format!("cannot read: {e}"))])?;
        hash_file(hasher, name, &text);
        size.add(name, &text)
            .and_then(|()| bounds::check_entities(name, &text))
            .map_err(|e| vec![e])?;
        if names.len() == 1 && name == ENTITIES_FILE {
            return Entities::from_json_str(&text, Some(schema))
                .map_err(|e| from_diagnostic(name, None, 0, &e));
        }
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(list)) => all.extend(list),
            Ok(serde_json::Value::Object(by_id)) if name != ENTITIES_FILE => {
                all.extend(by_id.into_iter().map(|(_, e)| e));
            }
            Ok(_) => {
                return Err(vec![PolicyError::file(
                    name,
                    "not a JSON array of entities (or, under `entities/`, an object of them)",
                )])
            }
            Err(e) => return Err(vec![PolicyError::file(name, e.to_string())]),
        }
    }
    Entities::from_json_value(serde_json::Value::Array(all), Some(schema))
        .map_err(|e| from_diagnostic(&names.join(", "), None, 0, &e))
}

/// The revision `metadata.json` names (`policy_store.version`, as a Cedar RFC 0101 policy
/// store and Arbiter's bundles write it), hashed into the set's version with its file.
pub(super) fn read_revision(
    dir: &Path,
    hasher: &mut Sha256,
) -> Result<Option<String>, PolicyError> {
    let Ok(text) = std::fs::read_to_string(dir.join(METADATA_FILE)) else {
        return Ok(None);
    };
    hash_file(hasher, METADATA_FILE, &text);
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| PolicyError::file(METADATA_FILE, e.to_string()))?;
    match value.pointer("/policy_store/version") {
        Some(serde_json::Value::String(v)) if !v.is_empty() && v.len() <= 128 => {
            Ok(Some(v.clone()))
        }
        None => Ok(None),
        Some(_) => Err(PolicyError::file(
            METADATA_FILE,
            "`policy_store.version` must be a string of 1 to 128 characters",
        )),
    }
}
