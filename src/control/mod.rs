//! The control plane: what administers rather than decides. Admin authentication
//! ([`auth`]), the bounded workers control-plane jobs run on ([`workers`]), and the proof
//! jobs `PolicyAdmin` asks for ([`proofs`]). AuthZEN search runs on these workers with their
//! budgets.
//!
//! The control plane calls the decision entry and reads the policy store; nothing on the
//! decision path (`decision`, `token`, `policy`) imports it (`tests/it/house.rs` checks).

pub(crate) mod auth;
pub(crate) mod proofs;
pub(crate) mod workers;

pub(crate) use auth::{Access, AdminAuth, Credentials, Refusal};
pub(crate) use workers::{JobError, Workers};
