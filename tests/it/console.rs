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

fn start_provider(dir: &std::path::Path, redirect_uri: &str) -> Provider {
    let config = dir.join("op.json");
    std::fs::write(
        &config,
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
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let redirect = format!("http://{http}/console/callback");
    let provider = start_provider(dir.path(), &redirect);
    let config = format!(
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
        op = provider.base,
        solver = cvc5().display(),
    );
    let server = ServeProcess::start_at(dir.path(), &config, &http);
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
