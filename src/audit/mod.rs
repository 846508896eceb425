//! Offline decisions for policy authors and auditors: policy test cases (`policies/tests`),
//! replay of logged decisions against a candidate set, and OpenAPI import/diff. Each decides
//! through `decision`, the same code as the running service, with no server. And proofs over
//! every request at once, with Cedar's symbolic compiler and cvc5: analysis, comparison,
//! properties (`prover` holds the solver; `counterexample` turns its requests into cases).

pub mod analysis;
pub mod cases;
pub mod compare;
pub mod counterexample;
pub mod openapi;
pub mod properties;
pub mod prover;
pub mod replay;
pub mod rollout;
