//! The composition root: builds every subsystem from one [`Config`] ([`Arbiter::build`]),
//! serves the gRPC and HTTP listeners ([`Arbiter::serve`]) and runs the background loops
//! (store following, key maintenance, SIGHUP reloads). Nothing imports it but the facade
//! and the binary; it imports everything it wires.

mod check;
mod loops;
mod policies;

pub use check::{check_config, CheckItem, CheckReport};

use loops::spawn_sighup_reload;
pub use loops::KEY_REFRESH_SECONDS;
use policies::open_policies;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::decision::Pdp;
use crate::oauth::ssa;
use crate::token::keys::{load_or_generate_dev_key, SigningKey};
use crate::token::{self, Issuer, Verifier};
use crate::{authzen, control, grpc, oauth, policy, store, telemetry, tls};

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
    /// An issuer's introspection client could not be set up.
    #[error(transparent)]
    Introspection(#[from] token::introspection::SetupError),
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
    /// The policy bundle could not be fetched, verified or written out.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// The control plane's threads could not be started.
    #[error("cannot start the control plane's workers: {0}")]
    Workers(std::io::Error),
}

/// A configured Arbiter: policies loaded, keys ready, not yet serving.
pub struct Arbiter {
    config: Config,
    pdp: Arc<Pdp>,
    dev_key: Option<Arc<SigningKey>>,
    tokens: Option<Arc<oauth::token::TokenService>>,
    ssa: Option<Arc<ssa::SsaService>>,
    /// The control plane's own threads: proofs, searches, candidate loads.
    workers: Arc<control::Workers>,
    /// The registration rate, shared by every router built (one bucket per server).
    registrations: Arc<oauth::registration_rate::RegistrationRate>,
    /// Where bundles come from, when the policies are a bundle rather than a directory.
    bundle_source: Option<Arc<crate::bundle::source::BundleSource>>,
    /// The shared store the fleet view lives in (none without a store).
    fleet_store: Option<Arc<dyn store::Store>>,
    /// The workbench's last hour of decisions (sampled while serving, with the console on).
    console_activity: Arc<crate::console::Activity>,
    /// The shadow candidate and its bundle source, when one is configured.
    shadow: Option<(
        Arc<policy::LivePolicies>,
        Option<Arc<crate::bundle::source::BundleSource>>,
    )>,
}

