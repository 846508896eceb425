//! OAuth client helpers: a client_credentials request as a stock client sends it.

use serde_json::Value;

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

/// Registers a client without a software statement (RFC 7591, open registration):
/// the registration response.
pub async fn register_openly(base: &str, name: &str, scope: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/register"))
        .json(&serde_json::json!({ "client_name": name, "scope": scope }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
