//! Issue 14, defect 6: cached tokens die with the key that verified them. On the code before
//! this change a cache hit checked only `exp`, so a token verified with a withdrawn
//! (compromised) key stayed valid until its own, attacker-chosen, expiry.

use arbiter::grpc::proto::Reason;
use serde_json::json;

use crate::support::*;

/// A key the issuer withdraws takes its cached tokens with it: a token verified (and cached)
/// with a compromised key is refused once the issuer's JWKS no longer has that key, however
/// far away its own `exp` is (issue 14, defect 6).
#[tokio::test]
async fn cached_tokens_die_with_the_key_that_verified_them() {
    let compromised = TestKey::es256("k-compromised");
    let fresh = TestKey::es256("k-fresh");
    let idp = TestIdp::start(&[&compromised]).await;
    let mut server = TestServer::start_with(|c| c.issuers.push(idp.config())).await;
    let mut claims = idp.claims("svc", "read");
    claims["exp"] = json!(now() + 30 * 24 * 3600); // a month: the attacker's choice
    let stolen = compromised.sign(&claims);
    let r = server.authorize(&stolen, "GET", "/item/1", json!({})).await;
    assert_eq!(
        reason(&r),
        Reason::Allowed,
        "verified, and now cached: {r:?}"
    );

    // The issuer withdraws the key; a token of the new key makes Arbiter refresh.
    idp.publish(&[&fresh]);
    let good = fresh.sign(&idp.claims("svc", "read"));
    let r = server.authorize(&good, "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");

    let r = server.authorize(&stolen, "GET", "/item/1", json!({})).await;
    assert_eq!(
        reason(&r),
        Reason::InvalidToken,
        "the withdrawn key's token: {r:?}"
    );
}
