//! The workbench in a real browser: Debian's Chromium driven through WebDriver (selenium and
//! chromedriver, `support/console_browser.py`), signing in at an OpenID provider built on
//! authlib (`support/oidc_provider.py`). Screenshots of every screen are written to
//! `target/console-screenshots/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::process::{cvc5, tool, ServeProcess};
use crate::support::{bundled_policies, copy_dir};

/// The test's OpenID provider; stopped when dropped.
struct Provider {
    base: String,
    child: std::process::Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn support(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/support")
        .join(file)
}

/// The provider's configuration; `redirect_uri` is read at each request.
fn provider_config(dir: &std::path::Path, redirect_uri: &str) {
    std::fs::write(
        dir.join("op.json"),
        serde_json::json!({
            "client_id": "arbiter-console",
            "redirect_uri": redirect_uri,
            "users": {
                "ada": { "department": "Audit", "email": "ada@example.com" },
                "sam": { "department": "Security", "email": "sam@example.com" },
            },
        })
        .to_string(),
    )
    .unwrap();
}

/// Starts the provider, then Arbiter on a free port named in the provider's redirect URI
/// (picked last, so nothing else takes it meanwhile), with `config(provider base)`.
fn start_both(dir: &std::path::Path, config: impl Fn(&str) -> String) -> (Provider, ServeProcess) {
    provider_config(dir, "");
    let provider = start_provider(dir);
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    provider_config(dir, &format!("http://{http}/console/callback"));
    let server = ServeProcess::start_at(dir, &config(&provider.base), &http);
    (provider, server)
}

fn start_provider(dir: &std::path::Path) -> Provider {
    let config = dir.join("op.json");
    let mut child = Command::new("python3")
        .arg(support("oidc_provider.py"))
        .arg(&config)
        // The provider is on plain loopback HTTP, which authlib refuses unless told.
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs the OpenID provider (pip install authlib flask)");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port = first
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("the provider did not start: {first:?}"))
        .trim()
        .to_owned();
    Provider {
        base: format!("http://127.0.0.1:{port}"),
        child,
    }
}

