//! An independent OAuth authorization server with opaque tokens and RFC 7662 introspection:
//! authlib's server components (`authlib_server.py` beside this file) in a Python process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use super::tool;

/// The issuer name the server puts in its answers.
pub const AS_ISSUER: &str = "https://as.test";
/// The audience of its tokens (what Arbiter's issuer configuration accepts).
pub const AS_AUDIENCE: &str = "https://api.example";
/// Arbiter's client at the server, and the client that gets tokens.
pub const ARBITER_CLIENT: &str = "arbiter";
pub const APP_CLIENT: &str = "app";
pub const APP_SECRET: &str = "app-secret-0123456789";

/// The running server; stopped when dropped.
pub struct AuthServer {
    /// `http(s)://127.0.0.1:PORT`.
    pub base: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    http: reqwest::Client,
}

/// How Arbiter's client is registered at the server.
pub struct ArbiterClient {
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `tls_client_auth`.
    pub auth_method: &'static str,
    pub secret: Option<String>,
    /// PEM public key, for `private_key_jwt`.
    pub public_key_pem: Option<String>,
    /// RFC 4514 subject of its certificate, for `tls_client_auth`.
    pub subject_dn: Option<String>,
}

impl ArbiterClient {
    pub fn secret(auth_method: &'static str, secret: &str) -> Self {
        Self {
            auth_method,
            secret: Some(secret.to_owned()),
            public_key_pem: None,
            subject_dn: None,
        }
    }
}

/// TLS for the server: its certificate and the CA its clients' certificates chain to.
pub struct AsTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
    /// Trusted by the test's own HTTP client.
    pub ca_pem: String,
}

impl AuthServer {
    /// The server with Arbiter's client (as `arbiter`, allowed to introspect) and an
    /// application client `app` that gets `read write fido` tokens by client credentials.
    pub fn start(arbiter: &[(&str, ArbiterClient)], tls: Option<AsTls>, prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut clients = vec![json!({
            "client_id": APP_CLIENT, "client_secret": APP_SECRET,
            "auth_method": "client_secret_basic", "scope": "read write fido",
        })];
        for (id, c) in arbiter {
            clients.push(json!({
                "client_id": id, "client_secret": c.secret, "auth_method": c.auth_method,
                "public_key_pem": c.public_key_pem, "tls_client_auth_subject_dn": c.subject_dn,
                "introspect": true,
            }));
        }
        let mut config = json!({
            "issuer": AS_ISSUER, "audience": AS_AUDIENCE, "clients": clients,
            "token_prefix": prefix,
        });
        let mut http = reqwest::Client::builder();
        if let Some(tls) = &tls {
            let write = |name: &str, text: &str| {
                let path = dir.path().join(name);
                std::fs::write(&path, text).unwrap();
                path
            };
            config["tls"] = json!({
                "cert_file": write("as.pem", &tls.cert_pem),
                "key_file": write("as.key", &tls.key_pem),
                "client_ca_file": write("client-ca.pem", &tls.client_ca_pem),
            });
            http = http.add_root_certificate(
                reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap(),
            );
        }
        let file = dir.path().join("as.json");
        std::fs::write(&file, config.to_string()).unwrap();
        let python = tool(
            "ARBITER_TEST_PYTHON",
            "python3",
            "python3 -m pip install authlib flask",
        );
        // Its request log goes to a file: a pipe nobody reads would fill and stall it.
        let log = dir.path().join("as.log");
        let mut child = Command::new(python)
            .arg(script())
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(port) = line.trim().strip_prefix("READY ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the authlib server did not start (needs `python3 -m pip install authlib flask`, as .ci/run does): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        Self {
            base: format!("{scheme}://127.0.0.1:{port}"),
            dir,
            child: Some(child),
            http: http.build().unwrap(),
        }
    }

    /// A plain-HTTP server where Arbiter authenticates with `client_secret_basic`.
    pub fn basic(secret: &str) -> Self {
        Self::start(
            &[(
                ARBITER_CLIENT,
                ArbiterClient::secret("client_secret_basic", secret),
            )],
            None,
            "",
        )
    }

    /// Arbiter's `[[issuers]]` entry for this server: TOML lines of the issuer and of its
    /// `[issuers.introspection]` (authentication and cache settings come from `extra`).
    pub fn issuer_toml(&self, issuer_extra: &str, introspection_extra: &str) -> String {
        self.issuer_toml_as(ARBITER_CLIENT, issuer_extra, introspection_extra)
    }

    /// [`Self::issuer_toml`] with Arbiter as another of the server's clients.
    pub fn issuer_toml_as(
        &self,
        client_id: &str,
        issuer_extra: &str,
        introspection_extra: &str,
    ) -> String {
        format!(
            "issuer = {AS_ISSUER:?}\naudiences = [{AS_AUDIENCE:?}]\n{issuer_extra}\n[introspection]\nendpoint = \"{}/introspect\"\nclient_id = {client_id:?}\n{introspection_extra}\n",
            self.base
        )
    }

    /// The issuer configuration for this server.
    pub fn issuer(
        &self,
        issuer_extra: &str,
        introspection_extra: &str,
    ) -> arbiter::config::IssuerConfig {
        toml::from_str(&self.issuer_toml(issuer_extra, introspection_extra)).unwrap()
    }

    /// An access token for `app` by the client credentials grant.
    pub async fn client_token(&self, scope: &str) -> String {
        let r = answer(
            self.http
                .post(format!("{}/token", self.base))
                .basic_auth(APP_CLIENT, Some(APP_SECRET))
                .form(&[("grant_type", "client_credentials"), ("scope", scope)]),
        )
        .await;
        r["access_token"].as_str().expect("a token").to_owned()
    }

    /// A token for an end user of `app`, with extra members in its introspection answer.
    pub async fn user_token(&self, sub: &str, scope: &str, extra: Value) -> String {
        let r = answer(
            self.http
                .post(format!("{}/test/user-token", self.base))
                .json(
                    &json!({"client_id": APP_CLIENT, "sub": sub, "scope": scope, "extra": extra}),
                ),
        )
        .await;
        r["access_token"].as_str().unwrap().to_owned()
    }

    /// RFC 7009 revocation by the client the token was issued to.
    pub async fn revoke(&self, token: &str) {
        let r = self
            .http
            .post(format!("{}/revoke", self.base))
            .basic_auth(APP_CLIENT, Some(APP_SECRET))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "revocation: {}", r.status());
    }

    /// Introspection calls answered so far.
    pub async fn introspections(&self) -> u64 {
        let r = answer(self.http.get(format!("{}/test/stats", self.base))).await;
        r["introspections"].as_u64().unwrap()
    }

    /// Changes how introspection answers: `{"delay": seconds}`, `{"signature": "bad"}`.
    pub async fn set_mode(&self, mode: Value) {
        self.http
            .post(format!("{}/test/mode", self.base))
            .json(&mode)
            .send()
            .await
            .unwrap();
    }

    /// Stops the server (its port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Writes a file under the server's directory (keys and certificates for Arbiter).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The JSON body of the server's answer to `request`.
async fn answer(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/authlib_server.py")
}
