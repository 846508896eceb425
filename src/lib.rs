//! Arbiter: a centralized Policy Decision Point for APIs.
//!
//! Gateways ask over gRPC whether a bearer token may do METHOD on PATH in a context; Cedar
//! policies from a hot-reloadable directory decide, with OAuth scopes as their factors.
//! This crate root composes the subsystems; `main.rs` is only the command line.
//!
//! ```no_run
//! # async fn run() -> Result<(), arbiter::StartError> {
//! let config = arbiter::Config::default();
//! let grpc = tokio::net::TcpListener::bind(config.grpc_addr).await.map_err(arbiter::StartError::Bind)?;
//! let http = tokio::net::TcpListener::bind(config.http_addr).await.map_err(arbiter::StartError::Bind)?;
//! arbiter::Arbiter::build(config).await?.serve(grpc, Some(http), Default::default()).await
//! # }
//! ```

pub mod authzen;
pub mod bench;
pub mod client;
pub mod config;
pub mod decision;
pub mod gateway;
pub mod grpc;
pub mod http;
pub mod oauth;
pub mod openapi;
pub mod policy;
pub mod ssa;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use decision::{Answer, AuthzRequest, Pdp, Reason, Verdict};

use token::keys::{load_or_generate_dev_key, SigningKey};
use token::{Issuer, Verifier};

