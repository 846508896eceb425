//! RFC 8705: mutual-TLS client authentication at `/token` (`tls_client_auth` against the
//! client CA and a registered subject, `self_signed_tls_client_auth` against registered
//! certificates), tokens bound to the certificate (`cnf.x5t#S256`), and `Authorize` and
//! ext_authz accepting a bound token only with that certificate's thumbprint.

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

mod issuing {
    use std::time::Duration;

    use arbiter::grpc::proto::{self, authorizer_client::AuthorizerClient, Reason};
    use arbiter::oauth::clients::{self, ClientSpec};
    use arbiter::tls::ClientCerts;
    use base64::Engine as _;
    use rcgen::SanType;
    use serde_json::{json, Value};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

    use crate::support::tls::{self_signed, start_with, Ca, TlsServer};
    use crate::support::*;

    /// The server CA, the client CA, and Arbiter asking for (optional) client certificates
    /// on HTTP, none on gRPC.
    async fn server() -> (Ca, Ca, TlsServer) {
        server_asking(ClientCerts::Optional).await
    }

    async fn server_asking(certs: ClientCerts) -> (Ca, Ca, TlsServer) {
        let ca = Ca::new("Server CA");
        let clients = Ca::new("Client CA");
        let server = start_with(ca.leaf(false, false), Some(&clients), |c| {
            let tls = c.tls.as_mut().unwrap();
            tls.http_client_certs = Some(certs);
            tls.grpc_client_certs = Some(ClientCerts::None);
            c.oauth.open_registration = true;
        })
        .await;
        (ca, clients, server)
    }

    async fn create(server: &TlsServer, spec: ClientSpec) -> (String, Option<String>) {
        let store = store_in(server.dir.path()).await;
        let created = clients::create(&store, &spec).await.unwrap();
        (created.record.client_id, created.secret)
    }

