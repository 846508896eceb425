//! One [`Config`] from defaults < TOML file < `ARBITER_*` environment < command-line flags.
//! The layering of environment and flags happens in the CLI (clap reads both); this module
//! owns the file format, the defaults and the checks. Unknown keys are an error.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod admin;
mod bundles;
mod console;
mod fleet;
mod introspection;
mod limits;
mod shadow;
mod store;
mod telemetry;
mod vocabulary;

pub use admin::{AdminAuthentication, AdminConfig};
pub use bundles::BundlesConfig;
pub use console::ConsoleConfig;
pub use fleet::FleetConfig;
pub use introspection::{IntrospectionAuth, IntrospectionConfig};
pub use limits::{AuthzenConfig, GrpcLimits, HttpLimits, PepAuthentication};
pub use shadow::ShadowConfig;
pub use store::StoreConfig;
pub use telemetry::TelemetryConfig;

pub use vocabulary::{check_resource_uri, redacted_url, ClientCerts, Listener, SigningAlg};

/// Errors reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, with its line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything the server needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where the OAuth HTTP endpoints listen.
    pub http_addr: SocketAddr,
    /// A gRPC listener of its own for the control plane (`PolicyAdmin`); when set, the
    /// gRPC listener serves decisions only.
    pub admin_addr: Option<SocketAddr>,
    /// The policy directory, or a bundle: an `http(s)://` or `s3://` URL, or a `.cjar` file
    /// (see `[bundles]`).
    pub policies: PathBuf,
    /// Trust and polling of policy bundles.
    pub bundles: BundlesConfig,
    /// How this replica appears in the fleet view.
    pub fleet: FleetConfig,
    /// A candidate policy set decided beside the live one.
    pub shadow: ShadowConfig,
    /// The workbench (`/console`) and its sign-in.
    pub console: ConsoleConfig,
    /// Where generated keys (and later the SQLite store) live.
    pub data_dir: PathBuf,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Write the `replay` record (method, path, context, verified claims) on every decision
    /// log line, for `arbiter policies replay`; off saves its serialization and ~700 bytes
    /// a line for deployments that never replay.
    pub decision_log_replay: bool,
    /// Allow plaintext listeners on addresses other than loopback without `[tls]` (TLS
    /// terminated in front of Arbiter); every start with it logs a warning.
    pub allow_plaintext: bool,
    /// Serve both listeners over TLS.
    pub tls: Option<TlsConfig>,
    /// Reload the policy directory when its files change.
    pub watch_policies: bool,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_seconds: u64,
    /// Upper bound of `cache_ttl_seconds` in answers.
    pub decision_cache_ttl_seconds: u32,
    /// Verified tokens kept in memory until their `exp`.
    pub token_cache_capacity: usize,
    /// The development issuer, whose key lives under `data_dir`.
    pub dev_issuer: DevIssuerConfig,
    /// The paired authorization server.
    pub oauth: OAuthConfig,
    /// After SIGTERM/SIGINT, how long in-flight requests may take before the process exits.
    pub shutdown_grace_seconds: u64,
    /// Software statements: the review workflow and who may sign them.
    pub ssa: SsaConfig,
    /// Where clients, keys, revocations and statements are kept.
    pub store: StoreConfig,
    /// External issuers whose tokens are trusted.
    pub issuers: Vec<IssuerConfig>,
    /// Time and connection limits of the HTTP listener.
    pub http: HttpLimits,
    /// Stream, keep-alive, deadline and connection limits of the gRPC listener.
    pub grpc: GrpcLimits,
    /// Who may ask the AuthZEN API.
    pub authzen: AuthzenConfig,
    /// Who may use the control plane, and its budgets.
    pub admin: AdminConfig,
    /// Identity headers (credentials, cookies, client addresses) policies may set as
    /// outputs anyway; none by default.
    pub allow_output_headers: Vec<String>,
    /// OpenTelemetry traces (off unless an endpoint is set).
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_addr: None,
            policies: PathBuf::from("policies"),
            bundles: BundlesConfig::default(),
            fleet: FleetConfig::default(),
            shadow: ShadowConfig::default(),
            console: ConsoleConfig::default(),
            data_dir: PathBuf::from("data"),
            log_format: LogFormat::Text,
            decision_log_replay: true,
            allow_plaintext: false,
            tls: None,
            watch_policies: true,
            leeway_seconds: 30,
            decision_cache_ttl_seconds: 60,
            token_cache_capacity: 100_000,
            dev_issuer: DevIssuerConfig::default(),
            oauth: OAuthConfig::default(),
            shutdown_grace_seconds: 30,
            ssa: SsaConfig::default(),
            store: StoreConfig::default(),
            issuers: Vec::new(),
            http: HttpLimits::default(),
            grpc: GrpcLimits::default(),
            authzen: AuthzenConfig::default(),
            admin: AdminConfig::default(),
            allow_output_headers: Vec::new(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The built-in development issuer: an ES256 key generated on first start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevIssuerConfig {
    /// Whether tokens from `arbiter token dev` are trusted. Unset: only while both listeners
    /// are on loopback addresses (see [`Config::dev_issuer_enabled`]).
    pub enabled: Option<bool>,
    /// The `iss` of development tokens.
    pub issuer: String,
    /// The `aud` of development tokens.
    pub audience: String,
}

impl Default for DevIssuerConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            issuer: "https://arbiter.local/dev".into(),
            audience: "arbiter".into(),
        }
    }
}