/// How long start-up waits for each issuer's first JWKS fetch before serving anyway.
const FIRST_JWKS_FETCH: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The policy directory is invalid.
    #[error(transparent)]
    Policies(#[from] policy::LoadError),
    /// The development key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] token::keys::KeyError),
    /// The listener could not be bound.
    #[error("cannot bind: {0}")]
    Bind(std::io::Error),
    /// The policy directory could not be watched.
    #[error(transparent)]
    Watch(#[from] policy::watch::WatchError),
    /// Reflection could not be set up.
    #[error("grpc reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The authorization server's keys could not be loaded.
    #[error(transparent)]
    KeyRing(#[from] oauth::keys::KeyRingError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Http(std::io::Error),
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(tls::TlsError),
}

/// A configured Arbiter: policies loaded, keys ready, not yet serving.
pub struct Arbiter {
    config: Config,
    pdp: Arc<Pdp>,
    dev_key: Option<Arc<SigningKey>>,
    tokens: Option<Arc<oauth::token::TokenService>>,
    ssa: Option<Arc<ssa::SsaService>>,
}

impl Arbiter {
    /// Loads policies, keys and the store; fails on an invalid policy directory or
    /// configuration.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        telemetry::set_replay_record(config.decision_log_replay);
        let policies = Arc::new(policy::PolicyStore::open(&config.policies)?);
        let mut extra = Vec::new();
        let dev_key = if config.dev_issuer.enabled {
            let key = Arc::new(load_or_generate_dev_key(&config.data_dir)?);
            extra.push(Issuer::with_static_keys(
                config.dev_issuer.issuer.clone(),
                vec![config.dev_issuer.audience.clone()],
                vec![key.verification_key()?],
            ));
            Some(key)
        } else {
            None
        };
        // The paired authorization server: its keys are trusted in-process, no HTTP round trip.
        let authority = if config.oauth.enabled {
            let store = store::open(&config).await?;
            let keys = Arc::new(
                oauth::keys::KeyRing::open(
                    store.clone(),
                    store::KEY_PURPOSE_ACCESS_TOKEN,
                    config.oauth.access_token_ttl_seconds,
                    config.key_publish_ahead_seconds(),
                    token::keys::signing_algorithm(&config.oauth.signing_alg)?,
                )
                .await?,
            );
            let mut audiences = vec![config.oauth.audience.clone()];
            audiences.extend(config.oauth.resources.iter().cloned());
            extra.push(Issuer::with_static_keys(
                config.oauth.issuer.clone(),
                audiences,
                keys.verification_keys(),
            ));
            Some((store, keys))
        } else {
            None
        };
        let verifier = Arc::new(Verifier::new(&config, extra));
        let tokens = match authority {
            Some((store, keys)) => {
                // Revocations outlive restarts.
                let now = i64::try_from(token::now()).unwrap_or(i64::MAX);
                for (issuer, jti, exp) in store.revoked_tokens(now, 0).await? {
                    verifier.revoke(&issuer, &jti, u64::try_from(exp).unwrap_or(0));
                }
                // So are disabled clients' tokens (and those disabled later from outside this
                // process: see `follow_store`).
                verifier
                    .set_disabled_clients(&config.oauth.issuer, store.disabled_clients().await?);
                Some(Arc::new(oauth::token::TokenService::new(
                    store,
                    keys,
                    verifier.clone(),
                    policies.clone(),
                    oauth::token::TokenSettings {
                        issuer: config.oauth.issuer.clone(),
                        audience: config.oauth.audience.clone(),
                        resources: config.oauth.resources.clone(),
                        ttl_seconds: config.oauth.access_token_ttl_seconds,
                        trusted_proxies: config.oauth.trusted_proxies.clone(),
                        client_certificates: config.tls.as_ref().is_some_and(|t| {
                            t.client_certs(tls::Listener::Http) != tls::ClientCerts::None
                        }),
                    },
                )))
            }
            None => None,
        };
        let ssa = match &tokens {
            Some(tokens) if config.ssa.enabled => {
                let store = tokens.store().clone();
                let keys = Arc::new(
                    oauth::keys::KeyRing::open(
                        store.clone(),
                        store::KEY_PURPOSE_STATEMENT,
                        config.ssa.max_validity_seconds,
                        config.key_publish_ahead_seconds(),
                        token::keys::signing_algorithm(&config.ssa.signing_alg)?,
                    )
                    .await?,
                );
                Some(Arc::new(ssa::SsaService::new(
                    store,
                    keys,
                    config.oauth.issuer.clone(),
                    config.ssa.clone(),
                    verifier.clone(),
                    config.leeway_seconds,
                )))
            }
            _ => None,
        };
        let pdp = Arc::new(Pdp::new(
            policies,
            verifier,
            config.decision_cache_ttl_seconds,
        ));
        Ok(Self {
            config,
            pdp,
            dev_key,
            tokens,
            ssa,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The decision point, for in-process use.
    pub fn pdp(&self) -> &Arc<Pdp> {
        &self.pdp
    }

    /// The token service of the paired authorization server, when enabled.
    pub fn tokens(&self) -> Option<&Arc<oauth::token::TokenService>> {
        self.tokens.as_ref()
    }

    /// Makes a new authorization-server signing key active, and trusts it in the PDP at once
    /// (the previous key stays trusted and published until its tokens expired).
    pub async fn rotate_signing_key(&self) -> Result<String, StartError> {
        let tokens = self.tokens.as_ref().ok_or_else(|| {
            StartError::Config(config::ConfigError::Invalid(
                "the authorization server is disabled".into(),
            ))
        })?;
        let kid = tokens.keys().rotate().await?;
        self.trust_signing_keys(tokens);
        Ok(kid)
    }

    /// The software statement workflow, when enabled.
    pub fn ssa(&self) -> Option<&Arc<ssa::SsaService>> {
        self.ssa.as_ref()
    }

    /// Every HTTP route: the OAuth endpoints, registration, and the statement workflow.
    fn http_router(&self, tokens: &Arc<oauth::token::TokenService>) -> axum::Router {
        let mut router = oauth::http::router(tokens.clone()).merge(oauth::register::router(
            oauth::register::RegisterState {
                store: tokens.store().clone(),
                tokens: tokens.clone(),
                ssa: self.ssa.clone(),
                verifier: self.pdp.verifier().clone(),
                issuer: self.config.oauth.issuer.clone(),
                open_registration: self.config.oauth.open_registration,
            },
        ));
        let pdp = self.pdp.clone();
        router = router.route(
            "/metrics",
            axum::routing::get(move || {
                let pdp = pdp.clone();
                async move {
                    let text = telemetry::metrics::METRICS.encode(&pdp.policies().load().version);
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
        router = router.merge(authzen::router(
            self.pdp.clone(),
            self.config.oauth.issuer.clone(),
        ));
        if let Some(ssa) = &self.ssa {
            router = router.merge(ssa::http::router(ssa::http::SsaState {
                service: ssa.clone(),
                pdp: self.pdp.clone(),
                token_issuer: self.config.oauth.issuer.clone(),
            }));
        }
        router
    }

    /// Re-reads the authorization server's keys from the store (a rotation by
    /// `arbiter keys rotate` or another instance) and trusts exactly those in the PDP.
    pub async fn refresh_signing_keys(&self) -> Result<(), StartError> {
        if let Some(tokens) = &self.tokens {
            tokens.keys().refresh().await?;
            self.trust_signing_keys(tokens);
        }
        if let Some(ssa) = &self.ssa {
            ssa.keys().refresh().await?;
        }
        Ok(())
    }

    fn trust_signing_keys(&self, tokens: &oauth::token::TokenService) {
        if let Some(issuer) = self.pdp.verifier().issuer(&self.config.oauth.issuer) {
            issuer.set_keys(tokens.keys().verification_keys());
        }
    }

    /// The development issuer's signing key, when enabled.
    pub fn dev_key(&self) -> Option<&Arc<SigningKey>> {
        self.dev_key.as_ref()
    }

    /// Serves gRPC on an already-bound listener until `shutdown` is cancelled, then reports
    /// NOT_SERVING and drains in-flight calls.
    ///
    /// With an `http` listener and the authorization server enabled, the OAuth endpoints are
    /// served on it too.
    pub async fn serve(
        &self,
        grpc: TcpListener,
        http: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        self.pdp.verifier().start(&shutdown, FIRST_JWKS_FETCH).await;
        if let Some(ssa) = &self.ssa {
            ssa.statements().start(&shutdown, FIRST_JWKS_FETCH).await;
        }
        if self.config.watch_policies {
            policy::watch(self.pdp.policies().clone(), shutdown.clone())?;
        }
        spawn_sighup_reload(self.pdp.policies().clone(), shutdown.clone());
        let (routes, health) = grpc::routes(self.pdp.clone())?;
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        health
            .set_service_status(
                grpc::AUTHORIZER_SERVICE,
                tonic_health::ServingStatus::Serving,
            )
            .await;
        let addr = grpc.local_addr().map_err(StartError::Bind)?;
        let http = match (http, &self.tokens) {
            (Some(listener), Some(tokens)) => Some((listener, self.http_router(tokens))),
            _ => None,
        };
        let http_addr = match &http {
            Some((l, _)) => Some(l.local_addr().map_err(StartError::Bind)?),
            None => None,
        };
        for (name, a) in [("grpc", Some(addr)), ("http", http_addr)] {
            if let Some(a) = a.filter(|a| !a.ip().is_loopback()) {
                tracing::warn!(listener = name, addr = %a, "serving PLAINTEXT on a non-loopback address (allow_plaintext): terminate TLS in front of Arbiter");
            }
        }
        let snapshot = self.pdp.policies().snapshot();
        tracing::info!(
            grpc_addr = %addr,
            http_addr = http_addr.map(|a| a.to_string()).as_deref().unwrap_or("off"),
            policies = %snapshot.source.display(),
            policy_version = %snapshot.version,
            policy_count = snapshot.policy_count(),
            routes = snapshot.routes.endpoints().len(),
            issuers = self.pdp.verifier().issuers().count(),
            "arbiter ready"
        );
        for w in &snapshot.warnings {
            tracing::warn!(warning = %w, "policy validation warning");
        }
        let reloading = |listener| -> Result<Option<Arc<tls::ReloadingTls>>, StartError> {
            match &self.config.tls {
                Some(c) => {
                    let tls =
                        tls::ReloadingTls::new(c.clone(), listener).map_err(StartError::Tls)?;
                    tokio::spawn(tls.clone().watch(shutdown.clone()));
                    Ok(Some(tls))
                }
                None => Ok(None),
            }
        };
        let tls = reloading(tls::Listener::Grpc)?;
        let http_tls = reloading(tls::Listener::Http)?;
        let drain = shutdown.clone();
        let drained = async move {
            drain.cancelled().await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            tracing::info!("shutting down: draining in-flight calls");
        };
        let builder = tonic::transport::Server::builder().add_routes(routes);
        let grpc_server: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send + '_>,
        > = match &tls {
            Some(tls) => {
                let accepted = tls::accept(grpc, tls.clone(), shutdown.clone());
                let incoming = tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::ReceiverStream::new(accepted),
                    |(stream, _)| Ok::<_, std::io::Error>(stream),
                );
                Box::pin(builder.serve_with_incoming_shutdown(incoming, drained))
            }
            None => {
                let incoming =
                    tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
                Box::pin(builder.serve_with_incoming_shutdown(incoming, drained))
            }
        };
        let http_server = async {
            let Some((listener, router)) = http else {
                return Ok(());
            };
            tls::serve_http(listener, router, http_tls, shutdown.clone())
                .await
                .map_err(StartError::Http)
        };
        let (grpc_result, http_result, (), ()) = tokio::join!(
            grpc_server,
            http_server,
            self.maintain_signing_keys(&shutdown),
            self.follow_store(&shutdown)
        );
        grpc_result?;
        http_result
    }
}

impl Arbiter {
    /// Until `shutdown`, follows what other processes (the CLI, other replicas sharing the
    /// store) change: every second, re-reads which clients are disabled and the tokens
    /// revoked since the last look, so both are refused here within about a second.
    async fn follow_store(&self, shutdown: &CancellationToken) {
        let Some(tokens) = &self.tokens else {
            return;
        };
        // Revocations are read by their time with a minute's overlap, so a replica whose clock
        // runs behind ours is not missed; known ones cost nothing.
        let mut since = i64::try_from(token::now()).unwrap_or(i64::MAX);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let verifier = self.pdp.verifier();
            match tokens.store().disabled_clients().await {
                Ok(ids) => verifier.set_disabled_clients(&self.config.oauth.issuer, ids),
                Err(e) => {
                    telemetry::metrics::METRICS.store_error("disabled_clients");
                    tracing::warn!(error = %e, "cannot read disabled clients; keeping the last known set")
                }
            }
            let now = i64::try_from(token::now()).unwrap_or(i64::MAX);
            match tokens.store().revoked_tokens(now, since - 60).await {
                Ok(revoked) => {
                    for (issuer, jti, exp) in revoked {
                        verifier.revoke(&issuer, &jti, u64::try_from(exp).unwrap_or(0));
                    }
                    since = now;
                }
                Err(e) => {
                    telemetry::metrics::METRICS.store_error("revoked_tokens");
                    tracing::warn!(error = %e, "cannot read revoked tokens; will try again")
                }
            }
        }
    }

    /// Keeps the signing keys current until `shutdown`: rotates when the active key is older
    /// than `[oauth] key_rotation_seconds` (so a restart does not postpone it), and otherwise
    /// re-reads the store every few seconds to pick up rotations made elsewhere.
    async fn maintain_signing_keys(&self, shutdown: &CancellationToken) {
        let Some(tokens) = &self.tokens else {
            return;
        };
        let rotation = self.config.oauth.key_rotation_seconds.map(|s| s.max(1));
        let tick = Duration::from_secs(
            rotation.map_or(KEY_REFRESH_SECONDS, |r| r.min(KEY_REFRESH_SECONDS)),
        );
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let now = i64::try_from(token::now()).unwrap_or(i64::MAX);
            let age = now.saturating_sub(tokens.keys().current().active_created_at);
            let due = rotation.is_some_and(|every| age >= i64::try_from(every).unwrap_or(i64::MAX));
            let outcome = if due {
                self.rotate_signing_key().await.map(drop)
            } else {
                self.refresh_signing_keys().await
            };
            if let Err(e) = outcome {
                telemetry::metrics::METRICS.store_error("signing_keys");
                tracing::error!(error = %e, rotate = due, "signing key maintenance failed; the current keys stay in use");
            }
        }
    }
}

/// How often a running server re-reads its signing keys from the store.
pub const KEY_REFRESH_SECONDS: u64 = 5;

/// Reloads the policies on SIGHUP until `shutdown`.
fn spawn_sighup_reload(store: Arc<policy::PolicyStore>, shutdown: CancellationToken) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload by file change or the admin RPC");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hangup.recv() => {
                    policy::reload_in_background(store.clone(), policy::Trigger::Signal).await;
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (store, shutdown);
}
