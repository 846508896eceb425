//! TLS on both listeners with certificates made at run time (rcgen): success, a client
//! trusting another CA refused, an expired certificate refused, mTLS required and missing,
//! and a certificate rotated on disk going live without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arbiter::grpc::proto::{self, authorizer_client::AuthorizerClient};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::support::tls::{start_with, write, Ca, TlsServer};
use crate::support::*;

async fn start(server_cert: (String, String), client_ca: Option<&Ca>) -> TlsServer {
    start_with(server_cert, client_ca, |_| {}).await
}

/// One `Authorize` over TLS trusting `ca`, optionally presenting a client certificate.
async fn ask(
    server: &TlsServer,
    ca: &Ca,
    identity: Option<&(String, String)>,
) -> Result<proto::AuthorizeResponse, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{}", server.grpc.port()))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    AuthorizerClient::new(channel)
        .authorize(request("", "GET", "/health", serde_json::json!({})))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn tls_success_wrong_ca_and_expired_certificate() {
    let ca = Ca::new("Arbiter test CA");
    let other = Ca::new("Somebody else");
    let server = start(ca.leaf(false, false), None).await;
    let ok = eventually(Duration::from_secs(5), || async {
        ask(&server, &ca, None).await.ok()
    })
    .await
    .expect("Authorize over TLS");
    assert_eq!(reason(&ok), proto::Reason::Allowed);
    assert!(
        ask(&server, &other, None).await.is_err(),
        "a client trusting another CA refuses it"
    );

    // HTTP too: JWKS over https with the CA, refused in plaintext.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = http
        .get(format!(
            "https://localhost:{}/jwks.json",
            server.http.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let plaintext =
        reqwest::get(format!("http://127.0.0.1:{}/jwks.json", server.http.port())).await;
    assert!(
        plaintext.map_or(true, |r| r.status() != 200),
        "plaintext HTTP is not served on a TLS listener"
    );

    let expired = start(ca.leaf(false, true), None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = ask(&expired, &ca, None).await;
    assert!(
        refused.is_err(),
        "an expired server certificate is refused: {refused:?}"
    );
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_configured_ca() {
    let ca = Ca::new("Server CA");
    let clients = Ca::new("Client CA");
    let strangers = Ca::new("Strangers");
    let server = start(ca.leaf(false, false), Some(&clients)).await;
    let good = clients.leaf(true, false);
    let ok = eventually(Duration::from_secs(5), || async {
        ask(&server, &ca, Some(&good)).await.ok()
    })
    .await
    .expect("mTLS with a client certificate");
    assert_eq!(reason(&ok), proto::Reason::Allowed);
    assert!(
        ask(&server, &ca, None).await.is_err(),
        "no client certificate"
    );
    let stranger = strangers.leaf(true, false);
    assert!(
        ask(&server, &ca, Some(&stranger)).await.is_err(),
        "a client certificate from another CA"
    );
}

#[tokio::test]
async fn a_certificate_rotated_on_disk_goes_live_without_a_restart() {
    let old_ca = Ca::new("Old CA");
    let new_ca = Ca::new("New CA");
    let server = start(old_ca.leaf(false, false), None).await;
    eventually(Duration::from_secs(5), || async {
        ask(&server, &old_ca, None).await.ok()
    })
    .await
    .expect("served with the old certificate");
    assert!(ask(&server, &new_ca, None).await.is_err());
    let (cert, key) = new_ca.leaf(false, false);
    // Key first, then the certificate, as a rotation tool would.
    std::fs::write(server.dir.path().join("server.key"), key).unwrap();
    std::fs::write(server.dir.path().join("server.pem"), cert).unwrap();
    let rotated = eventually(Duration::from_secs(8), || async {
        ask(&server, &new_ca, None).await.ok()
    })
    .await;
    assert!(rotated.is_some(), "the new certificate went live");
    assert!(
        ask(&server, &old_ca, None).await.is_err(),
        "the old one is gone"
    );
}

#[tokio::test]
async fn the_client_library_verifies_the_pdp_and_presents_its_certificate() {
    use arbiter::client::{ArbiterClient, Check, ClientConfig, ClientTls};
    let ca = Ca::new("Server CA");
    let clients = Ca::new("Client CA");
    let server = start(ca.leaf(false, false), Some(&clients)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let (cert, key) = clients.leaf(true, false);
    let identity = (
        write(dir.path(), "c.pem", &cert),
        write(dir.path(), "c.key", &key),
    );
    let empty = serde_json::Map::new();
    let check = Check {
        token: "",
        method: "GET",
        path: "/health",
        context: &empty,
        client_cert_sha256: "",
    };
    let config = |tls: Option<ClientTls>| {
        let mut c = ClientConfig::new(format!("https://127.0.0.1:{}", server.grpc.port()));
        c.deadline = Duration::from_secs(2);
        c.tls = tls;
        c
    };
    let tls = |identity: Option<(PathBuf, PathBuf)>, ca_file: &Path| ClientTls {
        ca_file: ca_file.to_path_buf(),
        identity,
        domain: Some("localhost".into()),
    };
    let good = ArbiterClient::new(config(Some(tls(Some(identity.clone()), &ca_file)))).unwrap();
    let d = eventually(Duration::from_secs(5), || async {
        Some(good.check(check).await).filter(|d| !d.unavailable)
    })
    .await
    .expect("decisions over mTLS");
    assert!(d.allowed);
    let no_identity = ArbiterClient::new(config(Some(tls(None, &ca_file)))).unwrap();
    let d = no_identity.check(check).await;
    assert!(d.unavailable && !d.allowed, "mTLS required: {d:?}");
    let other_ca = write(dir.path(), "other.pem", &Ca::new("Other").pem());
    let wrong = ArbiterClient::new(config(Some(tls(Some(identity), &other_ca)))).unwrap();
    let d = wrong.check(check).await;
    assert!(
        d.unavailable && !d.allowed,
        "the server's certificate is verified: {d:?}"
    );
}
