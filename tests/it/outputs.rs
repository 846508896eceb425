//! Decision outputs (`@header_*`, `@metadata_*`, `@deny_status`, `@deny_message`) over the
//! real gRPC API: what the determining policies give, what a load refuses (conflicts and
//! placeholders nobody verified, at their `file:line`), and a value that cannot be filled
//! denying the request instead of forwarding it without its header.

use serde_json::json;

use crate::support::*;
use arbiter::wire::proto::{reload_outcome, Reason};

const SECOND_READER: &str = r#"// Another permit for reading items, which sets `x-item-id` differently.
@id("item-read-again")
@header_x_item_id("item-{params.id}")
permit (
  principal,
  action == Action::"GET",
  resource == Endpoint::"/item/{id}"
)
when { context.scopes.contains("read") };
"#;

#[tokio::test]
async fn outputs_come_from_the_determining_policies_and_conflicts_never_load() {
    let mut server = TestServer::start_with(|c| c.watch_policies = false).await;
    let read = server.token("demo", None, "read");

    let r = server.authorize(&read, "GET", "/item/42", json!({})).await;
    assert!(allowed(&r));
    let o = r.outputs.expect("item-read has outputs");
    assert_eq!(o.headers["x-item-id"], "42");
    assert_eq!(o.headers["x-caller"], "Client::\"demo\"");
    assert_eq!(o.metadata["item_id"], "42");
    assert_eq!((o.deny_status, o.deny_message.as_str()), (0, ""));

    let r = server.authorize(&read, "GET", "/item/0", json!({})).await;
    assert_eq!(reason(&r), Reason::PolicyDeny);
    let o = r.outputs.expect("item-zero-is-hidden has outputs");
    assert_eq!(
        (o.deny_status, o.deny_message.as_str()),
        (404, "no such item")
    );
    assert!(
        o.headers.is_empty(),
        "a deny sets no header for the upstream"
    );

    // Explain shows each policy's output annotations as written, determining or not.
    let mut ask = request(&read, "GET", "/item/0", json!({}));
    ask.explain = true;
    let r = connect(server.addr)
        .await
        .authorize(ask)
        .await
        .unwrap()
        .into_inner();
    let of = |id: &str| {
        r.explanation
            .iter()
            .find(|e| e.policy_id == id)
            .unwrap_or_else(|| panic!("{id} explained: {r:?}"))
            .outputs
            .clone()
    };
    assert_eq!(of("item-read")["header_x_item_id"], "{params.id}");
    assert_eq!(of("item-zero-is-hidden")["deny_status"], "404");
    assert!(of("deny-risky-network").is_empty());

    // A deny nobody's annotations shape has no outputs.
    let r = server.authorize(&read, "POST", "/items", json!({})).await;
    assert_eq!(reason(&r), Reason::InsufficientScope);
    assert!(r.outputs.is_none());

    // Two permits that can both allow the same GET with different `x-item-id`: refused at
    // the later one's file and line; the live set stays.
    let extra = server.policies().join("extra.cedar");
    std::fs::write(&extra, SECOND_READER).unwrap();
    let refused = server.reload().await;
    assert_eq!(
        refused.outcome.unwrap().result,
        reload_outcome::Result::Failed as i32
    );
    let e = &refused.errors[0];
    // Reported at the later of the two in file order, naming the other and where it is.
    assert_eq!((e.file.as_str(), e.line), ("items.cedar", 13), "{e:?}");
    assert!(
        e.message
            .contains("`item-read` and `item-read-again` (at extra.cedar:2)")
            && e.message.contains("header `x-item-id`"),
        "{e:?}"
    );

    // The same header on DELETE (another action) cannot decide the same request: it loads.
    std::fs::write(
        &extra,
        SECOND_READER
            .replace("Action::\"GET\"", "Action::\"DELETE\"")
            .replace(
                "context.scopes.contains(\"read\")",
                "context.scopes.contains(\"admin\")",
            ),
    )
    .unwrap();
    let applied = server.reload().await;
    assert_eq!(
        applied.outcome.unwrap().result,
        reload_outcome::Result::Applied as i32,
        "{:?}",
        applied.errors
    );
    let admin = server.token("demo", None, "admin");
    let r = server
        .authorize(&admin, "DELETE", "/item/5", json!({}))
        .await;
    assert!(allowed(&r), "{r:?}");
    let o = r.outputs.unwrap();
    assert_eq!(o.headers["x-item-id"], "item-5");
    assert_eq!(
        o.remove_headers,
        ["x-caller"],
        "the endpoint's other output header"
    );
}

#[tokio::test]
async fn placeholders_are_checked_at_load_and_filled_or_denied_at_decision() {
    let mut server = TestServer::start_with(|c| c.watch_policies = false).await;
    let extra = server.policies().join("extra.cedar");

    // The caller's context is not verified: a placeholder from it never loads.
    std::fs::write(
        &extra,
        "@id(\"from-context\")\n@header_x_tenant(\"{context.tenant}\")\n\
         permit (principal, action == Action::\"GET\", resource == Endpoint::\"/tenant\");\n",
    )
    .unwrap();
    let refused = server.reload().await;
    let e = &refused.errors[0];
    assert_eq!((e.file.as_str(), e.line), ("extra.cedar", 1), "{e:?}");
    assert!(
        e.message.contains("unknown placeholder `{context.tenant}`"),
        "{e:?}"
    );

    // A verified claim: filled when the token has it; a deny (fail closed) when it does not.
    std::fs::write(
        &extra,
        "@id(\"tenant-header\")\n@header_x_tenant(\"{claims.tenant}\")\n\
         permit (principal, action == Action::\"GET\", resource == Endpoint::\"/tenant\");\n",
    )
    .unwrap();
    let applied = server.reload().await;
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    let mut claims = serde_json::Map::new();
    claims.insert("tenant".into(), json!("acme"));
    let with = server.token_with("demo", None, "read", claims);
    let r = server.authorize(&with, "GET", "/tenant", json!({})).await;
    assert!(allowed(&r), "{r:?}");
    assert_eq!(r.outputs.unwrap().headers["x-tenant"], "acme");

    let without = server.token("demo", None, "read");
    let r = server
        .authorize(&without, "GET", "/tenant", json!({}))
        .await;
    assert_eq!(reason(&r), Reason::Error, "{r:?}");
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("the token has no claim `tenant`")),
        "{:?}",
        r.errors
    );

    // A claim that would inject a header line is refused the same way.
    let mut claims = serde_json::Map::new();
    claims.insert("tenant".into(), json!("acme\r\nx-admin: 1"));
    let evil = server.token_with("demo", None, "read", claims);
    let r = server.authorize(&evil, "GET", "/tenant", json!({})).await;
    assert_eq!(reason(&r), Reason::Error, "{r:?}");
}
