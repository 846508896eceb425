use super::*;

#[test]
fn parses_issuers_and_rejects_unknown_keys() {
    let c = Config::from_toml(
        r#"
        grpc_addr = "0.0.0.0:9000"
        [[issuers]]
        issuer = "https://idp.example.com"
        audiences = ["api"]
        jwks_url = "https://idp.example.com/jwks"
        "#,
    )
    .unwrap();
    assert_eq!(c.grpc_addr.port(), 9000);
    assert_eq!(c.issuers.len(), 1);
    let refused = c.validate().unwrap_err().to_string();
    assert!(refused.contains("allow_plaintext"), "{refused}");
    let mut allowed = c.clone();
    allowed.allow_plaintext = true;
    allowed.validate().unwrap();
    assert!(Config::from_toml("grpc_adr = \"x\"")
        .unwrap_err()
        .contains("grpc_adr"));
}

#[test]
fn issuer_needs_exactly_one_key_source() {
    let c = Config::from_toml(
        r#"
        [[issuers]]
        issuer = "a"
        audiences = ["api"]
        "#,
    )
    .unwrap();
    assert!(c.validate().is_err());
}

#[test]
fn debug_redacts_hmac_secret() {
    let c = Config::from_toml(
        r#"
        [[issuers]]
        issuer = "a"
        audiences = ["api"]
        hmac_secret = "0123456789abcdef0123456789abcdef-secret"
        "#,
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("secret\""));
    assert!(!format!("{c:?}").contains("0123456789abcdef"));
}

#[test]
fn the_development_issuer_is_on_only_on_loopback_unless_configured() {
    let mut c = Config::default();
    assert!(c.dev_issuer_enabled(), "loopback listeners: on");
    c.http_addr = "0.0.0.0:8080".parse().unwrap();
    assert!(!c.dev_issuer_enabled(), "reachable from elsewhere: off");
    c.dev_issuer.enabled = Some(true);
    assert!(c.dev_issuer_enabled(), "asked for: on");
    let c = Config::from_toml("[dev_issuer]\nenabled = false\n").unwrap();
    assert!(!c.dev_issuer_enabled());
}

#[test]
fn store_url_and_client_certificates_per_listener() {
    let c = Config::from_toml(
        r#"
        [store]
        url = "postgres://arbiter:hunter2@db/arbiter"
        [tls]
        cert_file = "s.pem"
        key_file = "s.key"
        client_ca_file = "ca.pem"
        http_client_certs = "optional"
        "#,
    )
    .unwrap();
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "no password in Debug"
    );
    assert_eq!(c.key_publish_ahead_seconds(), 10, "replicas publish ahead");
    assert_eq!(Config::default().key_publish_ahead_seconds(), 0);
    let tls = c.tls.as_ref().unwrap();

    assert_eq!(tls.client_certs(Listener::Grpc), ClientCerts::Required);
    assert_eq!(tls.client_certs(Listener::Http), ClientCerts::Optional);
    c.validate().unwrap();

    let mut grpc_optional = c.clone();
    grpc_optional.tls.as_mut().unwrap().grpc_client_certs = Some(ClientCerts::Optional);
    assert!(grpc_optional.validate().is_err());
    let mut no_ca = c.clone();
    no_ca.tls.as_mut().unwrap().client_ca_file = None;
    no_ca.validate().unwrap();
    no_ca.tls.as_mut().unwrap().grpc_client_certs = Some(ClientCerts::Required);
    let refused = no_ca.validate().unwrap_err().to_string();
    assert!(refused.contains("client_ca_file"), "{refused}");
}

/// An `[[issuers]]` entry with an introspection section made of `lines`.
fn introspecting(issuer: &str, lines: &str) -> String {
    format!(
        "[[issuers]]\nissuer = {issuer:?}\naudiences = [\"api\"]\n[issuers.introspection]\n{lines}\n"
    )
}

