//! Property tests of the parsers that take hostile text (issue 14, "keep them closed"): none
//! panics on any input, and each agrees with an independent reading of the same text.
//!
//! - Paths: whatever the PDP decides on (`policy::path::normalize`) is the path an upstream
//!   behind the gateway sees (WHATWG URL parsing, the `url` crate, then percent-decoding) —
//!   for every request target the gateway can receive, with `%`-encodings, `;`, `..`, `//`
//!   and Unicode in it. A path they would read differently is refused.
//! - Scope expressions: the DNF Arbiter keeps is true for exactly the scope sets that make
//!   the written expression true.
//! - Bearer headers, `/token` forms, `/register` bodies: the RFC's rules, and errors never
//!   panics.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256 each).

use std::collections::BTreeSet;

use arbiter::http::bearer_value;
use arbiter::oauth::http::parse_token_request;
use arbiter::oauth::register::parse_registration;
use arbiter::policy::path::normalize;
use arbiter::policy::scopes::ScopeExpr;
use axum::http::{header, HeaderMap, HeaderValue};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Path pieces chosen to collide: dot segments plain and encoded, encoded slashes and
/// percent signs, backslashes, malformed escapes, parameters, empty segments, Unicode
/// (percent-encoded: a request target is ASCII).
fn path_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "item",
        "42",
        "%e6%97%a5%e6%9c%ac",
        ".",
        "..",
        "%2e",
        "%2E",
        ".%2e",
        "%2e.",
        "%2f",
        "%2F",
        "%25",
        "%252e",
        "%",
        "%zz",
        "%4",
        "%41",
        "%c3%a9",
        "%ff",
        "%00",
        ";",
        ";x=1",
        "//",
        "/",
        "?",
        "?q=1",
        "#",
        "~",
        "+",
        "%20",
        "\\",
        "%5c",
        "*",
        ":",
        "@",
        "!",
    ])
}

/// What an upstream that parses URLs as browsers and most frameworks do (WHATWG) sees.
fn upstream_view(target: &str) -> Option<String> {
    let url = url::Url::parse(&format!("http://upstream.example{target}")).ok()?;
    percent_decode_str(url.path())
        .decode_utf8()
        .ok()
        .map(|p| p.into_owned())
}

proptest! {
    #[test]
    fn the_pdp_and_the_upstream_never_read_a_path_differently(
        pieces in prop::collection::vec(path_piece(), 0..8)
    ) {
        let target = format!("/{}", pieces.concat());
        // Only what the gateway can receive: a request target hyper accepts.
        if axum::http::uri::PathAndQuery::try_from(target.as_str()).is_err() {
            return Ok(());
        }
        if let Ok(decided) = normalize(&target) {
            let seen = upstream_view(&target);
            prop_assert_eq!(
                Some(decided.as_ref()),
                seen.as_deref(),
                "target {:?}: the PDP decides on {:?}, the upstream serves {:?}",
                target,
                decided,
                seen
            );
        }
    }

    #[test]
    fn normalize_never_panics(raw in any::<String>()) {
        let _ = normalize(&raw);
    }
}

/// A scope expression as a tree, to render in the annotation's syntax and to evaluate.
#[derive(Debug, Clone)]
enum Expr {
    Scope(String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    fn holds(&self, held: &BTreeSet<String>) -> bool {
        match self {
            Self::Scope(s) => held.contains(s),
            Self::And(all) => all.iter().all(|e| e.holds(held)),
            Self::Or(any) => any.iter().any(|e| e.holds(held)),
        }
    }

    /// Written with `&&` or juxtaposition for AND, parentheses around every group.
    fn render(&self, juxtapose: bool) -> String {
        match self {
            Self::Scope(s) => s.clone(),
            Self::And(all) => {
                let parts: Vec<String> = all.iter().map(|e| e.render(juxtapose)).collect();
                format!("({})", parts.join(if juxtapose { " " } else { " && " }))
            }
            Self::Or(any) => {
                let parts: Vec<String> = any.iter().map(|e| e.render(juxtapose)).collect();
                format!("({})", parts.join(" || "))
            }
        }
    }
}

const SCOPES: &[&str] = &["read", "write", "fido", "otp", "hr.read", "https://x/y.z"];

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop::sample::select(SCOPES).prop_map(|s| Expr::Scope(s.to_owned()));
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::And),
            prop::collection::vec(inner, 1..4).prop_map(Expr::Or),
        ]
    })
}

proptest! {
    #[test]
    fn a_scope_expression_holds_exactly_when_its_dnf_does(
        tree in expr(),
        juxtapose in any::<bool>(),
        held in prop::sample::subsequence(SCOPES, 0..=SCOPES.len()),
    ) {
        let written = tree.render(juxtapose);
        // Expressions beyond the DNF bound are refused, never mis-read.
        let Ok(parsed) = ScopeExpr::parse(&written) else {
            return Ok(());
        };
        let held: BTreeSet<String> = held.into_iter().map(str::to_owned).collect();
        let by_dnf = parsed
            .alternatives()
            .iter()
            .any(|alt| alt.iter().all(|s| held.contains(s)));
        prop_assert_eq!(by_dnf, tree.holds(&held), "{} with {:?}", written, held);
    }

    #[test]
    fn scope_expressions_never_panic(text in "[a-z &|()!.:/]{0,64}") {
        let _ = ScopeExpr::parse(&text);
    }
}

