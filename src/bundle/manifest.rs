//! The two JSON files of a Cedar RFC 0101 policy store that describe it: `metadata.json`
//! (which store, which revision) and `manifest.json` (every other file with its size and
//! SHA-256). A bundle is verified file by file against its manifest, and signed over the
//! manifest's exact bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BundleError;

/// The store's description, `metadata.json`.
pub const METADATA_FILE: &str = "metadata.json";
/// Every file's size and checksum, `manifest.json`.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The detached signature over `manifest.json` (Arbiter's addition to the layout).
pub const SIGNATURE_FILE: &str = "manifest.jws";

/// `metadata.json`: the Cedar language version and the store's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The Cedar language version the policies are written for.
    pub cedar_version: String,
    /// Which store, and which revision of it.
    pub policy_store: StoreInfo,
}

/// The `policy_store` object of `metadata.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// A stable identifier of the store (the same for every revision).
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// What the store is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The revision: what replicas report and decisions carry.
    pub version: String,
    /// When the store was first made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date: Option<String>,
    /// When this revision was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_date: Option<String>,
}

/// `manifest.json`: every file of the bundle but the manifest and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The `policy_store.id` of `metadata.json`.
    pub policy_store_id: String,
    /// When the manifest was written (RFC 3339).
    pub generated_date: String,
    /// Each file by its path (`/`-separated, relative to the store's root).
    pub files: BTreeMap<String, FileEntry>,
}

/// One file's size and checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Length in bytes.
    pub size: u64,
    /// `sha256:` and the lower-case hex digest.
    pub checksum: String,
}

impl FileEntry {
    /// The entry that describes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            size: bytes.len() as u64,
            checksum: checksum(bytes),
        }
    }
}

/// `sha256:` and the hex digest of `bytes`, as manifests write checksums.
pub fn checksum(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The first 16 hex digits of the SHA-256 of `bytes`: a short name for content (a store id,
/// a written-out bundle's directory, a revision no one named).
pub fn short_checksum(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

impl Manifest {
    /// Parses `manifest.json`.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        serde_json::from_slice(bytes)
            .map_err(|e| BundleError::Manifest(format!("`{MANIFEST_FILE}`: {e}")))
    }

    /// Checks that `files` are exactly the files listed, each with its size and checksum.
    /// A file present but not listed is refused too: it would be loaded without being signed.
    pub fn check<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a String, &'a Vec<u8>)>,
    ) -> Result<(), BundleError> {
        let mut seen = std::collections::BTreeSet::new();
        for (path, bytes) in files {
            let entry = self
                .files
                .get(path)
                .ok_or_else(|| BundleError::Unlisted(path.clone()))?;
            if !entry.checksum.starts_with("sha256:") {
                return Err(BundleError::Manifest(format!(
                    "`{path}`: the checksum is not `sha256:…`"
                )));
            }
            if entry.size != bytes.len() as u64 || entry.checksum != checksum(bytes) {
                return Err(BundleError::Checksum(path.clone()));
            }
            seen.insert(path.as_str());
        }
        match self.files.keys().find(|p| !seen.contains(p.as_str())) {
            Some(absent) => Err(BundleError::Missing(absent.clone())),
            None => Ok(()),
        }
    }
}

impl Metadata {
    /// Parses `metadata.json`.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        serde_json::from_slice(bytes)
            .map_err(|e| BundleError::Manifest(format!("`{METADATA_FILE}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_of(files: &BTreeMap<String, Vec<u8>>) -> Manifest {
        Manifest {
            policy_store_id: "s".into(),
            generated_date: "2026-12-07T00:00:00Z".into(),
            files: files
                .iter()
                .map(|(p, b)| (p.clone(), FileEntry::of(b)))
                .collect(),
        }
    }

    #[test]
    fn checks_every_file_both_ways() {
        let mut files = BTreeMap::new();
        files.insert("a.cedar".to_string(), b"permit".to_vec());
        files.insert("schema.cedarschema".to_string(), b"entity A;".to_vec());
        let manifest = manifest_of(&files);
        manifest.check(&files).unwrap();

        let mut changed = files.clone();
        changed.get_mut("a.cedar").unwrap()[0] ^= 1;
        assert!(
            matches!(manifest.check(&changed), Err(BundleError::Checksum(p)) if p == "a.cedar")
        );

        let mut extra = files.clone();
        extra.insert("b.cedar".into(), b"forbid".to_vec());
        assert!(matches!(manifest.check(&extra), Err(BundleError::Unlisted(p)) if p == "b.cedar"));

        let mut fewer = files.clone();
        fewer.remove("a.cedar");
        assert!(matches!(
            manifest.check(&fewer),
            Err(BundleError::Missing(_))
        ));
    }

    #[test]
    fn checksum_is_the_rfc_form() {
        assert_eq!(
            checksum(b"hello world"),
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
