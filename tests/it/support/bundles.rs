//! Bundles as an operator makes and publishes them: `arbiter bundle keygen` and `build`
//! through the binary, and a plain HTTP file server (Python's `http.server`) serving them.

use std::path::{Path, PathBuf};

use super::process::{arbiter_bin, assert_success};

/// A bundle signing key made by `arbiter bundle keygen`: the private key and the JWKS.
pub struct BundleKey {
    pub key: PathBuf,
    pub jwks: PathBuf,
}

impl BundleKey {
    /// A new key under `dir` named `name`.
    pub fn generate(dir: &Path, name: &str, alg: &str) -> Self {
        let key = dir.join(format!("{name}.pem"));
        let jwks = dir.join(format!("{name}.jwks"));
        let out = arbiter_bin()
            .args(["bundle", "keygen", "--alg", alg, "--key"])
            .arg(&key)
            .arg("--jwks")
            .arg(&jwks)
            .output()
            .unwrap();
        assert_success(&out);
        Self { key, jwks }
    }
}

/// `arbiter bundle build DIR -o OUT --revision R --sign KEY`, the bundle's bytes.
pub fn build_bundle(dir: &Path, out: &Path, revision: &str, key: Option<&BundleKey>) -> Vec<u8> {
    let mut cmd = arbiter_bin();
    cmd.args(["bundle", "build", "--json"])
        .arg(dir)
        .arg("-o")
        .arg(out)
        .args(["--revision", revision]);
    if let Some(k) = key {
        cmd.arg("--sign").arg(&k.key);
    }
    assert_success(&cmd.output().unwrap());
    std::fs::read(out).unwrap()
}

/// Publishes `bytes` at `site/name` as a web server's document root is updated: written
/// beside it, then renamed over it (a reader never sees half a file).
pub fn publish(site: &Path, name: &str, bytes: &[u8]) {
    let tmp = site.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(tmp, site.join(name)).unwrap();
}

/// The policy a candidate or a later revision adds in these tests: item reads frozen.
pub const FREEZE_READS: &str = "@id(\"items-frozen\")\nforbid (principal, action == Action::\"GET\", resource == Endpoint::\"/item/{id}\");\n";

/// A copy of the bundled policies at `dir` with `extra` as one more policy file.
pub fn bundled_with(dir: &Path, extra: &str) {
    super::copy_dir(&super::bundled_policies(), dir);
    std::fs::write(dir.join("freeze.cedar"), extra).unwrap();
}

/// What a release pipeline has: a signing key, a web root served over HTTP, and the URL
/// replicas poll (`prod.cjar` there). Published bundles are built with the key.
pub struct Release {
    pub work: tempfile::TempDir,
    pub key: BundleKey,
    pub site: PathBuf,
    pub files: FileServer,
    pub url: String,
}

impl Release {
    /// A key of `alg` and a file server over an empty web root.
    pub fn start(alg: &str) -> Self {
        let work = tempfile::tempdir().unwrap();
        let site = work.path().join("site");
        std::fs::create_dir(&site).unwrap();
        let key = BundleKey::generate(work.path(), "release", alg);
        let files = FileServer::start(&site);
        let url = format!("{}/prod.cjar", files.base);
        Self {
            work,
            key,
            site,
            files,
            url,
        }
    }

    /// Builds `dir` as `revision`, signed, and publishes it; its bytes.
    pub fn publish(&self, dir: &Path, revision: &str) -> Vec<u8> {
        let bytes = build_bundle(
            dir,
            &self.work.path().join(format!("{revision}.cjar")),
            revision,
            Some(&self.key),
        );
        publish(&self.site, "prod.cjar", &bytes);
        bytes
    }
}

/// `python3 -m http.server` serving `root` on a loopback port, killed on drop.
pub struct FileServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl FileServer {
    /// Starts it and waits until it listens.
    pub fn start(root: &Path) -> Self {
        Self::start_on(root, 0)
    }

    /// Starts it on `port` (0: any) and waits until it listens.
    pub fn start_on(root: &Path, port: u16) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(root)
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("http.server said: {line}"));
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Stops it (the source goes down).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An S3-compatible server (moto, `tests/it/support/s3_server.py`) with a bucket `bundles`;
/// objects are put by stock boto3. Killed on drop.
pub struct S3Server {
    child: std::process::Child,
    answers: std::io::BufReader<std::process::ChildStdout>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl S3Server {
    /// Starts it and waits until the bucket exists.
    pub fn start() -> Self {
        use std::io::BufRead;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/s3_server.py");
        let mut child = std::process::Command::new("python3")
            .arg("-u")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        let mut answers = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        answers.read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("s3_server.py said: {line:?} (is moto[server] installed?)"))
            .trim()
            .to_owned();
        Self {
            child,
            answers,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Puts the file at `path` as object `key` of the bucket.
    pub fn put(&mut self, key: &str, path: &Path) {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{key} {}", path.display()).unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.answers.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "OK", "put {key}");
    }

    /// The environment `arbiter serve` reads S3 settings from, as the AWS tools do.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
