//! Policy bundles: a policy directory packed as a Cedar RFC 0101 policy store (a `.cjar`
//! zip archive with `metadata.json` and `manifest.json`), plus a detached signature over the
//! manifest. A bundle is built from a directory, checked file by file and signature first,
//! and only then written out as a directory the policy loader reads; a bundle that fails any
//! check is refused whole.

pub mod archive;
pub mod manifest;
pub mod signature;
pub mod source;

use std::path::Path;

use archive::Files;
use manifest::{
    FileEntry, Manifest, Metadata, StoreInfo, MANIFEST_FILE, METADATA_FILE, SIGNATURE_FILE,
};

use crate::token::jwks::KeySet;
use crate::token::keys::SigningKey;

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not a readable zip archive (truncated, corrupt).
    #[error("not a readable bundle archive: {0}")]
    Archive(String),
    /// A file name that would land outside the bundle, or is otherwise not plain.
    #[error("unsafe file name {0}")]
    Path(String),
    /// Past a size bound.
    #[error("bundle too large: {0}")]
    TooLarge(String),
    /// `manifest.json` or `metadata.json` missing or malformed.
    #[error("bad manifest: {0}")]
    Manifest(String),
    /// A file whose size or checksum differs from the manifest.
    #[error("`{0}` does not match its checksum in the manifest")]
    Checksum(String),
    /// A file the manifest does not list.
    #[error("`{0}` is in the bundle but not in its manifest")]
    Unlisted(String),
    /// A file the manifest lists that is absent.
    #[error("`{0}` is in the manifest but not in the bundle")]
    Missing(String),
    /// No signature, and unsigned bundles are not allowed.
    #[error("the bundle is not signed (`{SIGNATURE_FILE}` is missing) and unsigned bundles are not allowed")]
    Unsigned,
    /// Signed by a key the configured key set does not hold.
    #[error("signed with key `{0}`, which is not among the trusted bundle keys")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("invalid signature: {0}")]
    Signature(String),
    /// Reading or writing files.
    #[error("{0}")]
    Io(String),
    /// Fetching from the source.
    #[error("cannot fetch the bundle: {0}")]
    Fetch(String),
}

/// What a replica trusts a bundle by.
#[derive(Debug, Default, Clone)]
pub struct Trust {
    /// The keys bundle signatures must verify with.
    pub keys: Option<std::sync::Arc<KeySet>>,
    /// Accept bundles without a signature (only when explicitly configured).
    pub allow_unsigned: bool,
}

impl Trust {
    /// Trust from a JWKS file, or none (unsigned bundles only if `allow_unsigned`).
    pub fn from_jwks_file(path: Option<&Path>, allow_unsigned: bool) -> Result<Self, BundleError> {
        let keys = match path {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| BundleError::Io(format!("{}: {e}", path.display())))?;
                let (keys, _skipped) = KeySet::from_jwks(&bytes)
                    .map_err(|e| BundleError::Signature(format!("{}: {e}", path.display())))?;
                Some(std::sync::Arc::new(keys))
            }
            None => None,
        };
        Ok(Self {
            keys,
            allow_unsigned,
        })
    }
}

/// A bundle's files with its manifest, metadata and signature, as read (not yet checked).
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Every file but the manifest and the signature.
    pub files: Files,
    /// `manifest.json` exactly as stored (the signature covers these bytes).
    pub manifest_bytes: Vec<u8>,
    /// `manifest.json`, parsed.
    pub manifest: Manifest,
    /// `metadata.json`, parsed, when present.
    pub metadata: Option<Metadata>,
    /// `manifest.jws`, when present.
    pub signature: Option<String>,
}

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The bundle.
    pub bundle: Bundle,
    /// The revision it carries.
    pub revision: String,
    /// The `kid` of the key that signed it (`None`: unsigned, allowed by configuration).
    pub signed_by: Option<String>,
    /// A short checksum of its manifest: the same for the same bundle, whatever its revision.
    pub digest: String,
}

