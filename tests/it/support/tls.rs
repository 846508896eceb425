//! Certificates made at run time (rcgen) and an Arbiter serving TLS with them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arbiter::config::TlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use tokio_util::sync::CancellationToken;

use super::{bundled_policies, copy_dir};

pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        Self {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    /// A leaf for `localhost`/127.0.0.1 (server) or a client; `(cert PEM, key PEM)`.
    pub fn leaf(&self, client: bool, expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A client certificate with a common name and subject alternative names: `(cert PEM,
    /// key PEM, cert DER)`.
    pub fn client(&self, cn: &str, sans: Vec<SanType>) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = sans;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// A self-signed client certificate: `(cert PEM, key PEM, cert DER)`.
pub fn self_signed(cn: &str) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

pub struct TlsServer {
    pub grpc: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Arbiter over TLS with `server_cert`, client certificates from `client_ca`, and
/// configuration changes.
pub async fn start_with(
    server_cert: (String, String),
    client_ca: Option<&Ca>,
    change: impl FnOnce(&mut arbiter::Config),
) -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let cert_file = write(dir.path(), "server.pem", &server_cert.0);
    let key_file = write(dir.path(), "server.key", &server_cert.1);
    let client_ca_file = client_ca.map(|ca| write(dir.path(), "clients-ca.pem", &ca.pem()));
    let mut config =
        arbiter::Config::for_test(dir.path().join("policies"), dir.path().join("data"));
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
    config.oauth.issuer = format!("https://localhost:{}", http_addr.port());
    config.tls = Some(TlsConfig {
        cert_file,
        key_file,
        client_ca_file,
        reload_seconds: 1,
        grpc_client_certs: None,
        http_client_certs: None,
    });
    change(&mut config);
    let arbiter = Arc::new(arbiter::Arbiter::build(config).await.unwrap());
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move { arbiter.serve(grpc, Some(http), stop).await });
    TlsServer {
        grpc: grpc_addr,
        http: http_addr,
        dir,
        shutdown,
    }
}
