//! Clients without registration: create, rotate secrets, disable. Secrets are 256 bits from
//! the OS random generator, shown once, and stored only as SHA-256 digests compared in
//! constant time. A slow password hash is not needed: these are random keys, not passwords a
//! person chose, so a digest cannot be brute-forced, and a slow hash would cap token
//! throughput.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::store::{ClientRecord, Store, StoreError};

/// The authentication methods a client can be created with.
pub const AUTH_METHODS: [&str; 5] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
];

/// Methods that authenticate with something other than a secret Arbiter generates.
fn secretless(method: &str) -> bool {
    matches!(
        method,
        "private_key_jwt" | "tls_client_auth" | "self_signed_tls_client_auth"
    )
}

/// Methods whose client registers keys (a JWKS or its URI): signing keys for
/// `private_key_jwt`, certificates (`x5c`) for `self_signed_tls_client_auth`.
fn keyed(method: &str) -> bool {
    matches!(method, "private_key_jwt" | "self_signed_tls_client_auth")
}

/// Errors of client management.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such client.
    #[error("no client `{0}`")]
    NotFound(String),
    /// Invalid input.
    #[error("{0}")]
    Invalid(String),
    /// The random generator failed.
    #[error("cannot generate randomness")]
    Random,
}

/// What a new client is: everything but its generated id and secret.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    /// Human-readable name.
    pub name: String,
    /// Scopes it may ever be granted.
    pub scopes: Vec<String>,
    /// One of [`AUTH_METHODS`].
    pub auth_method: String,
    /// Its JWKS, for (and only for) `private_key_jwt` and `self_signed_tls_client_auth`
    /// (whose keys carry the client's certificates in `x5c`).
    pub jwks: Option<serde_json::Value>,
    /// Or where its JWKS is published (https, or http on loopback).
    pub jwks_uri: Option<String>,
    /// RFC 8707 resources it may ask tokens for.
    pub resources: Vec<String>,
    /// Accept the token endpoint URL as its assertions' `aud` (old clients only).
    pub legacy_audience: bool,
    /// `software_id` of its software statement.
    pub software_id: Option<String>,
    /// Organisation.
    pub org: Option<String>,
    /// For `tls_client_auth`: the certificate subject, `(parameter, value)` (see
    /// [`crate::oauth::mtls::SUBJECT_PARAMETERS`]).
    pub tls_subject: Option<(String, String)>,
}

/// A new client with its secret, shown once.
#[derive(Debug)]
pub struct CreatedClient {
    /// The stored record (secret digest only).
    pub record: ClientRecord,
    /// The secret (none for `private_key_jwt`); only now is it known.
    pub secret: Option<String>,
}

/// Creates a client with a generated id, and a generated secret unless it authenticates
/// with `private_key_jwt` (RFC 7523) by a key of its JWKS.
pub async fn create(store: &dyn Store, spec: &ClientSpec) -> Result<CreatedClient, ClientError> {
    let created = new_credentials(spec)?;
    store.create_client(&created.record).await?;
    Ok(created)
}

