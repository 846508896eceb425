//! A running Arbiter in the test process (tonic over loopback, real listeners, the bundled
//! policies copied to a temporary directory), and one-line gRPC helpers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arbiter::grpc::proto::{self, authorizer_client::AuthorizerClient};
use arbiter::token::keys::SigningKey;
use arbiter::token::mint::{mint, DevTokenRequest};
use arbiter::Config;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{bundled_policies, copy_dir, store_in};

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

/// `GET /metrics` of a server, checked to be OpenMetrics text.
pub async fn scrape(server: &TestServer) -> String {
    let resp = reqwest::get(format!("http://{}/metrics", server.http_addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    resp.text().await.unwrap()
}

/// The value of one sample line (metrics are process-wide: tests compare before and after).
pub fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
