//! The house keeps its shape: top-level modules import only those listed before them (the
//! layout in the README, as `../shared/design.md` has it), `main.rs` only starts the CLI, and
//! a source or test file longer than 700 lines says why in its header; a test file never
//! imports another test file (shared helpers live in `support/`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layout, in dependency order: each may import only those before it.
const LAYERS: &[&str] = &[
    "wire",
    "clock",
    "config",
    "telemetry",
    "tls",
    "store",
    "policy",
    "token",
    "decision",
    "audit",
    "http",
    "oauth",
    // Where policies come from for a fleet, and what each replica runs.
    "bundle",
    "fleet",
    // A candidate set deciding a share of live decisions again, off the request path.
    "shadow",
    // The control plane: nothing on the decision path (policy, token, decision) imports it.
    "control",
    "grpc",
    "authzen",
    // The workbench: the control plane's web console (it searches through authzen).
    "console",
    "client",
    "bench",
    "gateway",
    "server",
    "cli",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::x` paths and `use crate::{x, y}` groups of a file (groups may span lines and
/// nest), outside its tests.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The names at the group's top level, up to its matching brace.
            let (mut depth, mut name, mut first) = (0usize, String::new(), true);
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        first = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 && first {
                    if c.is_alphanumeric() || c == '_' {
                        name.push(c);
                    } else if !name.is_empty() {
                        out.insert(std::mem::take(&mut name));
                        first = false;
                    }
                }
            }
            if !name.is_empty() {
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn multi_line_and_nested_groups_are_read() {
    let text = "use crate::{\n    decision::{Pdp, Reason},\n    // a comment\n    http,\n};\nfn f() { crate::store::x(); }";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["decision", "http", "store"]);
}

#[test]
fn top_level_modules_import_only_earlier_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(rank) = LAYERS.iter().position(|l| *l == module) else {
            wrong.push(format!(
                "{}: `{module}` is not in the layout",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for import in imports(&text) {
            if import == module {
                continue;
            }
            match LAYERS.iter().position(|l| *l == import) {
                Some(r) if r < rank => {}
                Some(_) => wrong.push(format!(
                    "{}: `{module}` imports `{import}`, which comes after it",
                    rel.display()
                )),
                None => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn main_only_starts_the_cli_and_long_files_say_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let main = std::fs::read_to_string(root.join("src/main.rs")).unwrap();
    assert!(
        main.lines().count() <= 100,
        "main.rs is {} lines",
        main.lines().count()
    );
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    // Test files are held to the same rule.
    sources(&root.join("tests/it"), &mut files);
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let says_why = header.contains("Longer than") || header.contains("over our usual size");
        if text.lines().count() > 700 && !says_why {
            long.push(format!(
                "{} ({} lines)",
                file.display(),
                text.lines().count()
            ));
        }
    }
    assert!(
        long.is_empty(),
        "over 700 lines without a reason in the header: {long:#?}"
    );
}

#[test]
fn test_files_share_helpers_only_through_support() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let modules: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            if p.extension()? != "rs" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .filter(|m| m != "main")
        .collect();
    let mut wrong = Vec::new();
    for m in &modules {
        let text = std::fs::read_to_string(dir.join(format!("{m}.rs"))).unwrap();
        for other in imports(&text) {
            if other != *m && modules.contains(&other) {
                wrong.push(format!("{m}.rs uses crate::{other}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