/// Checks a spec and makes the client's id and secret, without storing it (registration
/// adds more before it stores the record in its own transaction).
pub fn new_credentials(spec: &ClientSpec) -> Result<CreatedClient, ClientError> {
    check(spec)?;
    let secret = if secretless(&spec.auth_method) {
        None
    } else {
        Some(random_token(32)?)
    };
    let now = crate::clock::now_i64();
    let record = ClientRecord {
        // hex, so an id never starts with `-` (it is a command-line argument too)
        client_id: random_hex(16)?,
        name: spec.name.clone(),
        secret_sha256: secret.as_deref().map(digest),
        allowed_scopes: spec.scopes.clone(),
        auth_method: spec.auth_method.clone(),
        jwks: spec.jwks.clone(),
        jwks_uri: spec.jwks_uri.clone(),
        software_id: spec.software_id.clone(),
        org: spec.org.clone(),
        resources: spec.resources.clone(),
        legacy_audience: spec.legacy_audience,
        statement: None,
        registration_token_sha256: None,
        metadata: None,
        tls_subject: spec.tls_subject.clone(),
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    Ok(CreatedClient { record, secret })
}

fn check(spec: &ClientSpec) -> Result<(), ClientError> {
    let invalid = |m: String| Err(ClientError::Invalid(m));
    if spec.name.trim().is_empty() {
        return invalid("a client needs a name".into());
    }
    if !AUTH_METHODS.contains(&spec.auth_method.as_str()) {
        return invalid(format!(
            "unknown auth method `{}` (one of {})",
            spec.auth_method,
            AUTH_METHODS.join(", ")
        ));
    }
    for s in &spec.scopes {
        if s.is_empty()
            || s.chars()
                .any(|c| !matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
        {
            return invalid(format!("`{s}` is not a valid scope"));
        }
    }
    for r in &spec.resources {
        if let Err(why) = super::resource::check_resource_uri(r) {
            return invalid(format!("resource `{r}` {why}"));
        }
    }
    let keyed = spec.jwks.is_some() || spec.jwks_uri.is_some();
    if spec.jwks.is_some() && spec.jwks_uri.is_some() {
        return invalid("give a JWKS or a JWKS URI, not both".into());
    }
    let method = spec.auth_method.as_str();
    if self::keyed(method) && !keyed {
        return invalid(format!(
            "a {method} client is created with its JWKS (--jwks FILE) or JWKS URI"
        ));
    }
    if !self::keyed(method) && keyed {
        return invalid(format!(
            "a JWKS is only for private_key_jwt and self_signed_tls_client_auth clients, not {method}"
        ));
    }
    match (&spec.tls_subject, method == "tls_client_auth") {
        (Some((parameter, value)), true) => {
            super::mtls::check_subject(parameter, value).map_err(ClientError::Invalid)?
        }
        (None, true) => {
            return invalid(
                "a tls_client_auth client names its certificate's subject (RFC 8705 §2.1.2: --tls-subject-dn, --tls-san-dns, --tls-san-uri, --tls-san-ip or --tls-san-email)".into(),
            )
        }
        (Some(_), false) => {
            return invalid(format!(
                "a certificate subject is only for tls_client_auth clients, not {method}"
            ))
        }
        (None, false) => {}
    }
    if spec.auth_method != "private_key_jwt" && spec.legacy_audience {
        return invalid("the legacy audience only concerns private_key_jwt clients".into());
    }
    if let Some(uri) = &spec.jwks_uri {
        check_client_url(uri).map_err(ClientError::Invalid)?;
    }
    if let Some(jwks) = &spec.jwks {
        if method == "self_signed_tls_client_auth" {
            if super::mtls::registered_certificates(jwks).next().is_none() {
                return invalid(
                    "a self_signed_tls_client_auth JWKS carries the client's certificates in `x5c` (RFC 8705 §2.2.2)".into(),
                );
            }
            return Ok(());
        }
        let (keys, skipped) = crate::token::jwks::KeySet::from_jwks(jwks.to_string().as_bytes())
            .map_err(ClientError::Invalid)?;
        if keys.is_empty() {
            return invalid(format!(
                "the JWKS has no usable signing key ({})",
                skipped.join("; ")
            ));
        }
    }
    Ok(())
}

/// Whether `uri` may be one of a client's URLs (where it publishes its keys, where it is
/// redirected): https, or http on a loopback host (for development), without a fragment or
/// control characters.
pub fn check_client_url(uri: &str) -> Result<(), String> {
    client_url(uri, true).map(drop)
}

/// A client's URL as it is stored: checked as [`check_client_url`] does, normalised by the
/// URL parser (the text stored is the text checked), and — unless `private_ok` — not naming a
/// loopback, private, link-local or unspecified address or `localhost`, so a URL a client
/// chose cannot make Arbiter fetch from inside its own network.
pub fn client_url(uri: &str, private_ok: bool) -> Result<String, String> {
    let shown = crate::telemetry::printable(uri);
    if uri.chars().any(char::is_control) {
        return Err(format!("`{shown}` contains control characters"));
    }
    let parsed = url::Url::parse(uri)
        .ok()
        .filter(|u| {
            u.fragment().is_none()
                && (u.scheme() == "https"
                    || (u.scheme() == "http"
                        && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))))
        })
        .ok_or_else(|| {
            format!("`{shown}` must be an https URL (or http on loopback) without fragment")
        })?;
    if !private_ok && names_internal_host(&parsed) {
        return Err(format!(
            "`{shown}` names a loopback, private or link-local address; a client's URLs must be public (`[oauth] allow_private_client_urls` allows them)"
        ));
    }
    Ok(parsed.to_string())
}