    /// An HTTPS client trusting `ca`, presenting `identity` (cert PEM, key PEM) if given.
    fn https(ca: &Ca, identity: Option<(&str, &str)>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap());
        if let Some((cert, key)) = identity {
            b = b.identity(
                reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).unwrap(),
            );
        }
        b.build().unwrap()
    }

    async fn token(
        server: &TlsServer,
        http: &reqwest::Client,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let url = format!("https://localhost:{}/token", server.http.port());
        let mut req = http.post(url).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = eventually(Duration::from_secs(5), || {
            let req = req.try_clone().unwrap();
            async move { req.send().await.ok() }
        })
        .await
        .expect("the HTTPS listener answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn claims(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    }

    fn thumbprint(der: &[u8]) -> String {
        arbiter::tls::thumbprint(der)
    }

    async fn authorize(
        server: &TlsServer,
        ca: &Ca,
        token: &str,
        thumbprint: &str,
    ) -> proto::AuthorizeResponse {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca.pem()))
            .domain_name("localhost");
        let channel = Endpoint::from_shared(format!("https://127.0.0.1:{}", server.grpc.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut r = request(token, "GET", "/item/1", json!({}));
        r.client_cert_sha256 = thumbprint.to_owned();
        AuthorizerClient::new(channel)
            .authorize(r)
            .await
            .unwrap()
            .into_inner()
    }

    #[tokio::test]
    async fn tls_client_auth_binds_tokens_to_the_ca_issued_certificate() {
        let (ca, client_ca, server) = server().await;
        let (id, secret) = create(
            &server,
            ClientSpec {
                name: "payments".into(),
                scopes: vec!["read".into()],
                auth_method: "tls_client_auth".into(),
                tls_subject: Some(("tls_client_auth_subject_dn".into(), "CN=payments".into())),
                ..Default::default()
            },
        )
        .await;
        assert!(secret.is_none(), "no secret for a certificate client");
        let (cert, key, der) = client_ca.client("payments", vec![]);
        let with_cert = https(&ca, Some((&cert, &key)));
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ];

        let (status, body) = token(&server, &with_cert, &form, None).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(claims(&access)["cnf"]["x5t#S256"], thumbprint(&der));

        // Authorize: the bound token with its certificate's thumbprint, without, with another.
        let r = authorize(&server, &ca, &access, &thumbprint(&der)).await;
        assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
        let r = authorize(&server, &ca, &access, "").await;
        assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");
        let (_, _, other_der) = client_ca.client("payments", vec![]);
        let r = authorize(&server, &ca, &access, &thumbprint(&other_der)).await;
        assert_eq!(reason(&r), Reason::InvalidToken, "{r:?}");

        // Introspection by the client shows the binding (RFC 8705 §3.2).
        let introspected: Value = with_cert
            .post(format!(
                "https://localhost:{}/introspect",
                server.http.port()
            ))
            .form(&[("client_id", id.as_str()), ("token", access.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(introspected["active"], true, "{introspected}");
        assert_eq!(introspected["cnf"]["x5t#S256"], thumbprint(&der));

        // Refused: no certificate; another subject from the same CA; the right subject on a
        // certificate that does not chain to the client CA.
        let (status, body) = token(&server, &https(&ca, None), &form, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        let (cert, key, _) = client_ca.client("billing", vec![]);
        let (status, _) = token(&server, &https(&ca, Some((&cert, &key))), &form, None).await;
        assert_eq!(status, 401, "another subject");
        let (cert, key, _) = self_signed("payments");
        let (status, _) = token(&server, &https(&ca, Some((&cert, &key))), &form, None).await;
        assert_eq!(status, 401, "not from the client CA");

        // A secret client on the same listener needs no certificate and gets an unbound token.
        let (sid, ssecret) = create(
            &server,
            ClientSpec {
                name: "plain".into(),
                scopes: vec!["read".into()],
                auth_method: "client_secret_basic".into(),
                ..Default::default()
            },
        )
        .await;
        let ssecret = ssecret.unwrap();
        let (status, body) = token(
            &server,
            &https(&ca, None),
            &[("grant_type", "client_credentials")],
            Some((&sid, &ssecret)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(claims(body["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none());
        // Its id alone, even over a certificate, is no authentication.
        let (status, _) = token(
            &server,
            &with_cert,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", sid.as_str()),
            ],
            None,
        )
        .await;
        assert_eq!(status, 401);

        let metadata: Value = https(&ca, None)
            .get(format!(
                "https://localhost:{}/.well-known/oauth-authorization-server",
                server.http.port()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let methods = metadata["token_endpoint_auth_methods_supported"].to_string();
        assert!(
            methods.contains("\"tls_client_auth\"")
                && methods.contains("self_signed_tls_client_auth")
        );
        assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
    }

    /// With client certificates required on the listener, the handshake has checked the CA
    /// and the token endpoint relies on it.
    #[tokio::test]
    async fn tls_client_auth_on_a_listener_that_requires_certificates() {
        let (ca, client_ca, server) = server_asking(ClientCerts::Required).await;
        let (id, _) = create(
            &server,
            ClientSpec {
                name: "payments".into(),
                scopes: vec!["read".into()],
                auth_method: "tls_client_auth".into(),
                tls_subject: Some(("tls_client_auth_san_dns".into(), "payments.example".into())),
                ..Default::default()
            },
        )
        .await;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ];
        let (cert, key, der) = client_ca.client(
            "payments",
            vec![SanType::DnsName("payments.example".try_into().unwrap())],
        );
        let (status, body) = token(&server, &https(&ca, Some((&cert, &key))), &form, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
            thumbprint(&der)
        );
        let (cert, key, _) = client_ca.client(
            "billing",
            vec![SanType::DnsName("billing.example".try_into().unwrap())],
        );
        let (status, _) = token(&server, &https(&ca, Some((&cert, &key))), &form, None).await;
        assert_eq!(status, 401, "another subject");
    }

    #[tokio::test]
    async fn self_signed_clients_authenticate_with_a_registered_certificate() {
        let (ca, _, server) = server().await;
        let (cert, key, der) = self_signed("device-42");
        let jwks = json!({ "keys": [{
            "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&der)],
        }]});
        let (id, _) = create(
            &server,
            ClientSpec {
                name: "device".into(),
                scopes: vec!["read".into()],
                auth_method: "self_signed_tls_client_auth".into(),
                jwks: Some(jwks),
                ..Default::default()
            },
        )
        .await;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ];
        let (status, body) = token(&server, &https(&ca, Some((&cert, &key))), &form, None).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(claims(access)["cnf"]["x5t#S256"], thumbprint(&der));
        let r = authorize(&server, &ca, access, &thumbprint(&der)).await;
        assert_eq!(reason(&r), Reason::Allowed, "{r:?}");

        let (other, other_key, _) = self_signed("device-42");
        let (status, _) = token(
            &server,
            &https(&ca, Some((&other, &other_key))),
            &form,
            None,
        )
        .await;
        assert_eq!(status, 401, "a certificate the client did not register");
    }

    #[tokio::test]
    async fn tls_client_auth_clients_register_their_subject() {
        let (ca, client_ca, server) = server().await;
        let http = https(&ca, None);
        let register = |body: Value| {
            let http = http.clone();
            let url = format!("https://localhost:{}/register", server.http.port());
            async move {
                let resp = http.post(url).json(&body).send().await.unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            }
        };
        let (status, body) = register(json!({
            "client_name": "spiffe workload",
            "scope": "read",
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_san_uri": "spiffe://example.org/payments",
        }))
        .await;
        assert_eq!(status, 201, "{body}");
        assert!(body.get("client_secret").is_none(), "{body}");
        assert_eq!(body["tls_client_certificate_bound_access_tokens"], true);
        assert_eq!(
            body["tls_client_auth_san_uri"],
            "spiffe://example.org/payments"
        );
        let id = body["client_id"].as_str().unwrap();
        let (cert, key, der) = client_ca.client(
            "workload",
            vec![SanType::URI(
                "spiffe://example.org/payments".try_into().unwrap(),
            )],
        );
        let (status, body) = token(
            &server,
            &https(&ca, Some((&cert, &key))),
            &[("grant_type", "client_credentials"), ("client_id", id)],
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
            thumbprint(&der)
        );

        for (bad, why) in [
            (
                json!({ "client_name": "x", "token_endpoint_auth_method": "tls_client_auth" }),
                "no subject",
            ),
            (
                json!({ "client_name": "x", "token_endpoint_auth_method": "tls_client_auth",
                        "tls_client_auth_san_dns": "a.example", "tls_client_auth_subject_dn": "CN=a" }),
                "two subjects",
            ),
            (
                json!({ "client_name": "x", "token_endpoint_auth_method": "self_signed_tls_client_auth",
                        "jwks": { "keys": [] } }),
                "no x5c",
            ),
            (
                json!({ "client_name": "x", "tls_client_certificate_bound_access_tokens": true }),
                "binding without mutual TLS",
            ),
        ] {
            let (status, body) = register(bad).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_client_metadata")),
                "{why}: {body}"
            );
        }
    }
}

/// `arbiter gateway` over TLS asking for client certificates: a certificate-bound token
/// passes with its certificate and with no other.
#[tokio::test]
async fn bound_tokens_work_through_the_tls_gateway() {
    use arbiter::gateway::{serve, GatewayConfig};
    use arbiter::tls::ClientCerts;
    let server = TestServer::start().await;
    let (up, _up_stop) = crate::support::upstream::upstream().await;
    let ca = crate::support::tls::Ca::new("Gateway CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(false, false);
    let mut config = GatewayConfig::new(format!("http://{up}"), format!("http://{}", server.addr));
    config.tls = Some(arbiter::config::TlsConfig {
        cert_file: crate::support::tls::write(dir.path(), "gw.pem", &cert),
        key_file: crate::support::tls::write(dir.path(), "gw.key", &key),
        client_ca_file: None,
        reload_seconds: 10,
        grpc_client_certs: None,
        http_client_certs: Some(ClientCerts::Optional),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(serve(listener, config, stop.clone()));

    let (client_cert, client_key, der) = crate::support::tls::self_signed("device");
    let token = bound_token(&server, &arbiter::tls::thumbprint(&der));
    let call = |identity: Option<(String, String)>| {
        let token = token.clone();
        let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
        async move {
            let mut b = reqwest::Client::builder().add_root_certificate(root);
            if let Some((c, k)) = identity {
                b = b
                    .identity(reqwest::Identity::from_pem(format!("{c}\n{k}").as_bytes()).unwrap());
            }
            let client = b.build().unwrap();
            let resp = eventually(std::time::Duration::from_secs(5), || {
                let req = client
                    .get(format!("https://localhost:{port}/item/1"))
                    .bearer_auth(&token);
                async move { req.send().await.ok() }
            })
            .await
            .expect("the gateway answers over TLS");
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };
    let (status, body) = call(Some((client_cert, client_key))).await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        seen["headers"]["forwarded"]
            .as_str()
            .unwrap()
            .contains("proto=https"),
        "{seen}"
    );
    let (status, _) = call(None).await;
    assert_eq!(status, 401, "no certificate");
    let (other, other_key, _) = crate::support::tls::self_signed("device");
    let (status, _) = call(Some((other, other_key))).await;
    assert_eq!(status, 401, "another certificate");
    stop.cancel();
}
