//! Over gRPC: every reason once, what the transport carries (Struct numbers and addresses
//! typed by the schema, bounds, method case), batch order and explain. Outcomes of the
//! bundled policies themselves are `policies/tests/*.yaml`, run by `arbiter policies test`.

use arbiter::grpc::proto::{self, policy_explanation::Outcome, Reason};
use serde_json::{json, Value};

use crate::support::*;

struct Case {
    name: &'static str,
    client: &'static str,
    sub: Option<&'static str>,
    scopes: &'static str,
    extra: Value,
    method: &'static str,
    path: &'static str,
    context: Value,
    want: Reason,
    policies: &'static [&'static str],
    required: &'static [&'static str],
}

const FIDO_READ: &str = "https://jans.io/oauth/config/fido2.readonly";
const FIDO_WRITE: &str = "https://jans.io/oauth/config/fido2.write";

fn case(
    name: &'static str,
    scopes: &'static str,
    method: &'static str,
    path: &'static str,
    want: Reason,
) -> Case {
    Case {
        name,
        client: "demo",
        sub: None,
        scopes,
        extra: json!({}),
        method,
        path,
        context: json!({}),
        want,
        policies: &[],
        required: &[],
    }
}

fn cases() -> Vec<Case> {
    use Reason::*;
    vec![
        Case {
            required: &[FIDO_READ],
            ..case(
                "fido read with write scope only",
                FIDO_WRITE,
                "GET",
                "/fido/config",
                InsufficientScope,
            )
        },
        Case {
            policies: &["item-read"],
            ..case("read item", "read", "GET", "/item/42", Allowed)
        },
        Case {
            context: json!({ "fraud_score": 81 }),
            policies: &["deny-high-fraud-score"],
            ..case("high fraud score", "read", "GET", "/item/1", PolicyDeny)
        },
        Case {
            context: json!({ "ip": "203.0.113.7" }),
            policies: &["deny-risky-network"],
            ..case("risky ip", "read", "GET", "/item/1", PolicyDeny)
        },
        Case {
            ..case("unknown path", "read", "GET", "/nope", NoRoute)
        },
        Case {
            ..case("unknown method", "read", "BREW", "/item/1", InvalidRequest)
        },
        Case {
            policies: &["item-read"],
            ..case("method is upper-cased", "read", "get", "/item/1", Allowed)
        },
        Case {
            ..case(
                "caller cannot inject scopes",
                "",
                "GET",
                "/item/1",
                InvalidRequest,
            )
        }
        .with_context(json!({ "scopes": ["read"] })),
        Case {
            ..case(
                "context field of the wrong type",
                "read",
                "GET",
                "/item/1",
                InvalidRequest,
            )
        }
        .with_context(json!({ "fraud_score": "high" })),
        Case {
            ..case(
                "invalid ip in context",
                "read",
                "GET",
                "/item/1",
                InvalidRequest,
            )
        }
        .with_context(json!({ "ip": "999.1.1.1" })),
        Case {
            policies: &["item-read"],
            ..case(
                "undeclared context fields are dropped",
                "read",
                "GET",
                "/item/1",
                Allowed,
            )
        }
        .with_context(json!({ "user_agent": "curl" })),
    ]
}

impl Case {
    fn with_context(mut self, context: Value) -> Self {
        self.context = context;
        self
    }
}

