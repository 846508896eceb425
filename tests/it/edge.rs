//! A clean edge (issue 33): what a gateway forwards and who AuthZEN admits, tried through
//! the real front doors with what a hostile client sends.

use arbiter::gateway::GatewayConfig;
use serde_json::{json, Map, Value};

use crate::support::upstream::{gateway, upstream};
use crate::support::*;

/// With `--strip-authorization` and `--allow-query-token`, the token in the query string is
/// used for the decision and never reaches the upstream; other parameters do.
#[tokio::test]
async fn a_stripped_credential_leaves_no_query_token_upstream() {
    let server = TestServer::start().await;
    let (up, _up_stop) = upstream().await;
    let mut config = GatewayConfig::new(format!("http://{up}"), format!("http://{}", server.addr));
    config.pass_authorization = false;
    config.allow_query_token = true;
    let (gw, _stop) = gateway(config).await;
    let read = server.token("demo", None, "read");
    let resp = reqwest::get(format!("{gw}/item/7?x=1&access_token={read}&y=2"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["uri"], "/item/7?x=1&y=2");
    assert!(seen["headers"].get("authorization").is_none());
}

/// A token bound to a certificate (`cnf.x5t#S256`) carrying the PEP scope is refused by
/// AuthZEN without that certificate, as `Authorize` refuses it.
#[tokio::test]
async fn a_bound_pep_token_needs_its_certificate() {
    let server = TestServer::start_with(|c| {
        c.authzen.pep_authentication = arbiter::config::PepAuthentication::Token;
    })
    .await;
    let mut claims = Map::new();
    claims.insert(
        "cnf".into(),
        json!({"x5t#S256": "bm90LXRoaXMtY2VydGlmaWNhdGU"}),
    );
    let bound = server.token_with("pep", None, "arbiter.authzen read", claims);
    let question = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "GET"},
        "resource": {"type": "route", "id": "/health"}
    });
    for path in ["evaluation", "search/action"] {
        let resp = reqwest::Client::new()
            .post(format!("http://{}/access/v1/{path}", server.http_addr))
            .bearer_auth(&bound)
            .json(&question)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("bound")),
            "{path}: {body}"
        );
    }
    // The same scope without a binding is admitted.
    let unbound = server.token("pep", None, "arbiter.authzen read");
    let resp = reqwest::Client::new()
        .post(format!("http://{}/access/v1/evaluation", server.http_addr))
        .bearer_auth(&unbound)
        .json(&question)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A client's own copy of a header some policy can set never reaches the upstream, on any
/// route: `x-caller` (set by `item-read`) sent on `POST /items` and on the anonymous
/// `/health` is dropped.
#[tokio::test]
async fn a_clients_copy_of_an_output_header_is_dropped_on_every_route() {
    let server = TestServer::start().await;
    let (up, _up_stop) = upstream().await;
    let config = GatewayConfig::new(format!("http://{up}"), format!("http://{}", server.addr));
    let (gw, _stop) = gateway(config).await;
    let create = server.token("demo", None, "read fido");
    let http = reqwest::Client::new();
    for (method, path, token) in [("POST", "/items", Some(&create)), ("GET", "/health", None)] {
        let mut request = http
            .request(method.parse().unwrap(), format!("{gw}{path}"))
            .header("x-caller", "User::\"admin\"")
            .header("x-item-id", "forged");
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{method} {path}");
        let seen: Value = resp.json().await.unwrap();
        assert!(
            seen["headers"].get("x-caller").is_none() && seen["headers"].get("x-item-id").is_none(),
            "{method} {path}: {seen}"
        );
    }
}

/// Outputs that would hand the upstream a credential, a cookie or a client address are
/// refused at `file:line` (the last good set stays), unless the operator allows one.
#[tokio::test]
async fn identity_headers_cannot_be_policy_outputs() {
    let mut server = TestServer::start().await;
    let text = "@id(\"impersonate\")\n@header_authorization(\"Bearer {claims.sub}\")\npermit (principal, action == Action::\"GET\", resource == Endpoint::\"/health\");\n";
    std::fs::write(server.policies().join("impersonate.cedar"), text).unwrap();
    let reloaded = server.reload().await;
    let error = reloaded.errors.first().expect("refused");
    assert_eq!(
        (error.file.as_str(), error.line),
        ("impersonate.cedar", 1),
        "{error:?}"
    );
    assert!(error.message.contains("credentials"), "{error:?}");
    let token = server.token("demo", None, "read");
    let answer = server.authorize(&token, "GET", "/item/7", json!({})).await;
    assert!(allowed(&answer));
}

