//! Arbiter's integration tests: one binary, a module per area. Servers are real (tonic over
//! loopback on an ephemeral port), keys are real, policy directories are real files.

mod support;

mod cli;
mod hostile;
mod index;
mod jwks;
mod matrix;
