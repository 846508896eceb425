//! A tap on live decisions, for whoever wants to decide some of them again elsewhere (a
//! shadow candidate set). The decision path only asks [`DecisionTap::wants`] (one atomic
//! step) and, for the few it wants, hands over an owned copy; it never waits for the tap.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::token::VerifiedToken;

/// A live decision, owned, as a tap receives it.
#[derive(Debug, Clone)]
pub struct DecisionSample {
    /// The live decision's id.
    pub decision_id: String,
    /// The verified token (none: anonymous).
    pub token: Option<Arc<VerifiedToken>>,
    /// The request's method.
    pub method: String,
    /// The request's path (with its query).
    pub path: String,
    /// The request's context.
    pub context: Map<String, Value>,
    /// The client certificate's thumbprint, if one was presented.
    pub client_cert_sha256: String,
    /// Whether the live set allowed it.
    pub allowed: bool,
    /// Why, as the live set said.
    pub reason: &'static str,
    /// The live set's determining policies.
    pub policy_ids: Vec<String>,
    /// The route the live set matched.
    pub route: Option<String>,
    /// The live set's revision.
    pub revision: String,
}

/// Receives a share of live decisions. Both calls run on the decision path: they must not
/// block, and `offer` must drop (and count) what it cannot take.
pub trait DecisionTap: Send + Sync {
    /// Whether the next decision should be offered (sampling).
    fn wants(&self) -> bool;
    /// Takes one sample, or drops it when full.
    fn offer(&self, sample: DecisionSample);
}
