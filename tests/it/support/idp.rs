//! Keys and an external identity provider: a JWKS endpoint over real HTTP whose keys can
//! change, and tokens signed with real keys.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arbiter::config::IssuerConfig;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::now;

/// A signing key of an external issuer.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
    /// DER of the public key (SubjectPublicKeyInfo), e.g. for the HS256-with-public-key attack.
    pub public_der: Vec<u8>,
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
        let encoding = EncodingKey::from_ec_der(&der);
        let public_der = pair.public_key().as_der().unwrap().as_ref().to_vec();
        Self::finish(kid, Algorithm::ES256, encoding, public_der)
    }

    pub fn rs256(kid: &str) -> Self {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair as _;
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8: Pkcs8V1Der = pair.as_der().unwrap();
        let encoding =
            EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).unwrap();
        let public_der = pair.public_key().as_der().unwrap().as_ref().to_vec();
        Self::finish(kid, Algorithm::RS256, encoding, public_der)
    }

    pub fn eddsa(kid: &str) -> Self {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pair = Ed25519KeyPair::generate().unwrap();
        let der = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
        let raw = pair.public_key().as_ref().to_vec();
        let public_der = pair.public_key().as_der().unwrap().as_ref().to_vec();
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig",
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        });
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&der),
            jwk,
            public_der,
        }
    }

    fn finish(kid: &str, alg: Algorithm, encoding: EncodingKey, public_der: Vec<u8>) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        Self {
            kid: kid.into(),
            alg,
            encoding,
            jwk: serde_json::to_value(jwk).unwrap(),
            public_der,
        }
    }

    /// Signs claims with this key under its own `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs claims with this key but names another `kid` in the header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// An external identity provider: a JWKS endpoint over real HTTP whose keys can change.
pub struct TestIdp {
    pub issuer: String,
    pub jwks_url: String,
    pub state: Arc<IdpState>,
    shutdown: CancellationToken,
}

pub struct IdpState {
    pub keys: Mutex<Vec<Value>>,
    pub fetches: AtomicUsize,
    pub failing: AtomicBool,
}

impl TestIdp {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let state = Arc::new(IdpState {
            keys: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            fetches: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let served = state.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let s = served.clone();
                async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    if s.failing.load(Ordering::SeqCst) {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    let keys = s.keys.lock().unwrap().clone();
                    Ok((
                        [("cache-control", "max-age=300")],
                        axum::Json(json!({ "keys": keys })),
                    ))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        Self {
            issuer: format!("http://{addr}"),
            jwks_url: format!("http://{addr}/jwks"),
            state,
            shutdown,
        }
    }

    /// Issuer configuration trusting this IdP for audience `api`.
    pub fn config(&self) -> IssuerConfig {
        let toml = format!(
            "issuer = {:?}\naudiences = [\"api\"]\njwks_url = {:?}\njwks_refresh_cooldown_seconds = 1\n",
            self.issuer, self.jwks_url
        );
        toml::from_str(&toml).unwrap()
    }

    /// Standard claims for a client-credentials token of this IdP.
    pub fn claims(&self, client: &str, scope: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer, "aud": "api", "sub": client, "client_id": client,
            "scope": scope, "iat": now, "exp": now + 300, "jti": format!("jti-{client}-{now}"),
        })
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
