//! Issue 14, defect 5: separation of duties in the statement workflow. A principal holding
//! both workflow scopes never reviews its own request (refused in code even when the policy
//! that says so is removed), and approving Arbiter's own scopes needs a policy permitting
//! `ApproveScope`. On the code before this change, such a principal approved its own request
//! and "approve everything requested" handed out `arbiter.ssa.review`.

use serde_json::json;

use crate::support::*;

/// A `403 access_denied` whose description says `why`.
fn assert_denied(status: u16, body: &serde_json::Value, why: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied")),
        "{body}"
    );
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(why), "{body}");
}

#[tokio::test]
async fn nobody_reviews_their_own_request_even_without_the_policy() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let both = bootstrap(&server, &http, "arbiter.ssa.request arbiter.ssa.review").await;
    let id = submit_request(&http, &both, "mine", &["read"]).await;
    for (action, body) in [("approve", json!({})), ("deny", json!({ "reason": "no" }))] {
        let (status, body) = http
            .call(
                "POST",
                &format!("/ssa/review/requests/{id}/{action}"),
                Some(&both),
                Some(body),
            )
            .await;
        assert_denied(status, &body, "");
    }

    // Without the rule in the policies, the code still refuses.
    let ssa = server.policies().join("ssa.cedar");
    let text = std::fs::read_to_string(&ssa).unwrap();
    let at = text.find("@id(\"ssa-no-self-review\")").unwrap();
    let end = at + text[at..].find("};").unwrap() + 2;
    std::fs::write(&ssa, format!("{}{}", &text[..at], &text[end..])).unwrap();
    let reloaded = server.reload().await;
    assert!(reloaded.errors.is_empty(), "{:?}", reloaded.errors);
    let (status, body) = http
        .call(
            "POST",
            &format!("/ssa/review/requests/{id}/approve"),
            Some(&both),
            Some(json!({})),
        )
        .await;
    assert_denied(status, &body, "separation of duties");

    // Someone else reviews it.
    let reviewer = bootstrap(&server, &http, "arbiter.ssa.review").await;
    let (status, body) = http
        .call(
            "POST",
            &format!("/ssa/review/requests/{id}/approve"),
            Some(&reviewer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");
}

#[tokio::test]
async fn approving_arbiters_own_scopes_needs_a_policy_that_says_so() {
    let server = TestServer::start().await;
    let http = Http::new(&server);
    let developer = bootstrap(&server, &http, "arbiter.ssa.request").await;
    let reviewer = bootstrap(&server, &http, "arbiter.ssa.review").await;
    let id = submit_request(&http, &developer, "power", &["read", "arbiter.ssa.review"]).await;
    let approve = |body| {
        let path = format!("/ssa/review/requests/{id}/approve");
        let http = &http;
        let reviewer = &reviewer;
        async move { http.call("POST", &path, Some(reviewer), Some(body)).await }
    };

    // "Everything requested" includes a workflow scope: refused, the request stays pending.
    let (status, body) = approve(json!({})).await;
    assert_denied(status, &body, "ApproveScope");

    // A policy permitting it makes it possible.
    std::fs::write(
        server.policies().join("approve-workflow-scopes.cedar"),
        r#"@id("reviewers-may-delegate-review")
permit (principal, action == Action::"ApproveScope", resource == Scope::"arbiter.ssa.review")
when { context.scopes.contains("arbiter.ssa.review") };
"#,
    )
    .unwrap();
    let reloaded = server.reload().await;
    assert!(reloaded.errors.is_empty(), "{:?}", reloaded.errors);
    let (status, body) = approve(json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["approved_scopes"],
        json!(["read", "arbiter.ssa.review"])
    );
}