/// The paired authorization server (token endpoint, JWKS, metadata).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// Serve the OAuth endpoints and trust their tokens.
    pub enabled: bool,
    /// The issuer identifier: the `iss` of its tokens and the base URL of its endpoints.
    /// Empty (the default): `http://<http_addr>` (`https` with TLS), see
    /// [`Config::follow_listener`].
    pub issuer: String,
    /// The `aud` of its access tokens.
    pub audience: String,
    /// Access token lifetime in seconds.
    pub access_token_ttl_seconds: u64,
    /// Proxies (CIDRs) whose `X-Forwarded-For` and `X-Fraud-Score` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Rotate the signing key this often (seconds, counted from the active key's creation,
    /// so restarts do not postpone it); never when absent.
    pub key_rotation_seconds: Option<u64>,
    /// How long a new signing key (access tokens and software statements) is published
    /// before it signs, so every replica sharing the store, and every verifier caching the
    /// JWKS, knows it first. Default: 0 with the embedded SQLite store (one process), 10
    /// with a shared database (replicas re-read keys every 5 s). Raise it to the JWKS cache
    /// time of resource servers that do not refetch on an unknown `kid`.
    pub key_publish_ahead_seconds: Option<u64>,
    /// The algorithm of new signing keys: `ES256` (default), `EdDSA` or `RS256`. Changing it
    /// rotates to a key of the new algorithm at the next start.
    pub signing_alg: SigningAlg,
    /// Resource servers (absolute URIs) a client may name with the RFC 8707 `resource`
    /// parameter to get tokens addressed to them; the PDP accepts them as audiences of this
    /// issuer's tokens. A client's own `resources` list narrows this further.
    pub resources: Vec<String>,
    /// Let clients register (RFC 7591) without a software statement. Off by default: a
    /// client then gets no scopes it was not approved for.
    pub open_registration: bool,
    /// The scopes a client registered without a statement may ever get; unset: any but
    /// Arbiter's own (`arbiter.*`, the statement workflow's).
    pub open_registration_scopes: Option<Vec<String>>,
    /// Registrations (RFC 7591) accepted per minute, all callers together (a burst of as
    /// many is allowed); more are `429` with `Retry-After`.
    pub registrations_per_minute: u32,
    /// Let clients register URLs (`jwks_uri`, `redirect_uris`) on loopback, private or
    /// link-local addresses; off by default (Arbiter fetches a client's `jwks_uri`).
    pub allow_private_client_urls: bool,
}

/// TLS for the listeners: PEM files, re-read when they change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle (PEM) client certificates must chain to; when set, a client certificate
    /// is required (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// How often to look for changed files, in seconds.
    #[serde(default = "default_tls_reload")]
    pub reload_seconds: u64,
    /// Client certificates on the gRPC listener: `none` or `required`; default `required`
    /// with a `client_ca_file`, else `none`.
    #[serde(default)]
    pub grpc_client_certs: Option<ClientCerts>,
    /// Client certificates on the HTTP listener: `none`, `required`, or `optional` (asked
    /// for, any accepted by the handshake, judged per request: RFC 8705 client
    /// authentication at `/token`); default as for gRPC.
    #[serde(default)]
    pub http_client_certs: Option<ClientCerts>,
}

