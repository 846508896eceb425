//! The README is tested: every shell block of README.md runs, as written, against the built
//! binary and a server this test starts (`cargo run --release -q -- …` and `arbiter …` both
//! run the binary under test; the default addresses are the test server's), and what it
//! prints must match its snapshot in `tests/fixtures/readme/` with the varying parts (tokens,
//! ids, versions, times, ports) masked. A block that cannot run on a fresh checkout says why
//! in an HTML comment right above it: `<!-- readme-test: skip: … -->`.
//!
//! After an intended change, `ARBITER_README_SNAPSHOTS=overwrite cargo test readme` rewrites
//! the snapshots; review them like code.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// One shell block of the README.
struct Block {
    /// `section-N`: the heading it is under and its index there.
    name: String,
    /// Its logical lines (continuations joined).
    lines: Vec<String>,
    /// Why it is not run, if it says so.
    skip: Option<String>,
}

fn slug(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut heading = String::from("top");
    let mut index = 0;
    let mut previous = "";
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.starts_with('#') {
            heading = slug(line);
            index = 0;
        }
        if line.trim() == "```sh" {
            index += 1;
            let skip = previous
                .trim()
                .strip_prefix("<!-- readme-test: skip:")
                .map(|s| s.trim_end_matches("-->").trim().to_owned());
            let mut logical = Vec::new();
            let mut pending = String::new();
            for l in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                if let Some(head) = l.strip_suffix('\\') {
                    pending.push_str(head);
                    continue;
                }
                pending.push_str(l);
                logical.push(std::mem::take(&mut pending));
            }
            out.push(Block {
                name: format!("{heading}-{index}"),
                lines: logical,
                skip,
            });
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    out
}

/// A line without its trailing `# comment` (two spaces or more before the `#`).
fn code_of(line: &str) -> &str {
    let mut end = line.len();
    let bytes = line.as_bytes();
    for i in 2..bytes.len() {
        if bytes[i] == b'#' && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
            end = i;
            break;
        }
    }
    line[..end].trim_end()
}

/// The varying parts of an output, masked: runs of `[A-Za-z0-9._-]` that are ids, tokens,
/// keys (20 characters or more with a digit), policy versions (16 hex digits) or times (9 to
/// 13 digits), and loopback ports.
fn mask(text: &str) -> String {
    let is_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_token(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_token(chars[i]) {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let digits = run.chars().all(|c| c.is_ascii_digit());
        let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
        if rest == " ms" && run.chars().all(|c| c.is_ascii_digit() || c == '.') {
            out.push_str("<ms>");
        } else if out.ends_with("127.0.0.1:") && digits {
            out.push_str("<port>");
        } else if run.len() >= 20 && !dotted_name(&run) && looks_random(&run) {
            out.push_str("<id>");
        } else if run.len() == 16 && run.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str("<version>");
        } else if digits && (9..=13).contains(&run.len()) {
            out.push_str("<time>");
        } else {
            out.push_str(&run);
        }
    }
    out
}

/// An id, token or key: digits among letters, or (base64 of a key, which may happen to have
/// no digit) both cases over 32 characters or more.
fn looks_random(run: &str) -> bool {
    let has = |f: fn(&char) -> bool| run.chars().any(|c| f(&c));
    has(char::is_ascii_digit)
        || (run.len() >= 32 && has(char::is_ascii_uppercase) && has(char::is_ascii_lowercase))
}

/// `arbiter.v1.Authorizer`, `grpc.health.v1.Health`: a dotted name, not an id.
fn dotted_name(run: &str) -> bool {
    run.contains('.')
        && run.split('.').all(|part| {
            let letters = part.trim_end_matches(|c: char| c.is_ascii_digit());
            !letters.is_empty()
                && part.len() <= 16
                && letters.chars().all(|c| c.is_ascii_alphabetic())
        })
}

#[test]
fn masking_keeps_what_matters() {
    assert_eq!(
        mask("allow (item-read) in 0.84 ms"),
        "allow (item-read) in <ms> ms"
    );
    assert_eq!(
        mask("arbiter.v1.Authorizer/Authorize"),
        "arbiter.v1.Authorizer/Authorize"
    );
    assert_eq!(
        mask("\"decision_id\": \"019ad1e2-7b3c-7def-8a90-1234567890ab\","),
        "\"decision_id\": \"<id>\","
    );
    assert_eq!(
        mask("{\"policy_version\":\"5bb513d16282a163\",\"exp\":1764500000}"),
        "{\"policy_version\":\"<version>\",\"exp\":<time>}"
    );
    assert_eq!(
        mask("\"reason\": \"REASON_INSUFFICIENT_SCOPE\", 60"),
        "\"reason\": \"REASON_INSUFFICIENT_SCOPE\", 60"
    );
    assert_eq!(
        mask("at http://127.0.0.1:45123/token"),
        "at http://127.0.0.1:<port>/token"
    );
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/readme")
}

