//! Arbiter's integration tests: one binary, a module per area. Servers are real (tonic over
//! loopback on an ephemeral port), keys are real, policy directories are real files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod analysis;
mod authzen;
mod bundles;
mod cli;
mod client;
mod console;
mod control_plane;
mod defect_authzen;
mod defect_cache_scans;
mod defect_cached_key;
mod defect_disable_race;
mod defect_logs;
mod defect_open_registration;
mod defect_self_review;
mod defect_slow_clients;
mod defect_unbounded_fetch;
mod edge;
mod envoy;
mod explain;
mod fleet;
mod gateway;
mod grpcurl;
mod hostile;
mod house;
mod identity;
mod index;
mod introspection;
mod jwks;
mod load_tool;
mod matrix;
mod metrics;
mod oauth;
mod oauth_keys;
mod openapi;
mod outputs;
mod policy_tests;
mod properties;
mod query;
mod readme;
mod reload;
mod replicas;
mod rfc8705;
mod shadow;
mod ssa;
mod ssa_cli;
mod store;
mod tls;
mod token_options;
mod traces;
