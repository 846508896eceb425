//! The context values a verified token alone determines — `context.scopes` and
//! `context.token` — built once per token and policy version instead of on every decision.
//! A gateway sends the same token again and again; on a route whose policies read the
//! claims (an MFA rule on `context.token.acr`), rebuilding the record was 36 of 163 heap
//! allocations per decision (`cargo bench --bench allocations`). They are kept on the
//! cached token itself (its `derived` slot), so they go when it goes, checked against the
//! policy version and the declared claims type that shaped them: a reload that changes the
//! schema builds them again.

use cedar_policy::RestrictedExpression;

use super::context::{record_fields, Mode};
use super::{Reason, Verdict};
use crate::policy::AttrType;
use crate::token::VerifiedToken;

/// What one token contributes to a context, and under which schema it was built.
struct Derived {
    version: String,
    /// Address of the declared type of `context.token` in the snapshot that built this
    /// (with the version, which names the snapshot's content: equal versions, equal shapes).
    claims_type: usize,
    scopes: RestrictedExpression,
    claims: Option<RestrictedExpression>,
}

/// `context.scopes`, and `context.token` when `claims_type` declares it as a record, for
/// `token` under policy `version`. Claims that do not fit their declared type give the
/// `INVALID_TOKEN` deny the caller raises only if the decision reads `context.token` (as
/// before); such a token's values are not kept.
pub(super) fn scopes_and_claims(
    token: &VerifiedToken,
    version: &str,
    claims_type: Option<&AttrType>,
) -> (
    RestrictedExpression,
    Result<Option<RestrictedExpression>, Box<Verdict>>,
) {
    let type_address = claims_type.map_or(0, |t| std::ptr::from_ref(t) as usize);
    let kept = token.derived.read(|d: &Derived| {
        (d.version == version && d.claims_type == type_address)
            .then(|| (d.scopes.clone(), Ok(d.claims.clone())))
    });
    if let Some(Some(values)) = kept {
        return values;
    }
    let scopes = RestrictedExpression::new_set(
        token
            .scopes
            .iter()
            .map(|s| RestrictedExpression::new_string(s.clone())),
    );
    let claims = match claims_type {
        Some(AttrType::Record(shape)) => {
            match record_fields(&token.claims, shape, Mode::Lenient, "token")
                .map_err(|m| Box::new(Verdict::deny(Reason::InvalidToken, m)))
                .and_then(|fields| {
                    RestrictedExpression::new_record(fields)
                        .map_err(|e| Box::new(Verdict::deny(Reason::InvalidRequest, e.to_string())))
                }) {
                Ok(record) => Some(record),
                Err(deny) => return (scopes, Err(deny)),
            }
        }
        _ => None,
    };
    token.derived.set(Derived {
        version: version.to_owned(),
        claims_type: type_address,
        scopes: scopes.clone(),
        claims: claims.clone(),
    });
    (scopes, Ok(claims))
}