impl Bundle {
    /// Packs the policy directory `dir`: every non-hidden file, `metadata.json` (kept from
    /// the directory if it has one, with `revision` as its version) and a manifest of them.
    pub fn build(dir: &Path, revision: Option<&str>) -> Result<Self, BundleError> {
        let mut files = archive::read_dir(dir)?;
        files.remove(MANIFEST_FILE);
        files.remove(SIGNATURE_FILE);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let metadata = match files.get(METADATA_FILE) {
            Some(bytes) => {
                let mut m = Metadata::parse(bytes)?;
                if let Some(r) = revision {
                    m.policy_store.version = r.to_owned();
                }
                m.policy_store.updated_date = Some(now.clone());
                m
            }
            None => {
                let name = dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| "policies".into());
                // Without a given revision, the content names it.
                let content = content_digest(&files);
                Metadata {
                    cedar_version: cedar_policy::get_lang_version().to_string(),
                    policy_store: StoreInfo {
                        id: manifest::short_checksum(name.as_bytes()),
                        name,
                        description: None,
                        version: revision.map_or(content, str::to_owned),
                        created_date: Some(now.clone()),
                        updated_date: Some(now.clone()),
                    },
                }
            }
        };
        let metadata_bytes = serde_json::to_vec_pretty(&metadata)
            .map_err(|e| BundleError::Manifest(e.to_string()))?;
        files.insert(METADATA_FILE.to_owned(), metadata_bytes);
        let manifest = Manifest {
            policy_store_id: metadata.policy_store.id.clone(),
            generated_date: now,
            files: files
                .iter()
                .map(|(p, b)| (p.clone(), FileEntry::of(b)))
                .collect(),
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BundleError::Manifest(e.to_string()))?;
        Ok(Self {
            files,
            manifest_bytes,
            manifest,
            metadata: Some(metadata),
            signature: None,
        })
    }

    /// Signs the manifest with `key`.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), BundleError> {
        self.signature = Some(signature::sign(
            key,
            &self.manifest_bytes,
            &self.revision(),
            &self.manifest.policy_store_id,
        )?);
        Ok(())
    }

    /// Reads a `.cjar` archive.
    pub fn from_zip(bytes: &[u8]) -> Result<Self, BundleError> {
        Self::from_files(archive::read_zip(bytes)?)
    }

    /// Reads an RFC 0101 store kept as a directory (it must have its `manifest.json`).
    pub fn from_dir(dir: &Path) -> Result<Self, BundleError> {
        Self::from_files(archive::read_dir(dir)?)
    }

    fn from_files(mut files: Files) -> Result<Self, BundleError> {
        let manifest_bytes = files
            .remove(MANIFEST_FILE)
            .ok_or_else(|| BundleError::Manifest(format!("no `{MANIFEST_FILE}`")))?;
        let manifest = Manifest::parse(&manifest_bytes)?;
        let signature = files
            .remove(SIGNATURE_FILE)
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned());
        let metadata = files
            .get(METADATA_FILE)
            .map(|b| Metadata::parse(b))
            .transpose()?;
        Ok(Self {
            files,
            manifest_bytes,
            manifest,
            metadata,
            signature,
        })
    }

    /// The archive bytes (`.cjar`).
    pub fn to_zip(&self) -> Result<Vec<u8>, BundleError> {
        let signature = self
            .signature
            .as_ref()
            .map(|jws| (SIGNATURE_FILE, jws.as_bytes()));
        archive::write_zip(
            archive::entries(&self.files)
                .chain([(MANIFEST_FILE, self.manifest_bytes.as_slice())])
                .chain(signature),
        )
    }

    /// The revision: `metadata.json`'s version, or else a digest of the manifest.
    pub fn revision(&self) -> String {
        match &self.metadata {
            Some(m) => m.policy_store.version.clone(),
            None => manifest::short_checksum(&self.manifest_bytes),
        }
    }

    /// Checks every file against the manifest, then the signature against `trust`.
    pub fn verify(self, trust: &Trust) -> Result<Verified, BundleError> {
        self.manifest.check(&self.files)?;
        let signed_by = match (&self.signature, &trust.keys) {
            (Some(jws), Some(keys)) => {
                let (kid, claims) = signature::verify(jws, &self.manifest_bytes, keys)?;
                if claims.revision != self.revision() {
                    return Err(BundleError::Signature(format!(
                        "it signs revision `{}`, but the bundle says `{}`",
                        claims.revision,
                        self.revision()
                    )));
                }
                Some(kid)
            }
            (None, Some(_)) if !trust.allow_unsigned => return Err(BundleError::Unsigned),
            (_, None) if !trust.allow_unsigned => {
                return Err(BundleError::Signature(
                    "no bundle keys are configured to verify it with".into(),
                ))
            }
            _ => None,
        };
        Ok(Verified {
            revision: self.revision(),
            digest: manifest::short_checksum(&self.manifest_bytes),
            bundle: self,
            signed_by,
        })
    }
}

