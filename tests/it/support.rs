//! Shared helpers: a [`TestServer`] that starts Arbiter on `127.0.0.1:0` and stops on drop,
//! and a [`TestIdp`] that serves a JWKS over real HTTP with keys it can rotate.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbiter::config::IssuerConfig;
use arbiter::grpc::proto::{self, authorizer_client::AuthorizerClient};
use arbiter::token::keys::SigningKey;
use arbiter::token::mint::{mint, DevTokenRequest};
use arbiter::Config;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// The bundled policy directory.
pub fn bundled_policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// Copies a directory tree (tests never touch the bundled policies in place).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A running Arbiter.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Where the OAuth endpoints listen.
    pub http_addr: SocketAddr,
    /// The running server, for in-process operations (key rotation).
    pub arbiter: Arc<arbiter::Arbiter>,
    pub client: AuthorizerClient<Channel>,
    pub dev_key: Arc<SigningKey>,
    pub config: Config,
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl TestServer {
    /// Arbiter on a copy of the bundled policies.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Arbiter on a copy of the bundled policies, with configuration changes.
    pub async fn start_with(change: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&bundled_policies(), &dir.path().join("policies"));
        Self::start_in(dir, change).await
    }

    /// Arbiter on `dir/policies`, keys under `dir/data`.
    pub async fn start_in(dir: tempfile::TempDir, change: impl FnOnce(&mut Config)) -> Self {
        Self::start_at(dir, "127.0.0.1:0", change).await
    }

    /// Like [`TestServer::start_in`], its HTTP listener bound to `http_bind` (e.g. `[::]:0`).
    pub async fn start_at(
        dir: tempfile::TempDir,
        http_bind: &str,
        change: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::for_test(dir.path().join("policies"), dir.path().join("data"));
        let http = tokio::net::TcpListener::bind(http_bind).await.unwrap();
        let mut http_addr = http.local_addr().unwrap();
        if http_addr.ip().is_unspecified() {
            http_addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        config.oauth.issuer = format!("http://{http_addr}");
        change(&mut config);
        let arbiter = arbiter::Arbiter::build(config.clone())
            .await
            .expect("arbiter builds");
        let dev_key = arbiter.dev_key().expect("dev issuer enabled").clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let arbiter = Arc::new(arbiter);
        let serving = arbiter.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { serving.serve(listener, Some(http), stop).await });
        let client = connect(addr).await;
        wait_serving(addr).await;
        Self {
            addr,
            http_addr,
            client,
            dev_key,
            config,
            dir,
            arbiter,
            shutdown,
        }
    }

    /// The server's store (its SQLite file), opened beside it as the CLI would.
    pub async fn store(&self) -> arbiter::store::SqlStore {
        store_in(self.dir.path()).await
    }

    /// A development token for a client, optionally on behalf of a user.
    pub fn token(&self, client: &str, sub: Option<&str>, scopes: &str) -> String {
        self.token_with(client, sub, scopes, Map::new())
    }

    /// A development token with extra claims.
    pub fn token_with(
        &self,
        client: &str,
        sub: Option<&str>,
        scopes: &str,
        extra: Map<String, Value>,
    ) -> String {
        mint(
            &self.dev_key,
            &self.config.dev_issuer.issuer,
            &self.config.dev_issuer.audience,
            &DevTokenRequest {
                client_id: client.into(),
                sub: sub.map(str::to_owned),
                scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                ttl: Duration::from_secs(600),
                extra,
            },
        )
        .unwrap()
    }

    /// One `Authorize` call.
    pub async fn authorize(
        &mut self,
        token: &str,
        method: &str,
        path: &str,
        context: Value,
    ) -> proto::AuthorizeResponse {
        self.client
            .authorize(request(token, method, path, context))
            .await
            .expect("authorize answers")
            .into_inner()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestServer {
    /// The policy directory of this server.
    pub fn policies(&self) -> PathBuf {
        self.config.policies.clone()
    }

    /// A `PolicyAdmin` client.
    pub async fn admin(&self) -> proto::policy_admin_client::PolicyAdminClient<Channel> {
        proto::policy_admin_client::PolicyAdminClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    /// A reload through the admin RPC.
    pub async fn reload(&self) -> proto::ReloadResponse {
        self.admin()
            .await
            .reload(proto::ReloadRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// The admin status.
    pub async fn status(&self) -> proto::StatusResponse {
        self.admin()
            .await
            .status(proto::StatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }
}

/// Polls `check` until it returns `Some` or `limit` passes; never a fixed sleep then assert.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connects a tonic client, retrying while the server starts.
pub async fn connect(addr: SocketAddr) -> AuthorizerClient<Channel> {
    let url = format!("http://{addr}");
    for _ in 0..100 {
        if let Ok(c) = AuthorizerClient::connect(url.clone()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server at {addr} did not come up");
}

/// Waits until the health service reports SERVING: issuers' first key fetch is done.
pub async fn wait_serving(addr: SocketAddr) {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for _ in 0..500 {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if matches!(status, Ok(ref s) if s.get_ref().status == ServingStatus::Serving as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server at {addr} never reported SERVING");
}

/// An `AuthorizeRequest`.
pub fn request(token: &str, method: &str, path: &str, context: Value) -> proto::AuthorizeRequest {
    proto::AuthorizeRequest {
        token: token.into(),
        method: method.into(),
        path: path.into(),
        context: match context {
            Value::Object(map) => Some(arbiter::wire::json_to_struct(&map)),
            _ => None,
        },
        explain: false,
        client_cert_sha256: String::new(),
    }
}

pub fn reason(r: &proto::AuthorizeResponse) -> proto::Reason {
    proto::Reason::try_from(r.reason).unwrap()
}

pub fn allowed(r: &proto::AuthorizeResponse) -> bool {
    r.decision == proto::Decision::Allow as i32
}

/// A signing key of an external issuer.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// DER of the public key (SubjectPublicKeyInfo), e.g. for the HS256-with-public-key attack.
    pub public_der: Vec<u8>,
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
        let encoding = EncodingKey::from_ec_der(&der);
        let public_der = pair.public_key().as_der().unwrap().as_ref().to_vec();
        Self::finish(kid, Algorithm::ES256, encoding, public_der)
    }

    pub fn rs256(kid: &str) -> Self {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair as _;
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8: Pkcs8V1Der = pair.as_der().unwrap();
        let encoding =
            EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).unwrap();
        let public_der = pair.public_key().as_der().unwrap().as_ref().to_vec();
        Self::finish(kid, Algorithm::RS256, encoding, public_der)
    }

    pub fn eddsa(kid: &str) -> Self {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pair = Ed25519KeyPair::generate().unwrap();
        let der = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
        let raw = pair.public_key().as_ref().to_vec();
        let public_der = pair.public_key().as_der().unwrap().as_ref().to_vec();
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        });
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&der),
            jwk,
            public_der,
        }
    }

    fn finish(kid: &str, alg: Algorithm, encoding: EncodingKey, public_der: Vec<u8>) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        Self {
            kid: kid.into(),
            alg,
            encoding,
            jwk: serde_json::to_value(jwk).unwrap(),
            public_der,
        }
    }

    /// Signs claims with this key under its own `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs claims with this key but names another `kid` in the header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    arbiter::clock::now()
}

/// An external identity provider: a JWKS endpoint over real HTTP whose keys can change.
pub struct TestIdp {
    pub issuer: String,
    pub jwks_url: String,
    pub state: Arc<IdpState>,
    shutdown: CancellationToken,
}

pub struct IdpState {
    pub keys: Mutex<Vec<Value>>,
    pub fetches: AtomicUsize,
    pub failing: AtomicBool,
}

impl TestIdp {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let state = Arc::new(IdpState {
            keys: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            fetches: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let served = state.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let s = served.clone();
                async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    if s.failing.load(Ordering::SeqCst) {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let keys = s.keys.lock().unwrap().clone();
                    Ok((
                        [("cache-control", "max-age=300")],
                        axum::Json(json!({ "keys": keys })),
                    ))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        Self {
            issuer: format!("http://{addr}"),
            jwks_url: format!("http://{addr}/jwks"),
            state,
            shutdown,
        }
    }

    /// Issuer configuration trusting this IdP for audience `api`.
    pub fn config(&self) -> IssuerConfig {
        let toml = format!(
            "issuer = {:?}\naudiences = [\"api\"]\njwks_url = {:?}\njwks_refresh_cooldown_seconds = 1\n",
            self.issuer, self.jwks_url
        );
        toml::from_str(&toml).unwrap()
    }

    /// Standard claims for a client-credentials token of this IdP.
    pub fn claims(&self, client: &str, scope: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer, "aud": "api", "sub": client, "client_id": client,
            "scope": scope, "iat": now, "exp": now + 300, "jti": format!("jti-{client}-{now}"),
        })
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A fresh, empty PostgreSQL database for one test, as a URL; `None` when
/// `ARBITER_TEST_POSTGRES_URL` is not set, after saying on the terminal (past the test
/// harness's capture) that the test was skipped. `.ci/postgres.sh` sets one up.
pub async fn postgres_database(test: &str) -> Option<String> {
    use sqlx::Connection;
    let Ok(base) = std::env::var("ARBITER_TEST_POSTGRES_URL") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test} on PostgreSQL: ARBITER_TEST_POSTGRES_URL is not set (`export ARBITER_TEST_POSTGRES_URL=$(.ci/postgres.sh)` runs it)"
        );
        return None;
    };
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "arbiter_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("ARBITER_TEST_POSTGRES_URL is set but PostgreSQL cannot be reached");
    // What earlier runs of this test left behind.
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE $1 AND datname NOT LIKE $2",
    )
    .bind(format!("arbiter\\_{test}\\_%"))
    .bind(format!("arbiter\\_{test}\\_{}\\_%", std::process::id()))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for old in stale.iter().chain([&name]) {
        sqlx::Executor::execute(
            &mut admin,
            format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)").as_str(),
        )
        .await
        .unwrap();
    }
    sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    Some(url.to_string())
}

/// Drops a database [`postgres_database`] made, under whoever is connected to it (an
/// outage, as the servers using it see it).
pub async fn drop_postgres_database(url: &str) {
    use sqlx::Connection;
    let base = std::env::var("ARBITER_TEST_POSTGRES_URL").unwrap();
    let name = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::Executor::execute(
        &mut admin,
        format!("DROP DATABASE {name} WITH (FORCE)").as_str(),
    )
    .await
    .unwrap();
}

/// The SQLite store of a server whose data directory is `dir/data`, opened beside it as the
/// CLI would.
pub async fn store_in(dir: &Path) -> arbiter::store::SqlStore {
    arbiter::store::SqlStore::sqlite(&dir.join("data/arbiter.db"))
        .await
        .unwrap()
}
