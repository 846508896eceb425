//! RFC 8705 certificate-bound tokens at `Authorize` and through ext_authz: a token carrying
//! `cnf.x5t#S256` is accepted only with that certificate's thumbprint.

use arbiter::grpc::proto::Reason;
use base64::Engine as _;
use envoy_types::pb::envoy::service::auth::v3::{
    attribute_context::{HttpRequest, Peer, Request},
    authorization_client::AuthorizationClient,
    AttributeContext, CheckRequest,
};
use serde_json::{json, Map};
use sha2::Digest as _;

use crate::support::*;

fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let thumbprint =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(cert.der()));
    (cert.pem(), thumbprint)
}

fn bound_token(server: &TestServer, thumbprint: &str) -> String {
    let mut extra = Map::new();
    extra.insert("cnf".into(), json!({ "x5t#S256": thumbprint }));
    server.token_with("mtls-client", None, "read", extra)
}

#[tokio::test]
async fn a_bound_token_needs_its_certificate() {
    let mut server = TestServer::start().await;
    let (_, thumbprint) = certificate();
    let token = bound_token(&server, &thumbprint);
    let ask = |cert: &str| {
        let mut r = request(&token, "GET", "/item/1", json!({}));
        r.client_cert_sha256 = cert.to_owned();
        r
    };
    let mut client = server.client.clone();
    let without = client.authorize(ask("")).await.unwrap().into_inner();
    assert_eq!(reason(&without), Reason::InvalidToken);
    assert!(without.errors[0].contains("RFC 8705"), "{without:?}");
    let other = client.authorize(ask("AAAA")).await.unwrap().into_inner();
    assert_eq!(reason(&other), Reason::InvalidToken);
    let with = client
        .authorize(ask(&thumbprint))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reason(&with), Reason::Allowed, "{with:?}");
    // An unbound token does not need a certificate.
    let plain = server.token("demo", None, "read");
    assert_eq!(
        reason(&server.authorize(&plain, "GET", "/item/1", json!({})).await),
        Reason::Allowed
    );
}

#[tokio::test]
async fn ext_authz_takes_the_thumbprint_from_envoys_source_certificate() {
    let server = TestServer::start().await;
    let (pem, thumbprint) = certificate();
    let (other_pem, _) = certificate();
    let token = bound_token(&server, &thumbprint);
    let mut envoy = AuthorizationClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    let check = |cert_pem: &str| CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                certificate: percent_encoding::utf8_percent_encode(
                    cert_pem,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string(),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/item/1".into(),
                    host: "api.example".into(),
                    headers: [("authorization".to_owned(), format!("Bearer {token}"))]
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let ok = envoy.check(check(&pem)).await.unwrap().into_inner();
    assert_eq!(ok.status.unwrap().code, 0, "allowed with its certificate");
    let denied = envoy.check(check(&other_pem)).await.unwrap().into_inner();
    assert_eq!(
        denied.status.unwrap().code,
        tonic::Code::Unauthenticated as i32
    );
    let none = envoy.check(check("")).await.unwrap().into_inner();
    assert_eq!(
        none.status.unwrap().code,
        tonic::Code::Unauthenticated as i32
    );
}