#[test]
fn introspection_needs_a_safe_endpoint_and_the_credentials_of_its_method() {
    let check = |toml: &str| {
        Config::from_toml(toml)
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate().map_err(|e| e.to_string()))
    };
    let secret = "client_id = \"arbiter\"\nclient_secret = \"s\"";
    // Keys are optional with introspection: every token of the issuer is introspected.
    check(&introspecting(
        "a",
        &format!("endpoint = \"https://as.example/introspect\"\n{secret}"),
    ))
    .unwrap();
    check(&introspecting(
        "a",
        &format!("endpoint = \"http://127.0.0.1:9/introspect\"\n{secret}"),
    ))
    .unwrap();
    for (lines, refused) in [
        (
            format!("endpoint = \"http://as.example/introspect\"\n{secret}"),
            "must be https",
        ),
        (
            "endpoint = \"https://as.example/i\"\nclient_id = \"arbiter\"".to_owned(),
            "needs exactly one of `client_secret`",
        ),
        (
            "endpoint = \"https://as.example/i\"\nclient_id = \"arbiter\"\nauth_method = \"private_key_jwt\"".to_owned(),
            "needs `private_key_file`",
        ),
        (
            format!("endpoint = \"https://as.example/i\"\n{secret}\nauth_method = \"tls_client_auth\"\nclient_cert_file = \"c\"\nclient_key_file = \"k\""),
            "does not use the other methods'",
        ),
        (
            format!("endpoint = \"https://as.example/i\"\n{secret}\ntimeout_ms = 0"),
            "timeout_ms",
        ),
        (
            format!("endpoint = \"https://as.example/i\"\n{secret}\njwt_response = true"),
            "verified with the issuer's keys",
        ),
        (
            format!("endpoint = \"https://as.example/i\"\n{secret}\nsurprise = 1"),
            "surprise",
        ),
    ] {
        let err = check(&introspecting("a", &lines)).unwrap_err();
        assert!(err.contains(refused), "{lines}: {err}");
    }
}

#[test]
fn which_issuer_an_opaque_token_is_for_is_never_ambiguous() {
    let endpoint =
        "endpoint = \"https://as.example/i\"\nclient_id = \"arbiter\"\nclient_secret = \"s\"";
    let two_defaults = format!(
        "{}{}",
        introspecting("a", &format!("{endpoint}\ndefault = true")),
        introspecting("b", &format!("{endpoint}\ndefault = true"))
    );
    let err = Config::from_toml(&two_defaults)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("only one issuer can be the `default`"),
        "{err}"
    );
    let shared_prefix = format!(
        "{}{}",
        introspecting("a", &format!("{endpoint}\ntoken_prefixes = [\"at_\"]")),
        introspecting("b", &format!("{endpoint}\ntoken_prefixes = [\"at_\"]"))
    );
    let err = Config::from_toml(&shared_prefix)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("token prefix `at_`"), "{err}");
    let c = Config::from_toml(&introspecting("a", endpoint)).unwrap();
    assert!(!format!("{c:?}").contains("client_secret: Some(\"s\")"));
}

#[test]
fn the_console_provider_must_be_a_trusted_issuer_naming_the_console() {
    let mut config: Config =
        toml::from_str("[console]\nissuer = \"https://op.example\"\nclient_id = \"console\"\n")
            .unwrap();
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("needs an [[issuers]] entry"), "{e}");
    config = toml::from_str(
        "[console]\nissuer = \"https://op.example\"\nclient_id = \"console\"\n[[issuers]]\nissuer = \"https://op.example\"\naudiences = [\"api\"]\njwks_url = \"https://op.example/jwks\"\n",
    )
    .unwrap();
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("`console` in its audiences"), "{e}");
    config.issuers[0].audiences.push("console".into());
    config.validate().unwrap();
    assert_eq!(
        config.console_sign_in(),
        "sign-in at https://op.example as client console"
    );
}
