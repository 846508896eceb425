//! The per-endpoint index never changes an answer: on a generated policy set, indexed
//! evaluation equals whole-set evaluation for a few thousand generated requests.

use std::fmt::Write as _;

use arbiter::decision::{verdict, verdict_over_whole_set, Caller, Input};
use arbiter::policy::PolicySnapshot;
use arbiter::token::VerifiedToken;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::support::bundled_policies;

const SCOPES: [&str; 6] = ["read", "write", "fido", "otp", "admin", "hr.read"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const APIS: usize = 5;
const ENDPOINTS: usize = 200;

/// Writes a random but valid policy directory and returns the route templates.
fn generate(dir: &std::path::Path, rng: &mut StdRng) -> Vec<String> {
    std::fs::copy(
        bundled_policies().join("schema.cedarschema"),
        dir.join("schema.cedarschema"),
    )
    .unwrap();
    let templates: Vec<String> = (0..ENDPOINTS)
        .map(|i| match i % 3 {
            0 => format!("/svc{i}/items"),
            1 => format!("/svc{i}/items/{{id}}"),
            _ => format!("/svc{i}/items/{{id}}/parts/{{part}}"),
        })
        .collect();
    let mut entities = Vec::new();
    for a in 0..APIS {
        entities.push(json!({ "uid": { "type": "Api", "id": format!("api{a}") }, "attrs": {}, "parents": [] }));
    }
    for (i, t) in templates.iter().enumerate() {
        // most endpoints belong to an API; some to none
        let parents = if i % 7 == 0 {
            json!([])
        } else {
            json!([{ "type": "Api", "id": format!("api{}", i % APIS) }])
        };
        entities.push(
            json!({ "uid": { "type": "Endpoint", "id": t }, "attrs": {}, "parents": parents }),
        );
    }
    entities
        .push(json!({ "uid": { "type": "Group", "id": "admins" }, "attrs": {}, "parents": [] }));
    entities.push(json!({ "uid": { "type": "Client", "id": "c1" }, "attrs": {}, "parents": [{ "type": "Group", "id": "admins" }] }));
    std::fs::write(
        dir.join("entities.json"),
        serde_json::to_string_pretty(&entities).unwrap(),
    )
    .unwrap();

    let mut text = String::new();
    for p in 0..1500 {
        let effect = if rng.gen_bool(0.93) {
            "permit"
        } else {
            "forbid"
        };
        let principal = match rng.gen_range(0..5) {
            0 => "principal is User".to_string(),
            1 => "principal in Group::\"admins\"".to_string(),
            2 => "principal == Client::\"c2\"".to_string(),
            _ => "principal".to_string(),
        };
        let s1 = SCOPES.choose(rng).unwrap();
        let s2 = SCOPES.choose(rng).unwrap();
        let condition = match rng.gen_range(0..6) {
            0 => String::new(),
            1 => format!("when {{ context.scopes.contains({s1:?}) }}"),
            2 => format!("when {{ context.scopes.contains({s1:?}) && context.scopes.containsAny([{s2:?}, \"otp\"]) }}"),
            3 => format!("when {{ context has fraud_score && context.fraud_score > {} }}", rng.gen_range(0..100)),
            4 => "when { context has params && context.params has id && context.params.id == \"7\" }".to_string(),
            _ => format!("unless {{ context.scopes.contains({s1:?}) }}"),
        };
        // `scopes` and `params` exist only in the context of the HTTP actions
        let any_action_ok = !condition.contains("scopes") && !condition.contains("params");
        let action = match rng.gen_range(0..4) {
            0 if any_action_ok => "action".to_string(),
            0 => {
                "action in [Action::\"GET\", Action::\"POST\", Action::\"PUT\", Action::\"DELETE\"]"
                    .to_string()
            }
            1 => format!(
                "action in [Action::\"{}\", Action::\"{}\"]",
                METHODS[rng.gen_range(0..4)],
                METHODS[rng.gen_range(0..4)]
            ),
            _ => format!("action == Action::\"{}\"", METHODS[rng.gen_range(0..4)]),
        };
        let resource = match rng.gen_range(0..20) {
            0 => "resource".to_string(),
            1 => "resource is Endpoint".to_string(),
            2..=4 => format!("resource in Api::\"api{}\"", rng.gen_range(0..APIS)),
            5 => format!(
                "resource is Endpoint in Api::\"api{}\"",
                rng.gen_range(0..APIS)
            ),
            6 => "resource == Endpoint::\"/not/a/route/of/any/request\"".to_string(),
            _ => format!("resource == Endpoint::{:?}", templates.choose(rng).unwrap()),
        };
        // forbids stay narrow so that the set allows often enough to be a fair comparison
        let condition = if effect == "forbid" && rng.gen_bool(0.8) {
            format!(
                "when {{ context has fraud_score && context.fraud_score > {} }}",
                rng.gen_range(60..100)
            )
        } else {
            condition
        };
        // No `@scopes`: what a permit needs is read from its conditions.
        writeln!(
            text,
            "@id(\"p{p}\")\n{effect} ({principal}, {action}, {resource}) {condition};"
        )
        .unwrap();
    }
    std::fs::write(dir.join("generated.cedar"), text).unwrap();
    templates
}

fn concrete(template: &str, rng: &mut StdRng) -> String {
    template
        .replace("{id}", if rng.gen_bool(0.3) { "7" } else { "42" })
        .replace("{part}", "p1")
}

#[test]
fn indexed_evaluation_equals_whole_set_evaluation() {
    let mut rng = StdRng::seed_from_u64(0x00a4_b17e);
    let dir = tempfile::tempdir().unwrap();
    let templates = generate(dir.path(), &mut rng);
    let snapshot = PolicySnapshot::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snapshot.policy_count(), 1500);

    let mut allows = 0;
    let mut with_policies = 0;
    let requests = 3000;
    for i in 0..requests {
        let scopes: Vec<String> = SCOPES
            .iter()
            .filter(|_| rng.gen_bool(0.4))
            .map(|s| s.to_string())
            .collect();
        let (sub, client) = match rng.gen_range(0..3) {
            0 => (Some("u1".to_string()), "c1"),
            1 => (None, "c1"),
            _ => (None, "c2"),
        };
        let mut claims = Map::new();
        claims.insert("iss".into(), json!("https://arbiter.local/dev"));
        claims.insert("exp".into(), json!(4_000_000_000u64));
        claims.insert(
            "sub".into(),
            json!(sub.unwrap_or_else(|| client.to_string())),
        );
        claims.insert("client_id".into(), json!(client));
        claims.insert("scope".into(), json!(scopes.join(" ")));
        let token = VerifiedToken::from_verified_claims(claims).unwrap();
        let mut context = Map::new();
        if rng.gen_bool(0.5) {
            context.insert("fraud_score".into(), Value::from(rng.gen_range(0..100)));
        }
        let path = concrete(templates.choose(&mut rng).unwrap(), &mut rng);
        let input = Input {
            method: METHODS[rng.gen_range(0..4)],
            path: &path,
            resource: None,
            context: &context,
            explain: false,
        };
        let caller = if i % 10 == 0 {
            Caller::Anonymous
        } else {
            Caller::Token(&token)
        };
        let mut indexed = verdict(&snapshot, &input, caller);
        let mut whole = verdict_over_whole_set(&snapshot, &input, caller);
        indexed.policy_ids.sort();
        whole.policy_ids.sort();
        assert_eq!(
            (indexed.allowed, &indexed.policy_ids, indexed.errors.len()),
            (whole.allowed, &whole.policy_ids, whole.errors.len()),
            "request {i}: {} {path}",
            input.method
        );
        allows += usize::from(indexed.allowed);
        with_policies += usize::from(!indexed.policy_ids.is_empty());
    }
    // The generated set must exercise both outcomes, or the comparison proves little.
    assert!(
        allows > requests / 20 && allows < requests * 19 / 20,
        "allows: {allows}"
    );
    assert!(
        with_policies > requests / 4,
        "determining policies seen: {with_policies}"
    );
}

