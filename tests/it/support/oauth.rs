//! OAuth client helpers: a client_credentials request as a stock client sends it, plain
//! HTTP calls with a bearer token, bootstrapped clients and statement requests.

use arbiter::oauth::clients::{self, ClientSpec};
use serde_json::{json, Value};

use super::TestServer;

/// `POST {base}/token` (client_credentials, client_secret_basic) for `scope`, with extra
/// request headers (repeat a name to send it twice); the status and the JSON body.
pub async fn client_credentials(
    base: &str,
    id: &str,
    secret: &str,
    scope: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// `POST token_endpoint` (client_credentials) authenticated by a `private_key_jwt` client
/// assertion (RFC 7523); the status and the JSON body.
pub async fn assertion_grant(token_endpoint: &str, assertion: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// Registers a client without a software statement (RFC 7591, open registration):
/// the registration response.
pub async fn register_openly(base: &str, name: &str, scope: &str) -> Value {
    register_metadata(base, json!({ "client_name": name, "scope": scope })).await
}

/// Registers a client without a software statement with this metadata: the registration
/// response.
pub async fn register_metadata(base: &str, metadata: Value) -> Value {
    super::post_json(&format!("{base}/register"), None, &metadata).await
}

/// Plain HTTP calls to a test server's HTTP listener, as any HTTP client makes them.
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    /// Calls to `server`'s HTTP listener.
    pub fn new(server: &TestServer) -> Self {
        Self {
            base: format!("http://{}", server.http_addr),
            client: reqwest::Client::new(),
        }
    }

    /// `method path` with an optional bearer token and JSON body; (status, JSON body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A client_credentials token; (status, body).
    pub async fn token(&self, id: &str, secret: &str, scope: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/token", self.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

/// A bootstrapped client (as `arbiter clients create` makes) and a token for it.
pub async fn bootstrap(server: &TestServer, http: &Http, scopes: &str) -> String {
    bootstrap_client(server, http, scopes).await.1
}

/// Like [`bootstrap`], with the client's id as well.
pub async fn bootstrap_client(server: &TestServer, http: &Http, scopes: &str) -> (String, String) {
    let store = server.store().await;
    let spec = ClientSpec {
        name: format!("bootstrap {scopes}"),
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        auth_method: "client_secret_basic".into(),
        ..Default::default()
    };
    let c = clients::create(&store, &spec).await.unwrap();
    let (status, body) = http
        .token(&c.record.client_id, c.secret.as_deref().unwrap(), scopes)
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    (c.record.client_id, token)
}

/// Submits a software statement request for `scopes` with `token` (`201` asserted): its id.
pub async fn submit_request(http: &Http, token: &str, name: &str, scopes: &[&str]) -> String {
    let (status, request) = http
        .call(
            "POST",
            "/ssa/requests",
            Some(token),
            Some(new_request(name, scopes)),
        )
        .await;
    assert_eq!(status, 201, "{request}");
    request["id"].as_str().unwrap().to_owned()
}

/// A software statement request body asking for `scopes`.
pub fn new_request(name: &str, scopes: &[&str]) -> Value {
    json!({
        "software_name": name,
        "software_version": "1.2",
        "description": "reconciles ledgers",
        "contact": "dev@example.com",
        "org": "Example Corp",
        "scopes": scopes,
        "justification": "nightly reconciliation",
    })
}

/// A client created in the server's store, with its secret.
pub struct StoredClient {
    pub id: String,
    pub secret: String,
}

/// Creates a client with these scopes and authentication method in the server's store.
pub async fn stored_client(server: &TestServer, scopes: &str, method: &str) -> StoredClient {
    let store = server.store().await;
    let scopes: Vec<String> = scopes.split_whitespace().map(str::to_owned).collect();
    let spec = clients::ClientSpec {
        name: "test client".into(),
        scopes,
        auth_method: method.into(),
        ..Default::default()
    };
    let created = clients::create(&store, &spec).await.unwrap();
    StoredClient {
        id: created.record.client_id,
        secret: created.secret.unwrap(),
    }
}

/// A URL on the server's HTTP listener.
pub fn http_url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.http_addr)
}

/// POSTs a `/token` form with the client's HTTP Basic credentials.
pub async fn post_token(
    server: &TestServer,
    c: &StoredClient,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    form(server, "/token", c, fields).await
}

/// POSTs a form to `path` with the client's HTTP Basic credentials.
pub async fn form(
    server: &TestServer,
    path: &str,
    c: &StoredClient,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::new()
        .post(http_url(server, path))
        .basic_auth(&c.id, Some(&c.secret))
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// A client credentials grant through the stock client helper: status and body.
pub async fn granted(
    server: &TestServer,
    c: &StoredClient,
    scope: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let base = format!("http://{}", server.http_addr);
    client_credentials(&base, &c.id, &c.secret, scope, headers).await
}