#[tokio::test]
async fn bundled_policies_decide_as_documented() {
    let mut server = TestServer::start().await;
    let mut failures = Vec::new();
    for c in cases() {
        let Value::Object(extra) = c.extra.clone() else {
            unreachable!()
        };
        let token = server.token_with(c.client, c.sub, c.scopes, extra);
        let r = server
            .authorize(&token, c.method, c.path, c.context.clone())
            .await;
        let got = reason(&r);
        let mut required = r.required_scopes.clone();
        required.sort();
        if got != c.want
            || (c.want == Reason::Allowed) != allowed(&r)
            || (!c.policies.is_empty() && r.policy_ids != c.policies)
            || required != c.required
        {
            failures.push(format!(
                "{}: got {:?} policies {:?} required {:?} errors {:?}; want {:?} policies {:?} required {:?}",
                c.name, got, r.policy_ids, required, r.errors, c.want, c.policies, c.required
            ));
        }
        assert!(!r.decision_id.is_empty());
        assert!(!r.policy_version.is_empty());
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn anonymous_requests() {
    let mut server = TestServer::start().await;
    let r = server.authorize("", "GET", "/health", json!({})).await;
    assert!(allowed(&r), "{r:?}");
    assert_eq!(r.policy_ids, ["public-health"]);
    assert!(r.principal.is_none());

    let r = server.authorize("", "GET", "/item/1", json!({})).await;
    assert_eq!(reason(&r), Reason::MissingToken, "{r:?}");
    assert!(!allowed(&r));

    let r = server
        .authorize("", "GET", "/health", json!({ "ip": "203.0.113.9" }))
        .await;
    assert_eq!(
        reason(&r),
        Reason::MissingToken,
        "a forbid still denies: {r:?}"
    );
}

#[tokio::test]
async fn response_carries_principal_and_ttl() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", Some("alice"), "read");
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    let p = r.principal.unwrap();
    assert_eq!(p.entity, "User::\"alice\"");
    assert_eq!(p.client_id, "demo");
    assert_eq!(p.scopes, ["read"]);
    assert!(!p.jti.is_empty());
    assert!(r.cache_ttl_seconds > 0 && r.cache_ttl_seconds <= 60);

    let token = server.token("demo", None, "read");
    let r = server.authorize(&token, "GET", "/item/1", json!({})).await;
    assert_eq!(r.principal.unwrap().entity, "Client::\"demo\"");
}

#[tokio::test]
async fn batch_answers_in_order_and_is_bounded() {
    let mut server = TestServer::start().await;
    let read = server.token("demo", None, "read");
    let requests = vec![
        request(&read, "GET", "/item/1", json!({})),
        request(&read, "GET", "/nope", json!({})),
        request("garbage", "GET", "/item/1", json!({})),
        request(&read, "POST", "/items", json!({})),
        request(&read, "GET", "/item/1", json!({ "fraud_score": 99 })),
    ];
    let r = server
        .client
        .authorize_batch(proto::AuthorizeBatchRequest { requests })
        .await
        .unwrap()
        .into_inner();
    let reasons: Vec<Reason> = r.responses.iter().map(reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::Allowed,
            Reason::NoRoute,
            Reason::InvalidToken,
            Reason::InsufficientScope,
            Reason::PolicyDeny
        ]
    );

    let too_many = (0..101)
        .map(|_| request(&read, "GET", "/item/1", json!({})))
        .collect();
    let err = server
        .client
        .authorize_batch(proto::AuthorizeBatchRequest { requests: too_many })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn explain_lists_every_policy_that_could_apply() {
    let mut server = TestServer::start().await;
    let token = server.token("demo", None, "read");
    let mut req = request(&token, "POST", "/items", json!({ "fraud_score": 10 }));
    req.explain = true;
    let r = server.client.authorize(req).await.unwrap().into_inner();
    assert_eq!(reason(&r), Reason::InsufficientScope);
    let ids: Vec<&str> = r.explanation.iter().map(|e| e.policy_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "deny-high-fraud-score",
            "deny-risky-network",
            "items-create"
        ]
    );
    let create = r
        .explanation
        .iter()
        .find(|e| e.policy_id == "items-create")
        .unwrap();
    assert_eq!(create.outcome, Outcome::NotSatisfied as i32);
    assert_eq!(create.file, "items.cedar");
    assert_eq!(create.line, 3);
    assert_eq!(create.scopes, "read && (fido || otp)");
    assert_eq!(create.missing_scopes, ["fido"]);

    // Without `explain`, no explanation is computed.
    let r = server.authorize(&token, "POST", "/items", json!({})).await;
    assert!(r.explanation.is_empty());
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let server = TestServer::start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "arbiter.v1.Authorizer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("{resp:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"arbiter.v1.Authorizer".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}
