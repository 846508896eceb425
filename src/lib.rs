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

#![warn(missing_docs, unreachable_pub)]

pub mod audit;
pub(crate) mod authzen;
pub mod bench;
pub mod bundle;
pub mod client;
pub mod clock;
pub mod config;
pub(crate) mod console;
pub(crate) mod control;
pub mod decision;
pub mod fleet;
pub mod gateway;
pub mod grpc;
pub mod http;
pub mod oauth;
pub mod policy;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod wire;

pub mod server;
pub mod shadow;

pub use config::Config;
pub use decision::{Answer, AuthzRequest, Pdp, Reason, Verdict};
pub use server::{Arbiter, StartError, KEY_REFRESH_SECONDS};
