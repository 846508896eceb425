//! The client certificate of a TLS connection, as the HTTP handlers see it: its chain, its
//! RFC 8705 thumbprint, and whether it chains to the configured client CA. The listener's
//! [`ClientCerts`] mode says whether a certificate is asked for and what the handshake
//! itself checks.

use std::sync::Arc;

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use sha2::Digest as _;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms,
};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{self, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// What a listener asks of clients' certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCerts {
    /// No certificate is asked for.
    None,
    /// A certificate is asked for but not required, and the handshake accepts any whose
    /// owner proves possession of its key; what it is worth is decided per request (RFC
    /// 8705 client authentication at `/token`: chained to the client CA for
    /// `tls_client_auth`, registered by the client for `self_signed_tls_client_auth`).
    Optional,
    /// A certificate chaining to the client CA is required (mTLS).
    Required,
}

/// The certificate a client presented on its connection, attached to every request on it.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// Leaf first.
    pub chain: Arc<[CertificateDer<'static>]>,
    /// RFC 8705 `x5t#S256` of the leaf: base64url SHA-256 of its DER.
    pub thumbprint: String,
    /// Whether the chain verified against the configured client CA at connection time.
    pub chains_to_ca: bool,
}

impl PeerCertificate {
    /// A presented chain, verified against `ca` (when there is one).
    pub fn new(chain: &[CertificateDer<'_>], ca: Option<&dyn ClientCertVerifier>) -> Option<Self> {
        let (leaf, intermediates) = chain.split_first()?;
        let chains_to_ca = ca.is_some_and(|ca| {
            ca.verify_client_cert(leaf, intermediates, UnixTime::now())
                .is_ok()
        });
        Some(Self {
            thumbprint: thumbprint(leaf),
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            chains_to_ca,
        })
    }

    /// The leaf certificate's DER.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
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
