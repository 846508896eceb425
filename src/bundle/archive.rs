//! A bundle's files in and out of a zip archive (`.cjar`), and in from a directory. Reading
//! trusts nothing the archive says: names must be plain relative paths, links and
//! duplicates are refused, and sizes are counted as bytes come out, not taken from headers.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use super::BundleError;

/// Files in one bundle, at most.
pub const MAX_FILES: usize = 10_000;
/// Bytes of one bundle once unpacked, at most (the policy set's own bound).
pub const MAX_UNPACKED_BYTES: u64 = crate::policy::bounds::MAX_SET_BYTES as u64;
/// Directory depth of a name, at most.
const MAX_DEPTH: usize = 16;

/// The files of an archive by name. Directories are implied by names and not listed.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Whether `name` is a plain relative path: `/`-separated, no empty, `.` or `..` part, no
/// backslash, drive, control character, or hidden (dot) component.
pub fn safe_name(name: &str) -> Result<(), BundleError> {
    let bad = |why: &str| {
        Err(BundleError::Path(format!(
            "`{}`: {why}",
            name.escape_debug()
        )))
    };
    if name.is_empty() || name.len() > 512 {
        return bad("empty or longer than 512 bytes");
    }
    if name.starts_with('/') || name.contains('\\') || name.contains(':') {
        return bad("not a relative `/`-separated path");
    }
    if name.chars().any(char::is_control) {
        return bad("control character");
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > MAX_DEPTH {
        return bad("nested too deep");
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return bad("empty, `.` or `..` component");
    }
    if parts.iter().any(|p| p.starts_with('.')) {
        return bad("hidden component");
    }
    Ok(())
}

/// Reads every file of a zip archive, within [`MAX_FILES`] and [`MAX_UNPACKED_BYTES`].
pub fn read_zip(bytes: &[u8]) -> Result<Files, BundleError> {
    let archive_error = |e: zip::result::ZipError| BundleError::Archive(e.to_string());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(archive_error)?;
    if archive.len() > MAX_FILES {
        return Err(BundleError::TooLarge(format!(
            "{} entries (at most {MAX_FILES})",
            archive.len()
        )));
    }
    let mut files = Files::new();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(archive_error)?;
        let name = entry.name().map_err(archive_error)?.into_owned();
        if entry.is_dir() {
            safe_name(name.trim_end_matches('/'))?;
            continue;
        }
        if entry.is_symlink() {
            return Err(BundleError::Path(format!(
                "`{}`: a link",
                name.escape_debug()
            )));
        }
        safe_name(&name)?;
        let left = MAX_UNPACKED_BYTES - total;
        let mut content = Vec::new();
        entry
            .by_ref()
            .take(left + 1)
            .read_to_end(&mut content)
            .map_err(|e| BundleError::Archive(format!("`{}`: {e}", name.escape_debug())))?;
        total += content.len() as u64;
        if total > MAX_UNPACKED_BYTES {
            return Err(BundleError::TooLarge(format!(
                "more than {MAX_UNPACKED_BYTES} bytes unpacked"
            )));
        }
        if files.insert(name.clone(), content).is_some() {
            return Err(BundleError::Path(format!(
                "`{}`: twice in the archive",
                name.escape_debug()
            )));
        }
    }
    Ok(files)
}

/// The entries of `files`, as the writers take them.
pub fn entries(files: &Files) -> impl Iterator<Item = (&str, &[u8])> {
    files.iter().map(|(n, c)| (n.as_str(), c.as_slice()))
}

/// Writes `files` as a zip archive (deflated, in the order given, with a fixed timestamp so
/// the same files always make the same bytes).
pub fn write_zip<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<u8>, BundleError> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let archive_error = |e: zip::result::ZipError| BundleError::Archive(e.to_string());
    for (name, content) in files {
        out.start_file(name, options).map_err(archive_error)?;
        out.write_all(content)
            .map_err(|e| BundleError::Archive(e.to_string()))?;
    }
    Ok(out.finish().map_err(archive_error)?.into_inner())
}

/// Reads every regular, non-hidden file below `dir` (links followed, as the policy
/// loader follows them), within the same bounds as an archive.
pub fn read_dir(dir: &Path) -> Result<Files, BundleError> {
    let mut files = Files::new();
    let mut total = 0u64;
    walk(dir, dir, 0, &mut files, &mut total)?;
    Ok(files)
}

fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    files: &mut Files,
    total: &mut u64,
) -> Result<(), BundleError> {
    let io = |p: &Path, e: std::io::Error| BundleError::Io(format!("{}: {e}", p.display()));
    if depth > MAX_DEPTH {
        return Err(BundleError::Path(format!(
            "{}: nested too deep",
            dir.display()
        )));
    }
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a dangling link, as the policy loader skips it
        };
        if meta.is_dir() {
            walk(root, &path, depth + 1, files, total)?;
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        safe_name(&rel)?;
        *total += meta.len();
        if files.len() >= MAX_FILES || *total > MAX_UNPACKED_BYTES {
            return Err(BundleError::TooLarge(format!(
                "{}: more than {MAX_FILES} files or {MAX_UNPACKED_BYTES} bytes",
                root.display()
            )));
        }
        files.insert(rel, std::fs::read(&path).map_err(|e| io(&path, e))?);
    }
    Ok(())
}

/// Writes `files` below `dir` (created private), refusing any unsafe name.
pub fn write_dir<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    dir: &Path,
) -> Result<(), BundleError> {
    let io = |p: &Path, e: std::io::Error| BundleError::Io(format!("{}: {e}", p.display()));
    crate::store::create_private_dir(dir).map_err(|e| io(dir, e))?;
    for (name, content) in files {
        safe_name(name)?;
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, content).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain_relative_paths() {
        for ok in ["a.cedar", "policies/x.cedar", "entities/users.json"] {
            safe_name(ok).unwrap();
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "c:x",
            ".hidden",
            "a/.git/config",
            "a\nb",
        ] {
            assert!(safe_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn zip_round_trips_and_is_reproducible() {
        let mut files = Files::new();
        files.insert("schema.cedarschema".into(), b"entity A;".to_vec());
        files.insert(
            "policies/a.cedar".into(),
            b"permit(principal,action,resource);".to_vec(),
        );
        let bytes = write_zip(entries(&files)).unwrap();
        assert_eq!(read_zip(&bytes).unwrap(), files);
        assert_eq!(write_zip(entries(&files)).unwrap(), bytes);
    }

    #[test]
    fn refuses_escaping_names_and_truncation() {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        out.start_file("../escape.cedar", zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(b"x").unwrap();
        let bytes = out.finish().unwrap().into_inner();
        assert!(matches!(read_zip(&bytes), Err(BundleError::Path(_))));

        let mut files = Files::new();
        files.insert("a.cedar".into(), vec![b'a'; 4096]);
        let whole = write_zip(entries(&files)).unwrap();
        for cut in [1, whole.len() / 2, whole.len() - 1] {
            assert!(read_zip(&whole[..cut]).is_err(), "cut at {cut} read");
        }
    }
}