impl Arbiter {
    /// Loads policies, keys and the store; fails on an invalid policy directory or
    /// configuration.
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        config.follow_listener();
        config.validate()?;
        crate::decision::log::set_replay_record(config.decision_log_replay);
        policy::outputs::allow_identity_headers(config.allow_output_headers.clone());
        let (policies, bundle_source) = open_policies(&config, &config.policies).await?;
        let shadow = match &config.shadow.policies {
            Some(location) => Some(open_policies(&config, location).await?),
            None => None,
        };
        if let Some(solver) = &config.admin.solver {
            crate::audit::prover::configure_solver(solver.clone());
        }
        let workers = Arc::new(
            control::Workers::new(config.admin.workers, config.admin.max_concurrent_searches)
                .map_err(StartError::Workers)?,
        );
        let mut extra = Vec::new();
        let dev_key = if config.dev_issuer_enabled() {
            tracing::warn!(
                issuer = %config.dev_issuer.issuer,
                "the development issuer is on: tokens minted by `arbiter token dev` are trusted (`[dev_issuer] enabled = false` turns it off; it is off by default on non-loopback listeners)"
            );
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
                    token::keys::algorithm(config.oauth.signing_alg),
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
        let fleet_store = match (&authority, &config.store.url) {
            (Some((store, _)), _) => Some(store.clone()),
            (None, Some(_)) => Some(store::open(&config).await?),
            (None, None) => None,
        };
        let verifier = Arc::new(Verifier::new(&config, extra)?);
        let pdp = Arc::new(Pdp::new(
            policies.clone(),
            verifier.clone(),
            config.decision_cache_ttl_seconds,
        ));
        if let Some((candidate, _)) = &shadow {
            let tap =
                crate::shadow::start(candidate.clone(), config.shadow.share, config.shadow.queue)
                    .map_err(StartError::Workers)?;
            let snapshot = candidate.snapshot();
            tracing::info!(
                candidate = %snapshot.source.display(),
                candidate_revision = %snapshot.revision,
                share = config.shadow.share,
                "shadow candidate loaded: a share of live decisions is decided again by it"
            );
            pdp.set_tap(tap);
        }
        let tokens = match authority {
            Some((store, keys)) => {
                // Revocations outlive restarts.
                let now = crate::clock::now_i64();
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
                    pdp.clone(),
                    oauth::token::TokenSettings {
                        issuer: config.oauth.issuer.clone(),
                        audience: config.oauth.audience.clone(),
                        resources: config.oauth.resources.clone(),
                        ttl_seconds: config.oauth.access_token_ttl_seconds,
                        trusted_proxies: config.oauth.trusted_proxies.clone(),
                        client_certificates: config.tls.as_ref().is_some_and(|t| {
                            t.client_certs(tls::Listener::Http) != tls::ClientCerts::None
                        }),
                        allow_private_client_urls: config.oauth.allow_private_client_urls,
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
                        token::keys::algorithm(config.ssa.signing_alg),
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
        let registrations = Arc::new(oauth::registration_rate::RegistrationRate::new(
            config.oauth.registrations_per_minute,
        ));
        Ok(Self {
            config,
            pdp,
            dev_key,
            tokens,
            ssa,
            workers,
            console_activity: Arc::default(),
            registrations,
            bundle_source,
            fleet_store,
            shadow,
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

    /// Every HTTP route: `/metrics` and AuthZEN always; with the authorization server, the
    /// OAuth endpoints, registration, and the statement workflow.
    fn http_router(&self, metrics_auth: Arc<control::AdminAuth>) -> axum::Router {
        let mut router = axum::Router::new();
        if let Some(tokens) = &self.tokens {
            router =
                router
                    .merge(oauth::http::router(tokens.clone()))
                    .merge(oauth::register::router(oauth::register::RegisterState {
                        store: tokens.store().clone(),
                        tokens: tokens.clone(),
                        ssa: self.ssa.clone(),
                        verifier: self.pdp.verifier().clone(),
                        issuer: self.config.oauth.issuer.clone(),
                        open_registration: self.config.oauth.open_registration,
                        open_registration_scopes: self
                            .config
                            .oauth
                            .open_registration_scopes
                            .clone(),
                        admission: self.registrations.clone(),
                        allow_private_client_urls: self.config.oauth.allow_private_client_urls,
                    }));
        }
        router = router.route(
            "/metrics",
            axum::routing::get(metrics).with_state(Metrics {
                pdp: self.pdp.clone(),
                auth: metrics_auth,
            }),
        );
        router = router.merge(authzen::router(
            self.pdp.clone(),
            self.config.oauth.issuer.clone(),
            authzen::PepAuth {
                mode: self.config.authzen_pep_authentication(),
                scope: self.config.authzen.pep_scope.clone(),
                pdp: self.pdp.clone(),
            },
            self.tokens.as_ref().map(|t| t.store().clone()),
            authzen::SearchBudget {
                workers: self.workers.clone(),
                max_candidates: self.config.admin.search_max_candidates,
                max_body_bytes: self.config.admin.search_max_body_bytes,
            },
        ));
        if self.config.console.enabled {
            let search = authzen::SearchBudget {
                workers: self.workers.clone(),
                max_candidates: self.config.admin.search_max_candidates,
                max_body_bytes: self.config.admin.search_max_body_bytes,
            };
            let console = crate::console::ConsoleState::new(
                &self.config,
                crate::console::ConsoleParts {
                    pdp: self.pdp.clone(),
                    workers: self.workers.clone(),
                    searcher: authzen::Searcher::new(
                        self.pdp.clone(),
                        self.tokens.as_ref().map(|t| t.store().clone()),
                        search,
                    ),
                    bundles: self.bundle_source.clone(),
                    dev_key: self.dev_key.clone(),
                    activity: self.console_activity.clone(),
                },
            );
            router = router.merge(crate::console::router(Arc::new(console)));
        }
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
    /// With an `http` listener, `/metrics` and AuthZEN are served on it, and the OAuth
    /// endpoints when the authorization server is enabled.
    pub async fn serve(
        &self,
        grpc: TcpListener,
        http: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        self.serve_with_admin(grpc, http, None, shutdown).await
    }

    /// Like [`Arbiter::serve`], with the control plane (`PolicyAdmin`) on a listener of its
    /// own when `admin` is given (the gRPC listener then serves decisions only).
    pub async fn serve_with_admin(
        &self,
        grpc: TcpListener,
        http: Option<TcpListener>,
        admin: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        self.pdp.verifier().start(&shutdown, FIRST_JWKS_FETCH).await;
        if let Some(ssa) = &self.ssa {
            ssa.statements().start(&shutdown, FIRST_JWKS_FETCH).await;
        }
        match &self.bundle_source {
            Some(source) => source.clone().poll(
                self.pdp.policies().clone(),
                Duration::from_secs(self.config.bundles.poll_interval_seconds),
                shutdown.clone(),
            ),
            None if self.config.watch_policies => {
                policy::watch(self.pdp.policies().clone(), shutdown.clone())?;
            }
            None => {}
        }
        match &self.shadow {
            Some((candidate, Some(source))) => source.clone().poll(
                candidate.clone(),
                Duration::from_secs(self.config.bundles.poll_interval_seconds),
                shutdown.clone(),
            ),
            Some((candidate, None)) if self.config.watch_policies => {
                policy::watch(candidate.clone(), shutdown.clone())?;
            }
            _ => {}
        }
        spawn_sighup_reload(self.pdp.policies().clone(), shutdown.clone());
        if self.config.console.enabled && http.is_some() {
            tokio::spawn(self.console_activity.clone().run(shutdown.clone()));
        }
        let addr = grpc.local_addr().map_err(StartError::Bind)?;
        if let Some(store) = &self.fleet_store {
            crate::fleet::spawn_heartbeats(
                store.clone(),
                crate::fleet::Identity::new(self.config.fleet.replica_id.as_deref(), addr),
                self.pdp.policies().clone(),
                self.bundle_source.clone(),
                Duration::from_secs(self.config.fleet.heartbeat_seconds),
                shutdown.clone(),
            );
        }
        let admin_addr = match &admin {
            Some(l) => Some(l.local_addr().map_err(StartError::Bind)?),
            None => None,
        };
        let admin_service = control::AdminAuth::new(
            &self.config.admin,
            admin_addr.unwrap_or(addr),
            self.pdp.verifier().clone(),
            "PolicyAdmin",
        )
        .map(|auth| {
            grpc::PolicyAdminService::new(
                self.pdp.policies().clone(),
                self.bundle_source.clone(),
                self.fleet_store.clone().map(|s| {
                    (
                        s,
                        i64::try_from(self.config.fleet.silent_after_seconds).unwrap_or(i64::MAX),
                    )
                }),
                self.shadow.as_ref().map(|(candidate, _)| candidate.clone()),
                Arc::new(auth),
                self.workers.clone(),
                Duration::from_secs(self.config.admin.proof_timeout_seconds),
            )
        })
        .map_err(StartError::Tls)?;
        let (routes, admin_service) = match admin {
            Some(listener) => (
                grpc::routes(self.pdp.clone(), None)?,
                Some((listener, grpc::admin_routes(admin_service)?)),
            ),
            None => (grpc::routes(self.pdp.clone(), Some(admin_service))?, None),
        };
        let (routes, health) = routes;
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        health
            .set_service_status(
                grpc::AUTHORIZER_SERVICE,
                tonic_health::ServingStatus::Serving,
            )
            .await;
        let http = match http {
            Some(listener) => {
                // `/metrics` reads the control plane's view: an administrator's, as `Status`.
                let metrics_auth = control::AdminAuth::new(
                    &self.config.admin,
                    listener.local_addr().map_err(StartError::Bind)?,
                    self.pdp.verifier().clone(),
                    "/metrics",
                )
                .map_err(StartError::Tls)?;
                Some((listener, self.http_router(Arc::new(metrics_auth))))
            }
            None => None,
        };
        let http_addr = match &http {
            Some((l, _)) => Some(l.local_addr().map_err(StartError::Bind)?),
            None => None,
        };
        for (name, a) in [
            ("grpc", Some(addr)),
            ("http", http_addr),
            ("admin", admin_addr),
        ] {
            if let Some(a) = a.filter(|a| !a.ip().is_loopback()) {
                tracing::warn!(listener = name, addr = %a, "serving PLAINTEXT on a non-loopback address (allow_plaintext): terminate TLS in front of Arbiter");
            }
        }
        let snapshot = self.pdp.policies().snapshot();
        tracing::info!(
            grpc_addr = %addr,
            http_addr = http_addr.map(|a| a.to_string()).as_deref().unwrap_or("off"),
            admin_addr = admin_addr.map(|a| a.to_string()).as_deref().unwrap_or("grpc"),
            policies = %snapshot.source.display(),
            policy_version = %snapshot.version,
            policy_revision = %snapshot.revision,
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
        let limits = self.config.grpc;
        let grpc_server = serve_grpc(grpc, routes, tls.clone(), limits, &shutdown, drained);
        let admin_server = async {
            let Some((listener, routes)) = admin_service else {
                return Ok(());
            };
            let stopped = shutdown.clone();
            serve_grpc(
                listener,
                routes,
                tls.clone(),
                limits,
                &shutdown,
                async move { stopped.cancelled().await },
            )
            .await
        };
        let http_server = async {
            let Some((listener, router)) = http else {
                return Ok(());
            };
            crate::http::serve(
                listener,
                router,
                http_tls,
                self.config.http,
                shutdown.clone(),
            )
            .await
            .map_err(StartError::Http)
        };
        let (grpc_result, admin_result, http_result, (), ()) = tokio::join!(
            grpc_server,
            admin_server,
            http_server,
            self.maintain_signing_keys(&shutdown),
            self.follow_store(&shutdown)
        );
        grpc_result?;
        admin_result?;
        http_result
    }
}

/// What `/metrics` needs: the live policy version, and who may read it.
#[derive(Clone)]
struct Metrics {
    pdp: Arc<Pdp>,
    auth: Arc<control::AdminAuth>,
}

/// `GET /metrics`: the OpenMetrics text, for an administrator with the read scope (or a
/// certificate from the administrators' CA), anonymous only where `[admin] authentication`
/// lets the control plane be (a loopback listener, by default).
async fn metrics(
    axum::extract::State(m): axum::extract::State<Metrics>,
    certificate: Option<axum::Extension<tls::PeerCertificate>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let authorization: Vec<&str> = headers
        .get_all(axum::http::header::AUTHORIZATION)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    let credentials = control::Credentials {
        authorization: &authorization,
        chain: certificate.as_ref().map(|axum::Extension(c)| c.chain()),
    };
    if let Err(refused) = m.auth.admit(control::Access::Read, credentials).await {
        let (status, code) = match refused {
            control::Refusal::Unauthenticated(_) => {
                (axum::http::StatusCode::UNAUTHORIZED, "invalid_token")
            }
            control::Refusal::PermissionDenied(_) => {
                (axum::http::StatusCode::FORBIDDEN, "insufficient_scope")
            }
        };
        return crate::http::ApiError::new(status, code, refused.to_string()).into_response();
    }
    let snapshot = m.pdp.policies().load();
    let text = telemetry::metrics::METRICS.encode(&snapshot.version, &snapshot.revision);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Serves `routes` on a gRPC listener with the configured limits (TLS when `tls`), until
/// `drained` completes.
fn serve_grpc<'a>(
    listener: TcpListener,
    routes: tonic::service::Routes,
    tls: Option<Arc<tls::ReloadingTls>>,
    limits: config::GrpcLimits,
    shutdown: &CancellationToken,
    drained: impl std::future::Future<Output = ()> + Send + 'a,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send + 'a>,
> {
    let builder = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(limits.keepalive_interval_seconds)))
        .http2_keepalive_timeout(Some(Duration::from_secs(limits.keepalive_timeout_seconds)))
        .timeout(Duration::from_secs(limits.request_timeout_seconds))
        .layer(telemetry::TraceRequests)
        .add_routes(routes);
    let connections = tls::ConnectionLimit::new(limits.max_connections);
    match tls {
        Some(tls) => {
            let accepted = tls::accept(listener, tls, connections, shutdown.clone());
            Box::pin(builder.serve_with_incoming_shutdown(streams(accepted), drained))
        }
        None => {
            let accepted = tls::accept_plain(listener, connections, shutdown.clone());
            Box::pin(builder.serve_with_incoming_shutdown(streams(accepted), drained))
        }
    }
}

/// Accepted connections as the stream tonic serves.
fn streams<S>(
    accepted: tokio::sync::mpsc::Receiver<tls::Accepted<S>>,
) -> impl tokio_stream::Stream<Item = Result<tls::Limited<S>, std::io::Error>> {
    tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(accepted),
        |(stream, _)| Ok(stream),
    )
}