/// A named resource (neither endpoint nor scope) is decided against its type's slice: the
/// same answers as the whole set, for the workbench's actions and every department.
#[test]
fn a_named_resource_slice_decides_as_the_whole_set() {
    let snapshot = PolicySnapshot::load(&crate::support::bundled_policies()).unwrap();
    let console = arbiter::decision::EntityRef {
        uid: r#"Console::"workbench""#.parse().unwrap(),
        properties: Map::new(),
    };
    let mut allows = 0;
    for department in ["Audit", "Security", "Sales"] {
        for action in [
            "ViewOverview",
            "ViewPolicies",
            "TryRequest",
            "RunProof",
            "ViewDecisions",
        ] {
            for fraud in [None, Some(95)] {
                let mut claims = Map::new();
                claims.insert("iss".into(), json!("https://login.example.com"));
                claims.insert("exp".into(), json!(4_000_000_000u64));
                claims.insert("sub".into(), json!("ada"));
                claims.insert("department".into(), json!(department));
                let token = VerifiedToken::from_verified_claims(claims).unwrap();
                let mut context = Map::new();
                if let Some(f) = fraud {
                    context.insert("fraud_score".into(), json!(f));
                }
                let input = Input {
                    method: action,
                    path: "",
                    resource: Some(&console),
                    context: &context,
                    explain: false,
                };
                let caller = Caller::Token(&token);
                let mut sliced = verdict(&snapshot, &input, caller);
                let mut whole = verdict_over_whole_set(&snapshot, &input, caller);
                sliced.policy_ids.sort();
                whole.policy_ids.sort();
                assert_eq!(
                    (
                        sliced.allowed,
                        sliced.reason,
                        &sliced.policy_ids,
                        &sliced.errors
                    ),
                    (
                        whole.allowed,
                        whole.reason,
                        &whole.policy_ids,
                        &whole.errors
                    ),
                    "{department} {action} {fraud:?}"
                );
                allows += usize::from(sliced.allowed);
            }
        }
    }
    assert!(allows > 0 && allows < 30, "allows: {allows}");
}