impl TlsConfig {
    /// What a listener asks of client certificates.
    pub fn client_certs(&self, listener: Listener) -> ClientCerts {
        let set = match listener {
            Listener::Grpc => self.grpc_client_certs,
            Listener::Http => self.http_client_certs,
        };
        set.unwrap_or(if self.client_ca_file.is_some() {
            ClientCerts::Required
        } else {
            ClientCerts::None
        })
    }
}

fn default_tls_reload() -> u64 {
    10
}

/// Software statements (RFC 7591 §2.3): the request → review → issue workflow, and the
/// issuers whose statements registration accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsaConfig {
    /// Serve the workflow and accept Arbiter's own statements at registration (only with
    /// the authorization server enabled).
    pub enabled: bool,
    /// Algorithm of the statement signing key: `ES256`, `EdDSA` or `RS256`.
    pub signing_alg: SigningAlg,
    /// Validity of a statement when the reviewer gives none (seconds).
    pub default_validity_seconds: u64,
    /// Longest validity a reviewer may give (seconds); retired statement keys stay
    /// published this long.
    pub max_validity_seconds: u64,
    /// Other signers of statements registration accepts (e.g. a regulator).
    pub trusted_issuers: Vec<StatementIssuerConfig>,
}

impl Default for SsaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            signing_alg: SigningAlg::ES256,
            default_validity_seconds: 365 * 24 * 3600,
            max_validity_seconds: 2 * 365 * 24 * 3600,
            trusted_issuers: Vec::new(),
        }
    }
}

/// An external signer of software statements, by its JWKS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementIssuerConfig {
    /// Exact `iss` of its statements.
    pub issuer: String,
    /// JWKS document URL.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// JWKS document on disk.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            issuer: String::new(),
            audience: "arbiter".into(),
            access_token_ttl_seconds: 3600,
            trusted_proxies: Vec::new(),
            key_rotation_seconds: None,
            key_publish_ahead_seconds: None,
            signing_alg: SigningAlg::ES256,
            resources: Vec::new(),
            open_registration: false,
            open_registration_scopes: None,
            registrations_per_minute: 120,
            allow_private_client_urls: false,
        }
    }
}

/// An external issuer: where its keys come from (or where its opaque tokens are
/// introspected) and which audiences it may address.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// JWKS document URL (fetched at start, on unknown `kid`, and as `Cache-Control` allows).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// JWKS document on disk.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Shared secret for HS256/384/512; only then are HMAC tokens accepted from this issuer.
    #[serde(default)]
    pub hmac_secret: Option<String>,
    /// Required JWT `typ` header, e.g. `at+jwt` (RFC 9068); unchecked when absent.
    #[serde(default)]
    pub required_typ: Option<String>,
    /// Minimum seconds between refreshes triggered by unknown key ids.
    #[serde(default = "default_cooldown")]
    pub jwks_refresh_cooldown_seconds: u64,
    /// Bounds on the scheduled refresh interval taken from `Cache-Control: max-age`.
    #[serde(default = "default_min_refresh")]
    pub jwks_min_refresh_seconds: u64,
    /// Upper bound on the scheduled refresh interval.
    #[serde(default = "default_max_refresh")]
    pub jwks_max_refresh_seconds: u64,
    /// Claims naming the client, the first present wins; default `client_id`, `azp`, `cid`,
    /// `appid`. A token naming none is an end user's, never a client's.
    #[serde(default = "default_client_claims")]
    pub client_claims: Vec<String>,
    /// The claim naming the end user; default `sub`.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Its RFC 7662 introspection endpoint, for opaque (reference) access tokens. With it,
    /// a key source is optional: an issuer without keys has every token introspected.
    #[serde(default)]
    pub introspection: Option<IntrospectionConfig>,
}

impl IssuerConfig {
    /// Which claims name this issuer's clients and users.
    pub fn identity_claims(&self) -> IdentityClaims {
        IdentityClaims {
            client: self.client_claims.clone(),
            user: self.user_claim.clone(),
        }
    }
}

/// Which claims of a token name the client and which the end user (per issuer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityClaims {
    /// Claims naming the client, the first present wins (RFC 9068 `client_id`; `azp` from
    /// OpenID Connect providers such as Keycloak; `cid` from Okta; `appid` from Entra ID).
    pub client: Vec<String>,
    /// The claim naming the end user (`sub`).
    pub user: String,
}

