//! The one caller identity: which principal and which client a verified token names.
//!
//! Every front door reads it from [`VerifiedToken::identity`](super::VerifiedToken), computed
//! once at verification by [`identify`] with the issuer's [`IdentityClaims`]. The rule is fail
//! safe: a token that names no client is an end user, never a `Client`, so policies written
//! for users (`forbid (principal is User, …)`) apply to it.
//!
//! Imports only `config` (where the claim names are configured).

use serde_json::{Map, Value};

pub use crate::config::IdentityClaims;

/// The kind of principal a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An end user (`User::"<user>"`), possibly acting through a client.
    User,
    /// A client acting for itself (`Client::"<client>"`).
    Client,
}

impl PrincipalKind {
    /// The Cedar entity type name.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Client => "Client",
        }
    }
}

/// Who a token names: the principal, and the client when one is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User or client.
    pub kind: PrincipalKind,
    /// The principal's id: the user for `User`, the client for `Client`.
    pub id: String,
    /// The client, when a client claim names one.
    pub client_id: Option<String>,
}

impl Identity {
    /// `User::"alice"` / `Client::"demo"`, as Cedar writes the principal.
    pub fn entity(&self) -> String {
        format!("{}::{:?}", self.kind.type_name(), self.id)
    }
}

/// Maps verified claims to an identity: the client is the first of `names.client` present;
/// a user claim that differs from the client makes the principal that user; a token naming
/// no client is its user's (never a `Client`); a token naming neither has no identity.
pub fn identify(claims: &Map<String, Value>, names: &IdentityClaims) -> Option<Identity> {
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let client = names.client.iter().find_map(|k| text(k)).map(str::to_owned);
    let user = text(&names.user);
    match (user, client) {
        (Some(user), Some(client)) if user != client => Some(Identity {
            kind: PrincipalKind::User,
            id: user.to_owned(),
            client_id: Some(client),
        }),
        (Some(user), None) => Some(Identity {
            kind: PrincipalKind::User,
            id: user.to_owned(),
            client_id: None,
        }),
        (_, Some(client)) => Some(Identity {
            kind: PrincipalKind::Client,
            id: client.clone(),
            client_id: Some(client),
        }),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(claims: Value) -> Option<(PrincipalKind, String, Option<String>)> {
        let Value::Object(map) = claims else {
            unreachable!()
        };
        identify(&map, &IdentityClaims::default()).map(|i| (i.kind, i.id, i.client_id))
    }

    #[test]
    fn maps_claims_to_principal_and_client() {
        use PrincipalKind::{Client, User};
        let cases = [
            // end user through a client
            (
                json!({"sub": "alice", "client_id": "app"}),
                Some((User, "alice", Some("app"))),
            ),
            // a client for itself: sub equals the client, or no sub
            (
                json!({"sub": "app", "client_id": "app"}),
                Some((Client, "app", Some("app"))),
            ),
            (
                json!({"client_id": "app"}),
                Some((Client, "app", Some("app"))),
            ),
            // no client claim: an end user, never a Client (the fail-safe rule)
            (json!({"sub": "alice"}), Some((User, "alice", None))),
            // other client claims, in order
            (
                json!({"sub": "alice", "azp": "kc"}),
                Some((User, "alice", Some("kc"))),
            ),
            (
                json!({"sub": "x", "cid": "okta", "appid": "entra"}),
                Some((User, "x", Some("okta"))),
            ),
            (
                json!({"appid": "entra"}),
                Some((Client, "entra", Some("entra"))),
            ),
            // empty strings name nothing
            (json!({"sub": "", "client_id": ""}), None),
            (json!({"iss": "x"}), None),
        ];
        for (claims, expected) in cases {
            let expected = expected.map(|(k, id, c)| (k, id.to_owned(), c.map(str::to_owned)));
            assert_eq!(who(claims.clone()), expected, "{claims}");
        }
    }

    #[test]
    fn claim_names_are_per_issuer() {
        let names = IdentityClaims {
            client: vec!["app".into()],
            user: "uid".into(),
        };
        let Value::Object(map) =
            json!({"sub": "ignored", "client_id": "ignored", "uid": "u1", "app": "a1"})
        else {
            unreachable!()
        };
        let i = identify(&map, &names).unwrap();
        assert_eq!(
            (i.kind, i.id.as_str(), i.client_id.as_deref()),
            (PrincipalKind::User, "u1", Some("a1"))
        );
        assert_eq!(i.entity(), "User::\"u1\"");
    }
}