/// Whether a URL's host is `localhost` or an address inside the machine or its network.
fn names_internal_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => is_internal_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => is_internal_ip(ip.into()),
        None => true,
    }
}

/// Whether an address is inside the machine or its network: loopback, private, link-local,
/// shared (100.64/10), unique-local, unspecified or broadcast (IPv4-mapped ones too). The one
/// rule for client URLs at registration and for what their host names resolve to.
pub fn is_internal_ip(ip: std::net::IpAddr) -> bool {
    let v4 = |ip: std::net::Ipv4Addr| {
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || (ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]))
    };
    match ip {
        std::net::IpAddr::V4(ip) => v4(ip),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(v4)
        }
    }
}

/// Replaces a client's secret; returns the new one (shown once).
pub async fn rotate_secret(store: &dyn Store, client_id: &str) -> Result<String, ClientError> {
    let secret = random_token(32)?;
    if !store.set_client_secret(client_id, &digest(&secret)).await? {
        return Err(ClientError::NotFound(client_id.to_owned()));
    }
    Ok(secret)
}

/// Whether `presented` is the client's secret, in constant time.
pub fn secret_matches(record: &ClientRecord, presented: &str) -> bool {
    match &record.secret_sha256 {
        Some(stored) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(stored, &digest(presented)).is_ok()
        }
        None => false,
    }
}

/// SHA-256 of a generated secret or token, as stored (the value itself never is).
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `bytes` of OS randomness, hex.
fn random_hex(bytes: usize) -> Result<String, ClientError> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| ClientError::Random)?;
    Ok(hex::encode(buf))
}

/// `bytes` of OS randomness, base64url without padding.
pub fn random_token(bytes: usize) -> Result<String, ClientError> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| ClientError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// Whether nobody vouched for what a client says of itself: it registered over RFC 7591
/// without a software statement (open registration). Statement clients carry what the
/// statement's signer said; clients made with `arbiter clients create`, what an operator said.
pub fn is_self_asserted(record: &ClientRecord) -> bool {
    record.statement.is_none() && record.registration_token_sha256.is_some()
}

/// The attributes of a registered client's `Client` entity in `IssueScope` decisions:
/// `name`, and `software_id`/`org` when someone vouched for them. A self-registered client's
/// own claims go under `self_asserted` instead, so a rule on `principal.org` never matches
/// what a client merely said of itself.
pub fn policy_attributes(record: &ClientRecord) -> serde_json::Map<String, serde_json::Value> {
    let mut vouched = serde_json::Map::new();
    if let Some(v) = &record.software_id {
        vouched.insert("software_id".into(), v.clone().into());
    }
    if let Some(v) = &record.org {
        vouched.insert("org".into(), v.clone().into());
    }
    let mut attributes = serde_json::Map::new();
    attributes.insert("name".into(), record.name.clone().into());
    if is_self_asserted(record) {
        attributes.insert("self_asserted".into(), vouched.into());
    } else {
        attributes.extend(vouched);
    }
    attributes
}
