//! TLS for the gRPC and HTTP listeners (rustls with aws-lc-rs): certificate and key from
//! PEM files, client certificates per listener (none, required against a CA bundle, or
//! optional for RFC 8705 client authentication; see [`ClientCerts`]), and the files re-read
//! when they change on disk, so certificates rotate without a restart. A change that does
//! not load keeps the last good configuration (and says why in the log). Handshakes run off
//! the accept loop, each bounded in time, so a slow client cannot hold up others.

mod address;
mod limited;
mod peer;

pub use crate::config::{ClientCerts, Listener};
pub use address::canonical_peer;
pub use limited::{ConnectionLimit, Limited};
pub use peer::{thumbprint, AnyClientCertificate, PeerCertificate};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read `{0}`: {1}")]
    Read(PathBuf, std::io::Error),
    /// A file holds no usable PEM item.
    #[error("`{0}`: {1}")]
    Pem(PathBuf, String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(path.to_path_buf(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(path.to_path_buf(), "no certificate".into()));
    }
    Ok(certs)
}

/// A listener's TLS: the rustls configuration, and the client CA as a verifier for
/// requests to check a certificate the handshake did not (optional client certificates).
#[derive(Clone)]
pub struct Loaded {
    /// For new connections.
    pub server: Arc<ServerConfig>,
    /// `client_ca_file`, when configured.
    pub client_ca: Option<Arc<dyn ClientCertVerifier>>,
}

/// Builds the server configuration the files describe, for one listener.
pub fn server_config(config: &TlsConfig, listener: Listener) -> Result<Loaded, TlsError> {
    let chain = certificates(&config.cert_file)?;
    let key_pem = read(&config.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::Pem(config.key_file.clone(), e.to_string()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let client_ca = config
        .client_ca_file
        .as_deref()
        .map(ca_verifier)
        .transpose()?;
    let builder = match (config.client_certs(listener), &client_ca) {
        (ClientCerts::None, _) => builder.with_no_client_auth(),
        (ClientCerts::Required, Some(ca)) => builder.with_client_cert_verifier(ca.clone()),
        (ClientCerts::Required, None) => {
            return Err(TlsError::Rustls(
                "client certificates are required but no client_ca_file is configured".into(),
            ))
        }
        (ClientCerts::Optional, _) => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCertificate::new(&provider())))
        }
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded {
        server: Arc::new(server),
        client_ca,
    })
}

/// The live TLS configuration, replaced when the files change.
pub struct ReloadingTls {
    config: TlsConfig,
    listener: Listener,
    current: ArcSwap<Loaded>,
    stamps: std::sync::Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl ReloadingTls {
    /// Loads the files for a listener; fails when they do not make a valid configuration.
    pub fn new(config: TlsConfig, listener: Listener) -> Result<Arc<Self>, TlsError> {
        let current = server_config(&config, listener)?;
        let stamps = stamps(&config);
        Ok(Arc::new(Self {
            config,
            listener,
            current: ArcSwap::from_pointee(current),
            stamps: std::sync::Mutex::new(stamps),
        }))
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load().server.clone()
    }

    /// The certificate a client presented on a connection of this listener, for the
    /// requests on it.
    pub fn peer_certificate(&self, chain: &[CertificateDer<'_>]) -> Option<PeerCertificate> {
        let required = self.config.client_certs(self.listener) == ClientCerts::Required;
        PeerCertificate::new(chain, required, self.current.load().client_ca.clone())
    }

    /// Re-reads the files if they changed; `true` when a new configuration went live.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamps(&self.config);
        let mut seen = self
            .stamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *seen == now {
            return false;
        }
        *seen = now;
        drop(seen);
        match server_config(&self.config, self.listener) {
            Ok(next) => {
                self.current.store(Arc::new(next));
                tracing::info!(cert = %self.config.cert_file.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS files changed but do not load; the previous certificate stays in use");
                false
            }
        }
    }

    /// Polls the files until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let every = Duration::from_secs(self.config.reload_seconds.max(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
        }
    }
}

fn stamps(config: &TlsConfig) -> Vec<Option<(SystemTime, u64)>> {
    let mut files = vec![&config.cert_file, &config.key_file];
    if let Some(ca) = &config.client_ca_file {
        files.push(ca);
    }
    files
        .into_iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Checks client certificate chains against a CA bundle (PEM): the listeners' client CA
/// and the administrators' CA.
pub fn ca_verifier(ca: &std::path::Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Pem(ca.to_path_buf(), e.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))
}

/// A stream served on a listener: TLS or plain, counted against the listener's limit.
pub type Accepted<S> = (Limited<S>, SocketAddr);

/// Accepts TCP connections while `limit` has a free place and completes TLS handshakes
/// concurrently (each bounded in time), handing over the established streams until
/// `shutdown`.
pub fn accept(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
    limit: ConnectionLimit,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Accepted<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some((tcp, peer, place)) = next_connection(&listener, &limit, &shutdown).await {
            let acceptor = TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((Limited::new(stream, place), peer)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}

/// Accepts plaintext TCP connections while `limit` has a free place, until `shutdown`.
pub fn accept_plain(
    listener: TcpListener,
    limit: ConnectionLimit,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Accepted<TcpStream>> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some((tcp, peer, place)) = next_connection(&listener, &limit, &shutdown).await {
            if tx.send((Limited::new(tcp, place), peer)).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// The next connection once a place is free, with Nagle off; `None` at shutdown.
async fn next_connection(
    listener: &TcpListener,
    limit: &ConnectionLimit,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    loop {
        let place = tokio::select! {
            _ = shutdown.cancelled() => return None,
            place = limit.place() => place?,
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                return Some((tcp, peer, place));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