/// Runs the README's blocks in one shell, in order, as a reader would (a variable set in one
/// block is there in the next); the differences from their snapshots, described.
fn run_readme(
    readme: &str,
    server: &ServeProcess,
    dir: &Path,
    client: (&str, &str),
) -> Vec<String> {
    let grpc = server.addr.trim_start_matches("http://");
    let http = server.http.trim_start_matches("http://");
    let overwrite = std::env::var("ARBITER_README_SNAPSHOTS").is_ok_and(|v| v == "overwrite");
    // The README's own fixed ports (the gateway example) get free ones for this run.
    let spare: Vec<(u16, u16)> = [8000, 9000]
        .into_iter()
        .map(|fixed| {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            (fixed, probe.local_addr().unwrap().port())
        })
        .collect();
    let mut script = String::from(
        "exec 2>&1\n\
         cargo() { while [ \"$#\" -gt 0 ] && [ \"$1\" != \"--\" ]; do shift; done; shift; \"$ARBITER_BIN\" \"$@\"; }\n\
         arbiter() { \"$ARBITER_BIN\" \"$@\"; }\n",
    );
    let mut names = Vec::new();
    for block in blocks(readme) {
        if block.skip.is_some() {
            continue;
        }
        script.push_str(&format!(
            "echo {}\n",
            shell_quote(&format!("=== {}", block.name))
        ));
        names.push(block.name.clone());
        for line in &block.lines {
            let code = code_of(line);
            if code.trim().is_empty() || code.trim_start().starts_with('#') {
                continue;
            }
            let mut run = code
                .replace("127.0.0.1:50051", grpc)
                .replace("127.0.0.1:8080", http)
                .replace("./target/release/arbiter", "\"$ARBITER_BIN\"");
            for (fixed, free) in &spare {
                run = run.replace(&format!("127.0.0.1:{fixed}"), &format!("127.0.0.1:{free}"));
            }
            script.push_str(&format!(
                "echo {}\n{run}\nrc=$?; echo; echo \"[exit $rc]\"\n",
                shell_quote(&format!("$ {code}"))
            ));
        }
    }
    assert!(names.len() >= 4, "only {} README blocks run", names.len());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("ARBITER_BIN", env!("CARGO_BIN_EXE_arbiter"))
        // What a reader at a terminal sees.
        .env("ARBITER_OUTPUT", "human")
        .env("ARBITER_ADDR", &server.addr)
        .env("ARBITER_URL", &server.http)
        .env("CLIENT_ID", client.0)
        .env("CLIENT_SECRET", client.1)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut failures = Vec::new();
    let mut sections = text.split("=== ").skip(1);
    for name in names {
        let section = sections.next().unwrap_or_default();
        let got = mask(
            section
                .strip_prefix(name.as_str())
                .unwrap_or(section)
                .trim_start_matches('\n'),
        );
        let file = snapshot_dir().join(format!("{name}.txt"));
        if overwrite {
            std::fs::create_dir_all(snapshot_dir()).unwrap();
            std::fs::write(&file, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "README block `{name}` prints otherwise than {}:\n{}",
                file.display(),
                diff(&want, &got)
            )),
            Err(_) => failures.push(format!(
                "README block `{name}` has no snapshot {} (ARBITER_README_SNAPSHOTS=overwrite makes it)",
                file.display()
            )),
        }
    }
    failures
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn diff(want: &str, got: &str) -> String {
    let mut out = String::new();
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    for i in 0..w.len().max(g.len()) {
        match (w.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                out.push_str(&format!("- {}\n+ {}\n", a.unwrap_or(&""), b.unwrap_or(&"")));
            }
        }
    }
    out
}

/// A server on the bundled policies, in a directory laid out as a fresh checkout's (the
/// README's commands find `policies/` and `data/` there), and a client the token endpoint
/// knows (the README's `$CLIENT_ID`/`$CLIENT_SECRET`).
fn checkout() -> (tempfile::TempDir, ServeProcess, (String, String)) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(dir.path(), "");
    let (id, secret) = create_client(dir.path(), "readme", "read fido otp");
    (dir, server, (id, secret))
}

#[test]
fn every_readme_block_runs_and_prints_its_snapshot() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let (dir, server, client) = checkout();
    let failures = run_readme(&readme, &server, dir.path(), (&client.0, &client.1));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_wrong_readme_line_fails() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    if std::env::var("ARBITER_README_SNAPSHOTS").is_ok() {
        return;
    }
    // The Quick start's first deny, changed into an allow that the policies do not grant.
    let wrong = readme.replace(
        "check --token \"$T\" GET /fido/config",
        "check --token \"$T\" GET /item/7",
    );
    assert_ne!(wrong, readme);
    let (dir, server, client) = checkout();
    let failures = run_readme(&wrong, &server, dir.path(), (&client.0, &client.1));
    assert!(
        failures.iter().any(|f| f.contains("quick-start")),
        "{failures:?}"
    );
}