impl Default for IdentityClaims {
    fn default() -> Self {
        Self {
            client: default_client_claims(),
            user: default_user_claim(),
        }
    }
}

fn default_client_claims() -> Vec<String> {
    ["client_id", "azp", "cid", "appid"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}
fn default_user_claim() -> String {
    "sub".into()
}

fn default_cooldown() -> u64 {
    30
}
fn default_min_refresh() -> u64 {
    60
}
fn default_max_refresh() -> u64 {
    3600
}

impl fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_file", &self.jwks_file)
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("required_typ", &self.required_typ)
            .field("client_claims", &self.client_claims)
            .field("user_claim", &self.user_claim)
            .field("introspection", &self.introspection)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// A configuration for tests: ephemeral address, given directories.
    pub fn for_test(policies: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            policies: policies.into(),
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// How long a new signing key is published before it signs: `[oauth]
    /// key_publish_ahead_seconds`, or its default for the store in use.
    pub fn key_publish_ahead_seconds(&self) -> u64 {
        self.oauth
            .key_publish_ahead_seconds
            .unwrap_or(if self.store.url.is_some() { 10 } else { 0 })
    }

    /// How AuthZEN callers (PEPs) authenticate: as configured, `auto` being none on a
    /// loopback HTTP listener and a token or a certificate on any other.
    pub fn authzen_pep_authentication(&self) -> PepAuthentication {
        match self.authzen.pep_authentication {
            PepAuthentication::Auto if self.http_addr.ip().is_loopback() => PepAuthentication::None,
            PepAuthentication::Auto => PepAuthentication::TokenOrCertificate,
            other => other,
        }
    }

    /// Whether the development issuer is trusted: as configured, or, when `[dev_issuer]
    /// enabled` is not set, only while both listeners are on loopback (a server others can
    /// reach never trusts development tokens unless told to).
    pub fn dev_issuer_enabled(&self) -> bool {
        self.dev_issuer.enabled.unwrap_or_else(|| {
            self.grpc_addr.ip().is_loopback() && self.http_addr.ip().is_loopback()
        })
    }

    /// Without an explicit `[oauth] issuer`, the issuer (and every URL of the metadata) is
    /// the HTTP listener's: `http://<http_addr>`, `https` when TLS is on. An unspecified
    /// address (`0.0.0.0`, `[::]`) says nothing about how clients reach it, so loopback of
    /// the same family stands in; set `issuer` to the public URL for anything else.
    pub fn follow_listener(&mut self) {
        if !self.oauth.issuer.is_empty() {
            return;
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut addr = self.http_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        self.oauth.issuer = format!("{scheme}://{addr}");
    }

    /// Checks values that TOML types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if let Some(m) = self
            .http
            .invalid("http")
            .or_else(|| self.grpc.invalid())
            .or_else(|| self.telemetry.invalid())
            .or_else(|| self.admin.invalid(self.tls.is_some()))
            .or_else(|| self.bundles.invalid())
            .or_else(|| self.fleet.invalid())
            .or_else(|| self.shadow.invalid())
            .or_else(|| self.console.invalid())
            .or_else(|| self.console_invalid())
        {
            return invalid(m);
        }
        if self.authzen.pep_scope.trim().is_empty() {
            return invalid("[authzen] `pep_scope` is empty".into());
        }
        let certificates = self.tls.as_ref().is_some_and(|t| {
            t.client_ca_file.is_some() && t.client_certs(Listener::Http) != ClientCerts::None
        });
        if self.authzen.pep_authentication == PepAuthentication::Certificate && !certificates {
            return invalid(
                "[authzen] pep_authentication = \"certificate\" needs [tls] client_ca_file and http_client_certs other than \"none\"".into(),
            );
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            let at = format!("issuers[{i}] (`{}`)", issuer.issuer);
            if issuer.issuer.is_empty() {
                return invalid(format!("{at}: `issuer` is empty"));
            }
            if issuer.audiences.is_empty() {
                return invalid(format!("{at}: `audiences` must name at least one audience"));
            }
            let sources = [
                issuer.jwks_url.is_some(),
                issuer.jwks_file.is_some(),
                issuer.hmac_secret.is_some(),
            ]
            .iter()
            .filter(|&&b| b)
            .count();
            if sources > 1 || (sources == 0 && issuer.introspection.is_none()) {
                return invalid(format!(
                    "{at}: give exactly one of `jwks_url`, `jwks_file` or `hmac_secret` (or an `introspection` endpoint, with at most one of them)"
                ));
            }
            if let Some(introspection) = &issuer.introspection {
                if let Some(why) = introspection.invalid() {
                    return invalid(format!("{at}.introspection: {why}"));
                }
                if introspection.jwt_response
                    && issuer.jwks_url.is_none()
                    && issuer.jwks_file.is_none()
                {
                    return invalid(format!(
                        "{at}.introspection: `jwt_response` is verified with the issuer's keys: give `jwks_url` or `jwks_file`"
                    ));
                }
                let earlier = self.issuers[..i]
                    .iter()
                    .filter_map(|o| o.introspection.as_ref());
                for other in earlier {
                    if introspection.default && other.default {
                        return invalid(format!(
                            "{at}.introspection: only one issuer can be the `default` for opaque tokens"
                        ));
                    }
                    if let Some(p) = introspection
                        .token_prefixes
                        .iter()
                        .find(|p| other.token_prefixes.contains(p))
                    {
                        return invalid(format!(
                            "{at}.introspection: token prefix `{p}` is another issuer's too"
                        ));
                    }
                }
            }
            if let Some(secret) = &issuer.hmac_secret {
                if secret.len() < 32 {
                    return invalid(format!("{at}: `hmac_secret` must be at least 32 bytes"));
                }
            }
            if issuer.jwks_min_refresh_seconds > issuer.jwks_max_refresh_seconds {
                return invalid(format!(
                    "{at}: `jwks_min_refresh_seconds` is above `jwks_max_refresh_seconds`"
                ));
            }
            if self.issuers[..i].iter().any(|o| o.issuer == issuer.issuer)
                || (self.dev_issuer_enabled() && self.dev_issuer.issuer == issuer.issuer)
                || (self.oauth.enabled && self.oauth.issuer == issuer.issuer)
            {
                return invalid(format!("{at}: issuer configured twice"));
            }
        }
        let admin_certificates = self.admin.client_ca_file.is_some();
        if let Some(tls) = &self.tls {
            if tls.client_certs(Listener::Grpc) == ClientCerts::Optional && !admin_certificates {
                return invalid(
                    "tls.grpc_client_certs: `none` or `required` (optional certificates are for RFC 8705 client authentication at the HTTP token endpoint, and for administrators' certificates with [admin] client_ca_file)".into(),
                );
            }
            for listener in [Listener::Grpc, Listener::Http] {
                if tls.client_certs(listener) == ClientCerts::Required
                    && tls.client_ca_file.is_none()
                {
                    return invalid(format!(
                        "tls: {listener:?} client certificates are `required` but no `client_ca_file` is set"
                    ));
                }
            }
        }
        let listeners = [
            ("grpc_addr", Some(self.grpc_addr)),
            ("http_addr", Some(self.http_addr)),
            ("admin_addr", self.admin_addr),
        ];
        for (name, addr) in listeners.into_iter().filter_map(|(n, a)| Some((n, a?))) {
            if !addr.ip().is_loopback() && !self.allow_plaintext && self.tls.is_none() {
                return invalid(format!(
                    "{name} {addr} is not a loopback address and Arbiter serves plaintext: set `allow_plaintext = true` (or --allow-plaintext) and terminate TLS in front of it"
                ));
            }
        }
        if self.ssa.default_validity_seconds == 0
            || self.ssa.default_validity_seconds > self.ssa.max_validity_seconds
        {
            return invalid(
                "ssa: default_validity_seconds must be positive and at most max_validity_seconds"
                    .into(),
            );
        }
        for (i, t) in self.ssa.trusted_issuers.iter().enumerate() {
            if t.issuer.is_empty() || t.jwks_url.is_some() == t.jwks_file.is_some() {
                return invalid(format!(
                    "ssa.trusted_issuers[{i}]: give `issuer` and exactly one of `jwks_url` or `jwks_file`"
                ));
            }
            if t.issuer == self.oauth.issuer {
                return invalid(format!(
                    "ssa.trusted_issuers[{i}]: `{}` is Arbiter's own issuer",
                    t.issuer
                ));
            }
        }
        for r in &self.oauth.resources {
            if let Err(why) = check_resource_uri(r) {
                return invalid(format!("oauth.resources: `{r}` {why}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
