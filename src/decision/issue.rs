//! Scopes as decisions: may this client be issued this scope, in this context? The token
//! endpoint asks once per requested scope, through the one decision entry
//! ([`Pdp::authorize_authenticated`](super::Pdp::authorize_authenticated) with
//! [`Subject::Client`](super::Subject::Client)): principal `Client::"<id>"` (attributes from
//! `entities.json` when it binds the client to this issuer with `iss`, else from its
//! registration), action `Action::"IssueScope"`, resource `Scope::"<name>"` (evaluated
//! against the scope's slice of the set), context typed by the schema (`grant_type`, `ip`,
//! `fraud_score`, `audience`, `time`, …).

/// The action id.
pub const ISSUE_SCOPE: &str = "IssueScope";