proptest! {
    #[test]
    fn a_bearer_header_yields_exactly_its_b64token(
        scheme in prop::sample::select(vec!["Bearer", "bearer", "BEARER", "bEaReR"]),
        gap in "[ \t]{1,3}",
        token in "[A-Za-z0-9._~+/-]{1,64}={0,2}",
    ) {
        let value = format!("{scheme}{gap}{token}");
        prop_assert_eq!(bearer_value(&value), Ok(token.as_str()));
    }

    #[test]
    fn a_bearer_value_is_one_b64token_or_an_error(value in any::<String>()) {
        if let Ok(token) = bearer_value(&value) {
            let body = token.trim_end_matches('=');
            prop_assert!(!body.is_empty());
            prop_assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
            prop_assert!(value.trim_end().ends_with(token));
        }
    }
}

fn form_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers
}

proptest! {
    #[test]
    fn a_token_form_is_read_by_rfc_6749s_rules(
        params in prop::collection::vec(
            (prop::sample::select(vec!["grant_type", "scope", "resource", "client_id", "audience"]),
             ".{0,16}"),
            0..8,
        )
    ) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let parsed = parse_token_request(&form_headers(), body.as_bytes());
        let mut seen = BTreeSet::new();
        let repeated = params.iter().any(|(k, _)| *k != "resource" && !seen.insert(*k));
        match parsed {
            Ok(request) => {
                prop_assert!(!repeated, "a repeated parameter was accepted: {}", body);
                let value = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
                prop_assert_eq!(request.grant_type, value("grant_type"));
                prop_assert_eq!(request.scope, value("scope"));
                let resources: Vec<String> = params
                    .iter()
                    .filter(|(k, _)| *k == "resource")
                    .map(|(_, v)| v.clone())
                    .collect();
                prop_assert_eq!(request.resources, resources);
            }
            Err(e) => prop_assert_eq!(e.code, "invalid_request"),
        }
    }

    #[test]
    fn token_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_token_request(&form_headers(), &body);
    }
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "client_name",
                    "scope",
                    "token_endpoint_auth_method",
                    "jwks",
                    "jwks_uri",
                    "grant_types",
                    "redirect_uris",
                    "software_id",
                    "org_name",
                    "contacts",
                    "keys",
                    "kty",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn registration_bodies_never_panic(body in json_value()) {
        let _ = parse_registration(body.to_string().as_bytes());
    }

    #[test]
    fn registration_keeps_the_scopes_it_was_given(
        scopes in prop::collection::btree_set("[a-z][a-z.:]{0,12}", 1..6)
    ) {
        let body = json!({
            "client_name": "generated",
            "scope": scopes.iter().cloned().collect::<Vec<_>>().join(" "),
        });
        let spec = parse_registration(body.to_string().as_bytes());
        prop_assert!(spec.is_ok(), "{:?}", spec.err());
        let kept: BTreeSet<String> = spec.unwrap().scopes.into_iter().collect();
        prop_assert_eq!(kept, scopes);
    }
}

/// Pieces of client URLs chosen to collide: control characters the URL parser would drop,
/// internal hosts in their many spellings, case, ports and paths.
fn url_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "https://",
        "http://",
        "HTTPS://",
        "keys.example",
        "KEYS.Example",
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "[::1]",
        "[fe80::1]",
        "[::ffff:10.0.0.1]",
        "localhost",
        "a.localhost",
        "0.0.0.0",
        "100.64.0.1",
        ":443",
        ":8080",
        "/jwks",
        "/a/../b",
        "?x=1",
        "#frag",
        "\n",
        "\r",
        "\t",
        "\u{7f}",
        "%0a",
        "@",
        " ",
    ])
}

proptest! {
    /// Whatever a client registers as a URL: what is stored parses to itself, carries no
    /// control character, and (for a client's own URL) names no internal host.
    #[test]
    fn a_stored_client_url_is_normalised_printable_and_public(
        pieces in prop::collection::vec(url_piece(), 1..8),
    ) {
        let raw: String = pieces.concat();
        if let Ok(stored) = arbiter::oauth::clients::client_url(&raw, false) {
            prop_assert!(!stored.chars().any(char::is_control), "{stored:?}");
            prop_assert_eq!(url::Url::parse(&stored).unwrap().to_string(), stored.clone());
            let host = url::Url::parse(&stored).unwrap().host_str().unwrap_or("").to_owned();
            for internal in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254",
                             "[::1]", "[fe80::1]", "localhost", "0.0.0.0", "100.64.0.1"] {
                prop_assert!(host != internal && !host.ends_with(".localhost"), "{raw:?} -> {stored}");
            }
            prop_assert!(!raw.chars().any(char::is_control));
        }
    }

    /// Any output annotation: read or refused with a message, never a panic; a header it
    /// accepts is never one that carries identity or belongs to the proxy.
    #[test]
    fn output_annotations_never_admit_identity_headers(
        name in prop::sample::select(vec![
            "x_caller", "authorization", "Authorization", "cookie", "set_cookie", "forwarded",
            "x_forwarded_for", "X_Real_IP", "host", "content_length", "x_arbiter_decision",
            "x_api_key", "te", "x__y", "", "x y",
        ]),
        value in "[ -~]{0,24}",
    ) {
        let text = format!(
            "@header_{name}({value:?}) permit (principal, action, resource);"
        );
        let Ok(policy) = text.parse::<cedar_policy::Policy>() else { return Ok(()) };
        if let Ok(Some(outputs)) = arbiter::policy::outputs::PolicyOutputs::read(&policy) {
            for header in outputs.headers.keys() {
                prop_assert!(
                    !arbiter::policy::outputs::IDENTITY_HEADERS.contains(&header.as_str())
                        && header != "host" && header != "content-length"
                        && !header.starts_with("x-arbiter-"),
                    "{header} admitted"
                );
            }
        }
    }
}
