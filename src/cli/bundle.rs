//! `arbiter bundle`: pack a policy directory as a signed bundle, verify one, look inside one,
//! and make a signing key for them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use arbiter::bundle::signature::{generate_signing_key, read_signing_key};
use arbiter::bundle::{Bundle, Trust};
use clap::Subcommand;
use serde_json::{json, Value};

use super::OutputArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum BundleCommand {
    /// Pack a policy directory (policies, schema, entities, tests, properties) as a Cedar
    /// RFC 0101 policy store archive (`.cjar`) with a manifest, signed with --sign.
    Build {
        /// The policy directory.
        dir: PathBuf,
        /// Where to write the bundle.
        #[arg(short, long)]
        output: PathBuf,
        /// The revision replicas report [default: the directory's `metadata.json` version,
        /// or a digest of the content].
        #[arg(long)]
        revision: Option<String>,
        /// The private key (PKCS#8 PEM: P-256, Ed25519 or RSA) to sign the manifest with.
        #[arg(long)]
        sign: Option<PathBuf>,
        /// Build without checking that the policies load (they are checked by default).
        #[arg(long)]
        no_check: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Check a bundle (a `.cjar` file, or an RFC 0101 store directory) file by file against
    /// its manifest and its signature against a key set; exit 1 if anything fails.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// The JWKS of trusted bundle keys.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Accept a bundle without a signature.
        #[arg(long)]
        allow_unsigned: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// What a bundle holds: revision, store, signer's key id, files with sizes and checksums.
    Inspect {
        /// The bundle.
        bundle: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// A new bundle signing key (PKCS#8 PEM) and the JWKS replicas trust it by.
    Keygen {
        /// ES256, EdDSA or RS256.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Where to write the private key (created 0600).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the public JWKS.
        #[arg(long)]
        jwks: PathBuf,
    },
}

pub(crate) fn bundle(cmd: BundleCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BundleCommand::Build {
            dir,
            output,
            revision,
            sign,
            no_check,
            out,
        } => {
            if !no_check {
                arbiter::policy::PolicySnapshot::load(&dir)
                    .with_context(|| format!("{} is not a valid policy set", dir.display()))?;
            }
            let mut bundle = Bundle::build(&dir, revision.as_deref())?;
            if let Some(key) = &sign {
                bundle.sign(&read_signing_key(key)?)?;
            }
            write_new(&output, &bundle.to_zip()?, 0o644)?;
            print(out, &describe(&bundle), |v| {
                format!(
                    "built {} — revision {}, {} files, {}",
                    output.display(),
                    v["revision"].as_str().unwrap_or(""),
                    bundle.files.len(),
                    if sign.is_some() { "signed" } else { "UNSIGNED" }
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        BundleCommand::Verify {
            bundle,
            keys,
            allow_unsigned,
            out,
        } => {
            let trust = Trust::from_jwks_file(keys.as_deref(), allow_unsigned)?;
            let read = read_bundle(&bundle)?;
            let description = describe(&read);
            match read.verify(&trust) {
                Ok(v) => {
                    let mut report = description;
                    report["verified"] = json!(true);
                    report["signed_by"] = json!(v.signed_by);
                    print(out, &report, |_| {
                        format!(
                            "{}: OK — revision {}, {}",
                            bundle.display(),
                            v.revision,
                            v.signed_by
                                .as_deref()
                                .map_or("unsigned (allowed)".into(), |k| format!("signed by {k}"))
                        )
                    });
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    let report = json!({ "verified": false, "error": e.to_string() });
                    print(out, &report, |_| {
                        format!("{}: REFUSED — {e}", bundle.display())
                    });
                    Ok(ExitCode::from(1))
                }
            }
        }
        BundleCommand::Inspect { bundle, out } => {
            let read = read_bundle(&bundle)?;
            let report = describe(&read);
            print(out, &report, |v| {
                let mut lines = vec![format!(
                    "{} — revision {}, store {} ({}), {}",
                    bundle.display(),
                    v["revision"].as_str().unwrap_or(""),
                    v["policy_store_id"].as_str().unwrap_or(""),
                    v["name"].as_str().unwrap_or(""),
                    v["signed_by"]
                        .as_str()
                        .map_or("unsigned".into(), |k| format!("signature by key {k}"))
                )];
                for (path, entry) in &read.manifest.files {
                    lines.push(format!("  {:>9}  {}  {path}", entry.size, &entry.checksum));
                }
                lines.join("\n")
            });
            Ok(ExitCode::SUCCESS)
        }
        BundleCommand::Keygen { alg, key, jwks } => {
            let alg = arbiter::token::keys::signing_algorithm(&alg)?;
            let (pem, public) = generate_signing_key(alg)?;
            write_new(&key, pem.as_bytes(), 0o600)?;
            write_new(
                &jwks,
                serde_json::to_string_pretty(&public)?.as_bytes(),
                0o644,
            )?;
            let kid = public["keys"][0]["kid"].as_str().unwrap_or("");
            say!(
                "wrote {} (private) and {} (kid {kid})",
                key.display(),
                jwks.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A `.cjar` file or an RFC 0101 store directory.
fn read_bundle(path: &Path) -> anyhow::Result<Bundle> {
    if path.is_dir() {
        return Ok(Bundle::from_dir(path)?);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Bundle::from_zip(&bytes)?)
}

/// What `inspect` and the others print about a bundle.
fn describe(b: &Bundle) -> Value {
    let signer = b
        .signature
        .as_deref()
        .and_then(|jws| jsonwebtoken::decode_header(jws).ok())
        .and_then(|h| h.kid);
    json!({
        "revision": b.revision(),
        "policy_store_id": b.manifest.policy_store_id,
        "name": b.metadata.as_ref().map(|m| m.policy_store.name.clone()),
        "cedar_version": b.metadata.as_ref().map(|m| m.cedar_version.clone()),
        "generated_date": b.manifest.generated_date,
        "signed_by": signer,
        "files": b.manifest.files,
    })
}

fn print(out: OutputArgs, value: &Value, human: impl FnOnce(&Value) -> String) {
    if out.json() {
        say!("{value}");
    } else {
        say!("{}", human(value));
    }
}

/// Writes `bytes` to `path` with `mode` (through a temporary file, so a reader never sees
/// half a bundle).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
