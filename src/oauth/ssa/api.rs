//! A client of the workflow's HTTP API, for `arbiter ssa` and scripts: it talks to a
//! running server with a bearer token (never to the database), so the CLI is held to the
//! same policies as any other caller.

use serde_json::{json, Value};

/// Errors of an API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or answered garbage.
    #[error("cannot reach `{url}`: {source}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The server refused the call.
    #[error("{status}: {code}: {description}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// The server's description.
        description: String,
    },
}

/// Where the API is and who calls it.
#[derive(Debug, Clone)]
pub struct WorkflowApi {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl WorkflowApi {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`) calling with `token`.
    pub fn new(base: &str, token: String) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Gets a token from the server's token endpoint with client credentials (all the
    /// client's scopes), then a client calling with it.
    pub async fn with_client_credentials(
        base: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, ClientError> {
        let http = reqwest::Client::new();
        let url = format!("{}/token", base.trim_end_matches('/'));
        let response = http
            .post(&url)
            .basic_auth(client_id, Some(client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let body = answer(&url, response).await?;
        let token = body["access_token"].as_str().unwrap_or_default().to_owned();
        Ok(Self::new(base, token))
    }

    /// Calls `method path` with an optional JSON body; the JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        answer(&url, response).await
    }

    /// Submits a request.
    pub async fn request(&self, new: Value) -> Result<Value, ClientError> {
        self.call(reqwest::Method::POST, "/ssa/requests", Some(new))
            .await
    }

    /// Lists requests: the caller's own, or (`review`) everyone's, optionally by status.
    pub async fn list(&self, review: bool, status: Option<&str>) -> Result<Value, ClientError> {
        let mut path = if review {
            "/ssa/review/requests"
        } else {
            "/ssa/requests"
        }
        .to_owned();
        if let Some(s) = status {
            path.push_str("?status=");
            path.extend(form_urlencoded::byte_serialize(s.as_bytes()));
        }
        self.call(reqwest::Method::GET, &path, None).await
    }

    /// One request.
    pub async fn show(&self, id: &str, review: bool) -> Result<Value, ClientError> {
        let prefix = if review {
            "/ssa/review/requests"
        } else {
            "/ssa/requests"
        };
        self.call(
            reqwest::Method::GET,
            &format!("{prefix}/{}", segment(id)),
            None,
        )
        .await
    }

    /// Approves a request.
    pub async fn approve(
        &self,
        id: &str,
        scopes: Option<Vec<String>>,
        validity_seconds: Option<u64>,
        reason: Option<String>,
    ) -> Result<Value, ClientError> {
        let mut body = json!({});
        if let Some(s) = scopes {
            body["scopes"] = json!(s);
        }
        if let Some(v) = validity_seconds {
            body["validity_seconds"] = json!(v);
        }
        if let Some(r) = reason {
            body["reason"] = json!(r);
        }
        let path = format!("/ssa/review/requests/{}/approve", segment(id));
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    /// Denies a request.
    pub async fn deny(&self, id: &str, reason: &str) -> Result<Value, ClientError> {
        let path = format!("/ssa/review/requests/{}/deny", segment(id));
        self.call(
            reqwest::Method::POST,
            &path,
            Some(json!({ "reason": reason })),
        )
        .await
    }

    /// Revokes a statement.
    pub async fn revoke(&self, jti: &str, reason: &str) -> Result<Value, ClientError> {
        let path = format!("/ssa/review/statements/{}/revoke", segment(jti));
        self.call(
            reqwest::Method::POST,
            &path,
            Some(json!({ "reason": reason })),
        )
        .await
    }

    /// The audit trail by request, statement and/or client.
    pub async fn audit(
        &self,
        request_id: Option<&str>,
        statement_jti: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("request_id", request_id),
            ("statement_jti", statement_jti),
            ("client_id", client_id),
        ] {
            if let Some(v) = v {
                query.append_pair(k, v);
            }
        }
        let query = query.finish();
        let path = if query.is_empty() {
            "/ssa/review/audit".to_owned()
        } else {
            format!("/ssa/review/audit?{query}")
        };
        self.call(reqwest::Method::GET, &path, None).await
    }
}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn answer(url: &str, response: reqwest::Response) -> Result<Value, ClientError> {
    let status = response.status().as_u16();
    let body: Value = response
        .json()
        .await
        .map_err(|source| ClientError::Transport {
            url: url.to_owned(),
            source,
        })?;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    Err(ClientError::Refused {
        status,
        code: body["error"].as_str().unwrap_or("error").to_owned(),
        description: body["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}