/// A free loopback port for Arbiter's HTTP listener (the redirect URI must be known before
/// the provider starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn auditors_and_authors_use_the_workbench_in_a_browser() {
    let chromium = tool(
        "CHROMIUM",
        "chromium",
        "apt-get install chromium chromium-driver",
    );
    let chromedriver = tool(
        "CHROMEDRIVER",
        "chromedriver",
        "apt-get install chromium chromium-driver",
    );
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let solver = cvc5();
    let (provider, server) = start_both(dir.path(), |op| {
        format!(
            r#"
policies = "policies"
[console]
issuer = "{op}"
client_id = "arbiter-console"
[admin]
solver = "{solver}"
[[issuers]]
issuer = "{op}"
audiences = ["arbiter-console"]
jwks_url = "{op}/jwks"
"#,
            solver = solver.display(),
        )
    });
    // Traffic for the Decisions screen: a few requests on /item/{id}.
    for scope in ["read", "", "read"] {
        let token = crate::support::process::dev_token(dir.path(), "web", scope);
        let status = reqwest::Client::new()
            .post(format!("{}/access/v1/evaluation", server.http))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "action": { "name": "GET" },
                "resource": { "type": "route", "id": "/item/{id}" },
            }))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }
    let candidate = dir.path().join("candidate-items.cedar");
    let live = std::fs::read_to_string(bundled_policies().join("items.cedar")).unwrap();
    let narrowed = live
        .replace(
            r#"@scopes("read && (fido || otp)")"#,
            r#"@scopes("read && fido")"#,
        )
        .replace(
            r#"context.scopes.containsAny(["fido", "otp"])"#,
            r#"context.scopes.contains("fido")"#,
        );
    assert_ne!(live, narrowed, "the candidate changes items-create");
    std::fs::write(&candidate, narrowed).unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&out).unwrap();
    let run = Command::new("python3")
        .arg(support("console_browser.py"))
        .env("ARBITER", &server.http)
        .env("PROVIDER", &provider.base)
        .env("OUT", &out)
        .env("CHROMIUM", &chromium)
        .env("CHROMEDRIVER", &chromedriver)
        .env("CANDIDATE_ITEMS", &candidate)
        .env("SE_AVOID_STATS", "true")
        .output()
        .expect("python3 runs selenium (pip install selenium)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "the browser run failed:\n{said}");
    for screen in [
        "01-overview",
        "02-policies-query",
        "03-policy",
        "04-routes",
        "05-who-can",
        "06-try-refused",
        "07-compare",
        "08-decisions",
        "09-decision",
        "10-try",
    ] {
        let png = out.join(format!("{screen}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{screen} is a PNG");
    }
    // Every screen was a decision on the signed-in person, in the decision log.
    let lines = server.lines();
    let refused = lines.iter().any(|l| {
        l["message"] == "decision"
            && l["action"] == "TryRequest"
            && l["principal"] == "User::\"ada\""
            && l["decision"] == "deny"
    });
    assert!(refused, "ada's refused Try is a logged decision");
    let allowed = lines.iter().any(|l| {
        l["message"] == "decision"
            && l["action"] == "TryRequest"
            && l["principal"] == "User::\"sam\""
            && l["decision"] == "allow"
    });
    assert!(allowed, "sam's Try is a logged decision");
}

/// Without a session every screen sends the browser to sign in; the sign-in goes to the
/// provider with PKCE S256, a state and a nonce, and a state cookie; a form without the
/// session's CSRF token is refused; a callback whose state this browser did not start is
/// refused. No browser: the HTTP exchanges themselves.
#[tokio::test]
async fn sign_in_is_pkce_bound_to_the_browser_and_forms_need_the_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let solver = cvc5().display().to_string();
    let (provider, server) = start_both(dir.path(), |op| {
        format!(
            "policies = \"policies\"\n[admin]\nsolver = \"{solver}\"\n[console]\nissuer = \"{op}\"\n[[issuers]]\nissuer = \"{op}\"\naudiences = [\"arbiter-console\"]\njwks_url = \"{op}/jwks\"\n"
        )
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let to = |r: &reqwest::Response| {
        r.headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let r = client
        .get(format!("{}/console/policies", server.http))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(to(&r), "/console/login?next=%2Fconsole%2Fpolicies");
    let r = client
        .get(format!(
            "{}/console/login?next=/console/policies",
            server.http
        ))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(&to(&r)).unwrap();
    assert!(location
        .as_str()
        .starts_with(&format!("{}/authorize", provider.base)));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "a SHA-256 challenge");
    assert_eq!(q["client_id"], "arbiter-console");
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    // A callback with a state this browser did not start (no cookie): refused, no session.
    let r = client
        .get(format!(
            "{}/console/callback?code=x&state={}",
            server.http, q["state"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().get("set-cookie").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("not started in this browser"), "{body}");
    // A form without a session is sent to sign in; one with a session but a forged token is
    // refused (a session is started here through the provider, as a browser would).
    let r = client
        .post(format!("{}/console/proofs/analyze", server.http))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    let session = sign_in_without_browser(&client, &server.http, "ada").await;
    let r = client
        .post(format!("{}/console/proofs/analyze", server.http))
        .header("cookie", &session)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("does not belong to your session"));
    // The same for the candidate upload, whose token is inside the multipart body; without
    // a session it is not read at all.
    let body = "--b\r\ncontent-disposition: form-data; name=\"csrf\"\r\n\r\nforged\r\n--b\r\ncontent-disposition: form-data; name=\"file_name\"\r\n\r\nitems.cedar\r\n--b\r\ncontent-disposition: form-data; name=\"file_text\"\r\n\r\npermit (principal, action, resource);\r\n--b--\r\n";
    let upload = |cookie: Option<&str>| {
        let mut r = client
            .post(format!("{}/console/proofs/compare", server.http))
            .header("content-type", "multipart/form-data; boundary=b")
            .body(body);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    let r = upload(None).await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let r = upload(Some(&session)).await.unwrap();
    assert_eq!(r.status(), 403);
    // A real upload: the bundled set packed as a `.cjar` by `arbiter bundle build`, sent with
    // the session's token (read from the page, as a browser's form has it), compares as
    // equivalent on every route.
    let page = client
        .get(format!("{}/console/proofs", server.http))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let cjar = dir.path().join("candidate.cjar");
    crate::support::process::assert_success(
        &crate::support::process::arbiter_bin()
            .args(["bundle", "build", "policies", "-o"])
            .arg(&cjar)
            .current_dir(dir.path())
            .output()
            .unwrap(),
    );
    let mut body = format!(
        "--b\r\ncontent-disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--b\r\ncontent-disposition: form-data; name=\"bundle\"; filename=\"candidate.cjar\"\r\ncontent-type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::fs::read(&cjar).unwrap());
    body.extend(b"\r\n--b--\r\n");
    let r = client
        .post(format!("{}/console/proofs/compare", server.http))
        .header("cookie", &session)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"comparison\""), "{page}");
    assert!(
        page.contains("equivalent") && !page.contains("narrower"),
        "{page}"
    );
    // With the session, a screen is a decision on the person: ada may view policies.
    let r = client
        .get(format!("{}/console/policies", server.http))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
}

/// Signs `user` in by following the redirects by hand (the provider's form posted as a
/// browser would): the session cookie (`name=value`).
async fn sign_in_without_browser(client: &reqwest::Client, base: &str, user: &str) -> String {
    let r = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let pair = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with(name))
            .unwrap()
    };
    let login_cookie = pair(&r, "arbiter-login=");
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    let r = client
        .post(&authorize)
        .form(&[("username", user)])
        .send()
        .await
        .unwrap();
    let callback = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.contains("code="), "{callback}");
    let r = client
        .get(&callback)
        .header("cookie", &login_cookie)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    pair(&r, "arbiter-console=")
}
