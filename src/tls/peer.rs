//! The client certificate of a TLS connection, as the HTTP handlers see it: its chain, its
//! RFC 8705 thumbprint, and whether it chains to the configured client CA. The listener's
//! [`ClientCerts`] mode says whether a certificate is asked for and what the handshake
//! itself checks.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::Digest as _;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms,
};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{self, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The certificate a client presented on its connection, attached to every request on it;
/// cloning it is an `Arc` bump. Whether it chains to the client CA is worked out only when
/// someone asks (the token endpoint for `tls_client_auth`), once per connection.
#[derive(Clone)]
pub struct PeerCertificate(Arc<Presented>);

struct Presented {
    /// Leaf first.
    chain: Vec<CertificateDer<'static>>,
    thumbprint: String,
    /// The CA to check against, or `None` when the handshake checked it already (or there
    /// is none: see `chains_to_ca`).
    ca: Option<Arc<dyn ClientCertVerifier>>,
    handshake_verified: bool,
    chains_to_ca: OnceLock<bool>,
}

impl std::fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("thumbprint", &self.0.thumbprint)
            .finish_non_exhaustive()
    }
}

impl PeerCertificate {
    /// A presented chain. `handshake_verified`: the listener required certificates chaining
    /// to the client CA, so the handshake has checked it; else `ca` checks it on demand.
    pub fn new(
        chain: &[CertificateDer<'_>],
        handshake_verified: bool,
        ca: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Option<Self> {
        let leaf = chain.first()?;
        Some(Self(Arc::new(Presented {
            thumbprint: thumbprint(leaf),
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            ca: if handshake_verified { None } else { ca },
            handshake_verified,
            chains_to_ca: OnceLock::new(),
        })))
    }

    /// The leaf certificate's DER.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.0.chain[0]
    }

    /// The whole chain the client presented, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.0.chain
    }

    /// RFC 8705 `x5t#S256` of the leaf: base64url SHA-256 of its DER.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }

    /// Whether the chain verifies against the configured client CA (never, without one).
    pub fn chains_to_ca(&self) -> bool {
        let p = &self.0;
        p.handshake_verified
            || *p.chains_to_ca.get_or_init(|| {
                p.ca.as_ref().is_some_and(|ca| {
                    ca.verify_client_cert(&p.chain[0], &p.chain[1..], UnixTime::now())
                        .is_ok()
                })
            })
    }
}

/// RFC 8705 §3.1 `x5t#S256`: base64url (no padding) SHA-256 of a certificate's DER.
pub fn thumbprint(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

/// The handshake side of [`ClientCerts::Optional`]: asks for a certificate, does not require
/// one, and accepts any whose handshake signature verifies (the client holds its key).
#[derive(Debug)]
pub struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCertificate {
    /// With the provider's signature algorithms.
    pub fn new(provider: &rustls::crypto::CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deliberately no chain check here: see `ClientCerts::Optional`. The handshake
        // signature (below) still proves possession of the certificate's key.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