/// Calls cancelled while their token's introspection is in flight leave nothing behind: 300
/// distinct opaque tokens, each asked with a 30 ms deadline against an endpoint that never
/// answers, and then none in flight.
#[test]
fn cancelled_introspections_leave_no_flight_behind() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // An introspection endpoint that accepts and never answers.
    let silent = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = silent.local_addr().unwrap().port();
    runtime.spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(
        dir.path(),
        &format!(
            "[[issuers]]\nissuer = \"https://silent.example\"\naudiences = [\"api\"]\n[issuers.introspection]\nendpoint = \"http://127.0.0.1:{port}/introspect\"\nclient_id = \"arbiter\"\nclient_secret = \"secret\"\ndefault = true\n"
        ),
    );
    runtime.block_on(async {
        let client =
            arbiter::grpc::proto::authorizer_client::AuthorizerClient::connect(server.addr.clone())
                .await
                .unwrap();
        let calls: Vec<_> = (0..300)
            .map(|i| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    let mut request = tonic::Request::new(request(
                        &format!("opaque-token-{i}"),
                        "GET",
                        "/item/7",
                        json!({}),
                    ));
                    request.set_timeout(std::time::Duration::from_millis(30));
                    let _ = client.authorize(request).await;
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let metrics = reqwest::get(format!("{}/metrics", server.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let in_flight = metrics
            .lines()
            .find_map(|l| l.strip_prefix("arbiter_introspections_in_flight "))
            .expect("the gauge");
        assert_eq!(in_flight.trim(), "0", "{metrics}");
    });
}

/// Registration has a rate: a burst past `registrations_per_minute` is `429` with
/// `Retry-After`, and what was admitted registered.
#[tokio::test]
async fn registrations_past_the_rate_are_refused() {
    let server = TestServer::start_with(|c| {
        c.oauth.open_registration = true;
        c.oauth.registrations_per_minute = 20;
    })
    .await;
    let http = reqwest::Client::new();
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..60 {
        let resp = http
            .post(format!("http://{}/register", server.http_addr))
            .json(&json!({"client_name": format!("burst-{i}"), "scope": "read"}))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            201 => admitted += 1,
            429 => {
                assert!(resp.headers().get("retry-after").is_some());
                refused += 1;
            }
            other => panic!("registration answered {other}"),
        }
    }
    assert!((20..=22).contains(&admitted), "{admitted} admitted");
    assert_eq!(admitted + refused, 60);
}

/// A disabled client is never a result of a subject search.
#[tokio::test]
async fn a_disabled_client_is_no_search_result() {
    let server = TestServer::start().await;
    let store = server.store().await;
    let mut ids = Vec::new();
    for name in ["kept", "disabled"] {
        let spec = arbiter::oauth::clients::ClientSpec {
            name: name.into(),
            scopes: vec!["read".into()],
            auth_method: "client_secret_basic".into(),
            ..Default::default()
        };
        let created = arbiter::oauth::clients::create(&store, &spec)
            .await
            .unwrap();
        ids.push(created.record.client_id);
    }
    use arbiter::store::Store;
    store.set_client_disabled(&ids[1], true).await.unwrap();
    let (status, answer) = post(
        &server,
        "/access/v1/search/subject",
        &json!({"subject": {"type": "client"}, "action": {"name": "GET"},
                "resource": {"type": "route", "id": "/health"}, "page": {"limit": 1000}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let found: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(found.contains(&ids[0].as_str()), "{answer}");
    assert!(!found.contains(&ids[1].as_str()), "{answer}");
}

/// A client's URLs at registration: a line feed (which the URL parser would drop before the
/// check while the raw text was stored, and later printed into the log) is refused; an
/// address inside Arbiter's network is refused and never asked; what is stored is the URL
/// as checked, normalised.
#[tokio::test]
async fn registered_urls_are_normalised_public_and_printable() {
    let server = TestServer::start_with(|c| c.oauth.open_registration = true).await;
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probe_port = probe.local_addr().unwrap().port();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = probe.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let register = |metadata: Value| {
        let url = format!("http://{}/register", server.http_addr);
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&metadata)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let forged = "https://keys.example/jwks\n2026-12-07T00:00:00Z INFO arbiter::decision: decision=\"allow\"";
    for uri in [
        forged.to_owned(),
        format!("http://127.0.0.1:{probe_port}/internal/admin?probe=1"),
        "https://10.0.0.1/jwks".to_owned(),
        "https://[::1]/jwks".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let (status, body) = register(json!({
            "client_name": "hostile", "scope": "read", "jwks_uri": uri,
            "token_endpoint_auth_method": "private_key_jwt"
        }))
        .await;
        assert_eq!(status, 400, "{uri:?}: {body}");
        assert!(
            !body.to_string().contains('\n'),
            "the error never echoes a raw line feed"
        );
    }
    let (status, body) = register(json!({
        "client_name": "shouting", "scope": "read",
        "redirect_uris": ["https://APP.Example:443/cb"]
    }))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["redirect_uris"], json!(["https://app.example/cb"]));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// `arbiter serve` under the usual umask (022) creates its data directory 0700 and the
/// store's files (database, `-wal`, `-shm`) 0600.
#[cfg(unix)]
#[test]
fn the_data_directory_and_store_files_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(dir.path(), "");
    let data = dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in ["arbiter.db", "arbiter.db-wal", "arbiter.db-shm"] {
        let path = data.join(file);
        if file == "arbiter.db" || path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    assert!(
        data.join("arbiter.db-wal").exists(),
        "WAL files exist while serving"
    );
    drop(server);
}

/// Signing keys at rest: a store opened with a key-encryption key seals the keys it holds
/// (an existing store migrates), a copy of the database without the KEK yields no key, and
/// a KEK rotation (the old one as `previous`) re-seals them; `keys list` says which are
/// protected.
#[test]
fn a_copy_of_the_store_signs_nothing_without_the_key_encryption_key() {
    use base64::Engine as _;
    let kek = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    let (first, second) = (kek(7), kek(9));
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let keys = |env: &[(&str, &str)]| {
        arbiter_bin()
            .args(["keys", "list", "--json"])
            .current_dir(dir.path())
            .env_remove("ARBITER_KEY_ENCRYPTION_KEY")
            .env_remove("ARBITER_PREVIOUS_KEY_ENCRYPTION_KEY")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let protected = |out: &std::process::Output| -> Vec<bool> {
        assert_success(out);
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["protected"] == true)
            .collect()
    };
    // A store made without a KEK: its keys are in the clear, and `keys list` says so.
    drop(ServeProcess::start(dir.path(), ""));
    let plain = protected(&keys(&[]));
    assert!(!plain.is_empty() && plain.iter().all(|p| !p), "{plain:?}");
    // Opened with a KEK, it migrates.
    drop(ServeProcess::start_with_env(
        dir.path(),
        "",
        "127.0.0.1:0",
        &[("ARBITER_KEY_ENCRYPTION_KEY", &first)],
    ));
    let sealed = protected(&keys(&[("ARBITER_KEY_ENCRYPTION_KEY", &first)]));
    assert!(sealed.iter().all(|p| *p), "{sealed:?}");
    // The database alone (a copy, no KEK) opens no key.
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(copy.path().join("data")).unwrap();
    std::fs::copy(
        dir.path().join("data/arbiter.db"),
        copy.path().join("data/arbiter.db"),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use arbiter::store::Store;
        let store = store_in(copy.path()).await;
        let refused = store
            .signing_keys(arbiter::store::KEY_PURPOSE_ACCESS_TOKEN)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("encrypted"), "{refused}");
    });
    let without = keys(&[]);
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("key-encryption key"));
    // Rotating the KEK: the old one as previous re-seals every key under the new one.
    let rotated = keys(&[
        ("ARBITER_KEY_ENCRYPTION_KEY", &second),
        ("ARBITER_PREVIOUS_KEY_ENCRYPTION_KEY", &first),
    ]);
    assert!(protected(&rotated).iter().all(|p| *p));
    assert!(protected(&keys(&[("ARBITER_KEY_ENCRYPTION_KEY", &second)]))
        .iter()
        .all(|p| *p));
    assert!(!keys(&[("ARBITER_KEY_ENCRYPTION_KEY", &first)])
        .status
        .success());
}

/// `/metrics` on a listener others can reach is the control plane's: an anonymous scrape
/// is `401`, a token without the read scope `403`, an administrator's reads it.
#[test]
fn metrics_off_loopback_need_an_administrator() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start_at(
        dir.path(),
        "allow_plaintext = true\n[dev_issuer]\nenabled = true\n",
        "0.0.0.0:0",
    );
    let port = server.http.rsplit(':').next().unwrap().to_owned();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let reader = dev_token(dir.path(), "prometheus", "arbiter.admin.read");
    let other = dev_token(dir.path(), "demo", "read");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let status = |token: Option<String>| {
            let request = http.get(&url);
            let request = match token {
                Some(t) => request.bearer_auth(t),
                None => request,
            };
            async move { request.send().await.unwrap() }
        };
        assert_eq!(status(None).await.status(), 401);
        assert_eq!(status(Some(other.clone())).await.status(), 403);
        let scraped = status(Some(reader.clone())).await;
        assert_eq!(scraped.status(), 200);
        let text = scraped.text().await.unwrap();
        assert!(text.contains("# TYPE arbiter_"), "{text}");
    });
}
