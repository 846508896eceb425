//! Ask a running Arbiter for decisions with the embeddable client.
//!
//! ```sh
//! cargo run --release -- serve &
//! T=$(cargo run --release -q -- token dev --client demo --scope "read fido")
//! cargo run --release --example client -- http://127.0.0.1:50051 "$T" POST /items
//! ```
//!
//! The second identical check is answered from the client's cache (`cached: true`).

use arbiter::client::{ArbiterClient, Check, ClientConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let token = args.next().unwrap_or_default();
    let method = args.next().unwrap_or_else(|| "GET".into());
    let path = args.next().unwrap_or_else(|| "/health".into());

    // Fail closed, 250 ms deadline, 10 000 cached decisions: the defaults.
    let client = ArbiterClient::new(ClientConfig::new(endpoint))?;
    let mut context = serde_json::Map::new();
    context.insert("ip".into(), "192.0.2.10".into());
    let check = Check {
        token: &token,
        method: &method,
        path: &path,
        context: &context,
        client_cert_sha256: "",
    };
    for _ in 0..2 {
        let d = client.check(check).await;
        println!(
            "allowed: {}, reason: {:?}, cached: {}, decision: {}, version: {}, required scopes: {:?}, errors: {:?}",
            d.allowed, d.reason, d.cached, d.decision_id, d.policy_version, d.required_scopes, d.errors
        );
    }
    Ok(())
}
