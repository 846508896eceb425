//! The control plane: what administers rather than decides. Admin authentication
//! ([`auth`]), the bounded workers control-plane jobs run on ([`workers`]), and the proof
//! jobs `PolicyAdmin` asks for ([`proofs`]). AuthZEN search runs on these workers with their
//! budgets.
//!
//! The control plane calls the decision entry and reads the policy store; nothing on the
//! decision path (`decision`, `token`, `policy`) imports it (`tests/it/house.rs` checks).

pub mod auth;
pub mod proofs;
pub mod workers;

pub use auth::{Access, Admin, AdminAuth, Credentials, Refusal};
pub use workers::{JobError, Workers};
