//! The files of a policy directory: which are read, their names relative to it, and how
//! each adds to the set's version hash.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::load::PROPERTIES_DIR;

/// Directory depth beyond which the walk stops (protects against symlink loops).
const MAX_DEPTH: usize = 16;

/// Every `*.cedar` file below `dir` (following links, skipping hidden names and the
/// properties folder at the root).
pub(super) fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), String> {
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
            if depth == 0 && name == PROPERTIES_DIR {
                continue;
            }
            walk(root, &path, depth + 1, out)?;
        } else if path.extension().is_some_and(|e| e == "cedar") {
            out.push(path);
        }
    }
    Ok(())
}

/// A file's name relative to the policy directory, with `/` separators.
pub(super) fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Adds a file, by name and content, to the set's version hash.
pub(crate) fn hash_file(hasher: &mut Sha256, name: &str, content: impl AsRef<[u8]>) {
    let content = content.as_ref();
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update((content.len() as u64).to_le_bytes());
    hasher.update(content);
}
