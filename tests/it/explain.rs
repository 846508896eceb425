//! `Authorize` with `explain`: for a deny no policy determined, the nearest permits and the
//! part of each condition that failed.

use arbiter::grpc::proto::{self, policy_explanation::Outcome, Reason};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_default_deny_names_the_failing_condition_of_the_nearest_permits() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let mut req = request(&token, "POST", "/items", json!({}));
    req.explain = true;
    let r = server.client.authorize(req).await.unwrap().into_inner();
    assert_eq!(reason(&r), Reason::InsufficientScope);
    let create = r
        .explanation
        .iter()
        .find(|e| e.policy_id == "items-create")
        .expect("the permit of the route is explained");
    assert_eq!(create.outcome, Outcome::NotSatisfied as i32);
    assert!(create.scope_matched);
    assert_eq!(
        create.failed_condition,
        r#"when { context.scopes.containsAny(["fido", "otp"]) } was false"#,
        "{create:?}"
    );
    // A guard that did not fire: its scope matched, its condition did not hold.
    let guard = r
        .explanation
        .iter()
        .find(|e| e.policy_id == "deny-high-fraud-score")
        .unwrap();
    assert!(guard.scope_matched);
    assert!(
        guard
            .failed_condition
            .starts_with("when { context has fraud_score"),
        "{guard:?}"
    );

    // A permit whose principal constraint does not match says so, with no condition blamed.
    let user_token = server.token("demo", None, "write otp");
    let mut req = request(&user_token, "DELETE", "/item/4", json!({}));
    req.explain = true;
    let r = server.client.authorize(req).await.unwrap().into_inner();
    assert!(!allowed(&r));
    let delete = r
        .explanation
        .iter()
        .find(|e| e.policy_id == "item-delete")
        .unwrap();
    assert!(
        !delete.scope_matched,
        "principal is User, the caller a Client: {delete:?}"
    );
    assert_eq!(delete.failed_condition, "");

    // A forbid whose `unless` held is named as such (alice signed in with MFA).
    let mut claims = serde_json::Map::new();
    claims.insert("acr".into(), json!("mfa"));
    let alice = server.token_with("portal", Some("alice"), "hr.health.read", claims);
    let mut req: proto::AuthorizeRequest = request(
        &alice,
        "GET",
        "/hr/employees/9/health",
        json!({ "employee": { "nationality": "BR", "work_country": "NL" } }),
    );
    req.explain = true;
    let r = server.client.authorize(req).await.unwrap().into_inner();
    assert_eq!(reason(&r), Reason::Allowed, "{r:?}");
    let forbid = r
        .explanation
        .iter()
        .find(|e| e.policy_id == "hr-health-foreign-employees-need-mfa")
        .unwrap();
    assert!(forbid.scope_matched);
    assert!(
        forbid.failed_condition.starts_with("unless {")
            && forbid.failed_condition.ends_with("} held"),
        "{forbid:?}"
    );
}
