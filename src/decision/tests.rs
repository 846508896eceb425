//! The pure decision, table-driven over the bundled policies.
use super::*;
use serde_json::json;

fn token(claims: Value) -> VerifiedToken {
    let Value::Object(mut claims) = claims else {
        unreachable!()
    };
    claims.insert("iss".into(), json!("https://arbiter.local/dev"));
    claims.insert("exp".into(), json!(4_000_000_000u64));
    VerifiedToken::from_verified_claims(claims).unwrap()
}

/// The pure decision, table-driven over the bundled policies: every caller kind, both
/// target kinds, every reason.
#[test]
fn decides_the_bundled_policies() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let snapshot = PolicySnapshot::load(&dir).unwrap();
    let demo_read = token(json!({"sub": "demo", "client_id": "demo", "scope": "read"}));
    let bob_write =
        token(json!({"sub": "bob", "scope": "https://jans.io/oauth/config/fido2.write"}));
    let todo = EntityRef {
        uid: r#"Scope::"payment""#.parse().unwrap(),
        properties: Map::new(),
    };
    let client = EntityRef {
        uid: r#"Client::"c1""#.parse().unwrap(),
        properties: Map::new(),
    };
    let route = EntityRef {
        uid: r#"Endpoint::"/item/{id}""#.parse().unwrap(),
        properties: Map::new(),
    };
    let admin = EntityRef {
        uid: r#"User::"admin""#.parse().unwrap(),
        properties: Map::new(),
    };
    let empty = Map::new();
    let Value::Object(fraud) = json!({"fraud_score": 90}) else {
        unreachable!()
    };
    let Value::Object(widen) = json!({"scopes": ["write"]}) else {
        unreachable!()
    };
    let Value::Object(issue) = json!({"grant_type": "client_credentials"}) else {
        unreachable!()
    };
    // (caller, action, path, resource, context) → (allowed, reason)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        Caller,
        &str,
        &str,
        Option<&EntityRef>,
        &Map<String, Value>,
        bool,
        Reason,
    )> = vec![
        (
            Caller::Token(&demo_read),
            "GET",
            "/item/7",
            None,
            &empty,
            true,
            Reason::Allowed,
        ),
        (
            Caller::Token(&demo_read),
            "POST",
            "/items",
            None,
            &empty,
            false,
            Reason::InsufficientScope,
        ),
        (
            Caller::Token(&demo_read),
            "GET",
            "/item/7",
            None,
            &fraud,
            false,
            Reason::PolicyDeny,
        ),
        (
            Caller::Token(&demo_read),
            "GET",
            "/nowhere",
            None,
            &empty,
            false,
            Reason::NoRoute,
        ),
        (
            Caller::Token(&demo_read),
            "GET",
            "/item/7",
            None,
            &widen,
            false,
            Reason::InvalidRequest,
        ),
        (
            Caller::Token(&demo_read),
            "BREW",
            "/item/7",
            None,
            &empty,
            false,
            Reason::InvalidRequest,
        ),
        (
            Caller::Anonymous,
            "GET",
            "/health",
            None,
            &empty,
            true,
            Reason::Allowed,
        ),
        (
            Caller::Anonymous,
            "GET",
            "/item/7",
            None,
            &empty,
            false,
            Reason::MissingToken,
        ),
        // a token naming no client is a User: the MFA forbid applies
        (
            Caller::Token(&bob_write),
            "PUT",
            "/fido/config",
            None,
            &empty,
            false,
            Reason::PolicyDeny,
        ),
        // an asserted subject has no scopes
        (
            Caller::Subject(Subject::Asserted(&admin)),
            "GET",
            "",
            Some(&route),
            &empty,
            false,
            Reason::InsufficientScope,
        ),
        // a client the token endpoint authenticated, asking for a scope
        (
            Caller::Subject(Subject::Client {
                issuer: "http://127.0.0.1:8080",
                client: &client,
            }),
            "IssueScope",
            "",
            Some(&todo),
            &issue,
            true,
            Reason::Allowed,
        ),
    ];
    for (caller, method, path, resource, context, allowed, reason) in cases {
        let input = Input {
            method,
            path,
            resource,
            context,
            explain: false,
        };
        let v = verdict(&snapshot, &input, caller);
        assert_eq!(
            (v.allowed, v.reason),
            (allowed, reason),
            "{caller:?} {method} {path}: {v:?}"
        );
    }
}

/// A permit in plain Cedar, without `@scopes`, names the scopes its conditions check: a
/// token without them is `INSUFFICIENT_SCOPE` with the cheapest set to ask for, as with an
/// annotation; an annotation that says otherwise is refused at load, at its line.
#[test]
fn scope_requirements_are_read_from_the_conditions() {
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let dir = tempfile::tempdir().unwrap();
    for file in ["schema.cedarschema", "entities.json"] {
        std::fs::copy(bundled.join(file), dir.path().join(file)).unwrap();
    }
    let plain = "@id(\"create\")\npermit (principal, action == Action::\"POST\", resource == Endpoint::\"/items\")\nwhen { context.scopes.contains(\"read\") && context.scopes.containsAny([\"fido\", \"otp\"]) };\n";
    std::fs::write(dir.path().join("items.cedar"), plain).unwrap();
    let snapshot = PolicySnapshot::load(dir.path()).unwrap();
    let empty = Map::new();
    let input = Input {
        method: "POST",
        path: "/items",
        resource: None,
        context: &empty,
        explain: false,
    };
    let read = token(json!({"sub": "demo", "client_id": "demo", "scope": "read"}));
    let v = verdict(&snapshot, &input, Caller::Token(&read));
    assert_eq!(v.reason, Reason::InsufficientScope, "{v:?}");
    assert_eq!(
        v.required_scopes,
        vec!["fido".to_owned(), "read".to_owned()]
    );
    let otp = token(json!({"sub": "demo", "client_id": "demo", "scope": "read otp"}));
    assert!(verdict(&snapshot, &input, Caller::Token(&otp)).allowed);

    let wrong = plain.replace("@id(\"create\")", "@id(\"create\")\n@scopes(\"read\")");
    std::fs::write(dir.path().join("items.cedar"), wrong).unwrap();
    let refused = PolicySnapshot::load(dir.path()).unwrap_err();
    let e = &refused.errors[0];
    assert_eq!((e.file.as_str(), e.line), ("items.cedar", Some(1)), "{e:?}");
    assert!(
        e.message.contains("disagrees") && e.message.contains("require `read && (fido || otp)`"),
        "{e:?}"
    );
}

#[test]
fn reason_all_lists_every_reason_once() {
    // Exhaustive: a new reason does not compile here until it has its place in `ALL`.
    fn place(r: Reason) -> usize {
        match r {
            Reason::Allowed => 0,
            Reason::PolicyDeny => 1,
            Reason::InsufficientScope => 2,
            Reason::MissingToken => 3,
            Reason::InvalidToken => 4,
            Reason::NoRoute => 5,
            Reason::InvalidRequest => 6,
            Reason::Error => 7,
        }
    }
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(place(*r), i, "{r:?}");
    }
}
