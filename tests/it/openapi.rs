//! OpenAPI import and diff on a realistic document with OR/AND security, an operation-level
//! override, an anonymous alternative, `security: []`, and a scheme Arbiter cannot check:
//! checked as text, by validation, and by the decisions the policies produce.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn arbiter(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spec() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/petstore.yaml")
        .display()
        .to_string()
}

const CASES: &str = r#"
cases:
  - { name: list with pets.read, principal: 'Client::"app"', scopes: [pets.read], method: GET, path: /pets, expect: allow, policies: [petstore.listPets] }
  - { name: list without, principal: 'Client::"app"', scopes: [pets.write], method: GET, path: /pets, expect: deny, reason: insufficient_scope }
  - { name: create with write and mfa, principal: 'Client::"app"', scopes: [pets.write, mfa], method: POST, path: /pets, expect: allow }
  - { name: create with write alone, principal: 'Client::"app"', scopes: [pets.write], method: POST, path: /pets, expect: deny }
  - { name: create as partner admin, principal: 'Client::"partner"', scopes: [pets.admin], method: POST, path: /pets, expect: allow }
  - { name: show anonymously, method: GET, path: /pets/7, expect: allow, policies: [petstore.showPetById] }
  - { name: delete needs both schemes, principal: 'Client::"app"', scopes: [pets.write, pets.admin], method: DELETE, path: /pets/7, expect: allow }
  - { name: delete with one, principal: 'Client::"app"', scopes: [pets.write], method: DELETE, path: /pets/7, expect: deny }
  - { name: update with write, principal: 'Client::"app"', scopes: [pets.write], method: PUT, path: /pets/7, expect: allow }
  - { name: update without a token (the API key alternative is not checkable), method: PUT, path: /pets/7, expect: deny }
  - { name: health needs nothing, method: GET, path: /health, expect: allow }
"#;

#[test]
fn import_writes_one_policy_per_operation_with_exact_security() {
    let (code, out, err) = arbiter(&["openapi", "import", &spec(), "--api", "petstore"]);
    assert_eq!(code, 0, "{err}");
    for expected in [
        "@id(\"petstore.createPet\")\n@api(\"petstore\")\n@operation(\"createPet\")\n@scopes(\"(mfa && pets.write) || pets.admin\")\npermit (principal, action == Action::\"POST\", resource == Endpoint::\"/pets\")\nwhen { (context.scopes.containsAll([\"mfa\", \"pets.write\"])) || (context.scopes.contains(\"pets.admin\")) };",
        "@operation(\"listPets\")\n@scopes(\"pets.read\")",
        "@operation(\"showPetById\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/pets/{petId}\");",
        "@operation(\"health\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/health\");",
        "when { context.scopes.containsAll([\"pets.admin\", \"pets.write\"]) };",
    ] {
        assert!(out.contains(expected), "missing:\n{expected}\nin:\n{out}");
    }
    assert!(
        err.contains("updatePet: alternative 0 needs the `api_key` scheme (apiKey)"),
        "{err}"
    );
    let (_, again, _) = arbiter(&["openapi", "import", &spec(), "--api", "petstore"]);
    assert_eq!(out, again, "the output is stable");
}

#[test]
fn imported_policies_validate_decide_as_designed_and_diff_clean() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_dir(&bundled_policies(), &policies);
    std::fs::remove_dir_all(policies.join("tests")).unwrap();
    // the bundled properties are proved in policy_tests.rs; this test is about the import
    std::fs::remove_dir_all(policies.join("properties")).unwrap();
    let out_file = policies.join("petstore.cedar");
    let entities = policies.join("entities.json");
    let (code, _, err) = arbiter(&[
        "openapi",
        "import",
        &spec(),
        "--api",
        "petstore",
        "--out",
        out_file.to_str().unwrap(),
        "--entities",
        entities.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = arbiter(&["policies", "validate", policies.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::create_dir(policies.join("tests")).unwrap();
    std::fs::write(policies.join("tests/petstore.yaml"), CASES).unwrap();
    let (code, out, _) = arbiter(&["policies", "test", "--human", policies.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("11 passed, 0 failed"), "{out}");
    let (_, listed, _) = arbiter(&[
        "policies",
        "query",
        "--human",
        policies.to_str().unwrap(),
        "--annotation",
        "api=petstore",
    ]);
    assert!(listed.contains("6 matching"), "{listed}");

    let spec_path = spec();
    let diff = |extra: &[&str]| {
        let mut args = vec![
            "openapi",
            "diff",
            &spec_path,
            "--api",
            "petstore",
            "--policies",
            policies.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        arbiter(&args)
    };
    let (code, out, _) = diff(&[]);
    assert_eq!(code, 0, "freshly imported: no differences\n{out}");

    // Drift: a scope changed by hand, an operation's policy removed, a policy the design lacks.
    let text = std::fs::read_to_string(&out_file).unwrap();
    let drifted = text
        .replace("@scopes(\"pets.read\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/pets\")\nwhen { context.scopes.contains(\"pets.read\") };",
                 "@scopes(\"pets.admin\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/pets\")\nwhen { context.scopes.contains(\"pets.admin\") };");
    assert_ne!(drifted, text);
    let start = drifted.find("@id(\"petstore.deletePet\")").unwrap();
    let mut drifted = drifted[..start].to_owned();
    drifted.push_str("@id(\"petstore.toys\")\n@api(\"petstore\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/pets/{petId}/toys\");\n");
    std::fs::write(&out_file, drifted).unwrap();
    let (code, out, _) = diff(&["--json"]);
    assert_eq!(code, 2, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let found: Vec<(String, String)> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["operation"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("scopes_differ".to_owned(), "GET /pets".to_owned()),
            (
                "missing_policy".to_owned(),
                "DELETE /pets/{petId}".to_owned()
            ),
            (
                "not_in_design".to_owned(),
                "GET /pets/{petId}/toys".to_owned()
            ),
        ]
    );
}

#[test]
fn broken_documents_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        "openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      security: [ { nowhere: [] } ]\n",
    )
    .unwrap();
    let (code, _, err) = arbiter(&["openapi", "import", unknown.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("security scheme `nowhere` is not defined"),
        "{err}"
    );
    let swagger = dir.path().join("swagger.json");
    std::fs::write(&swagger, r#"{"swagger": "2.0", "paths": {}}"#).unwrap();
    let (code, _, err) = arbiter(&["openapi", "import", swagger.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("only OpenAPI 3.0 and 3.1"), "{err}");
}