impl Verified {
    /// Writes the bundle as a policy directory the loader reads (`manifest.json` and the
    /// signature included, for whoever inspects it later).
    pub fn write_dir(&self, dir: &Path) -> Result<(), BundleError> {
        archive::write_dir(
            archive::entries(&self.bundle.files)
                .chain([(MANIFEST_FILE, self.bundle.manifest_bytes.as_slice())]),
            dir,
        )
    }
}

/// A short digest naming a set of files by content, by the policy set's own hash rule.
fn content_digest(files: &Files) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, bytes) in files {
        crate::policy::hash_file(&mut h, name, bytes);
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::signature::{generate_signing_key, read_signing_key};
    use jsonwebtoken::Algorithm;

    fn signed_bundled(revision: &str) -> (Vec<u8>, Trust) {
        let dir = crate::policy::bundled_copy();
        let (pem, jwks) = generate_signing_key(Algorithm::ES256).unwrap();
        let keys = tempfile::tempdir().unwrap();
        std::fs::write(keys.path().join("k.pem"), pem).unwrap();
        let key = read_signing_key(&keys.path().join("k.pem")).unwrap();
        let mut b = Bundle::build(dir.path(), Some(revision)).unwrap();
        b.sign(&key).unwrap();
        let trust = Trust {
            keys: Some(std::sync::Arc::new(
                KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap().0,
            )),
            allow_unsigned: false,
        };
        (b.to_zip().unwrap(), trust)
    }

    #[test]
    fn a_built_bundle_verifies_and_loads() {
        let (zip, trust) = signed_bundled("r1");
        let verified = Bundle::from_zip(&zip).unwrap().verify(&trust).unwrap();
        assert_eq!(verified.revision, "r1");
        assert!(verified.signed_by.is_some());
        let out = tempfile::tempdir().unwrap();
        verified.write_dir(&out.path().join("r1")).unwrap();
        let snapshot = crate::policy::PolicySnapshot::load(&out.path().join("r1")).unwrap();
        assert_eq!(snapshot.revision, "r1");
        assert!(snapshot.policy_count() > 0);
    }

    #[test]
    fn every_tampering_is_refused() {
        let (zip, trust) = signed_bundled("r1");
        // One byte changed anywhere: the archive, a checksum or the signature gives way.
        for at in [zip.len() / 3, zip.len() / 2, zip.len() - 30] {
            let mut bad = zip.clone();
            bad[at] ^= 0x20;
            let result = Bundle::from_zip(&bad).and_then(|b| b.verify(&trust));
            assert!(result.is_err(), "byte {at} changed and still verified");
        }
        // Unsigned, with keys configured.
        let mut unsigned = Bundle::from_zip(&zip).unwrap();
        unsigned.signature = None;
        assert!(matches!(
            unsigned.clone().verify(&trust),
            Err(BundleError::Unsigned)
        ));
        let allowed = Trust {
            keys: None,
            allow_unsigned: true,
        };
        unsigned.verify(&allowed).unwrap();
        // A file added after signing.
        let mut added = Bundle::from_zip(&zip).unwrap();
        added.files.insert(
            "sneaky.cedar".into(),
            b"permit(principal,action,resource);".to_vec(),
        );
        assert!(matches!(
            added.verify(&trust),
            Err(BundleError::Unlisted(_))
        ));
    }
}
