//! The authorization server paired with the PDP. So far: client records and their secrets,
//! for the `arbiter clients` bootstrap commands; the token endpoint builds on them.

pub mod clients;
pub mod http;
pub mod keys;
pub mod token;
