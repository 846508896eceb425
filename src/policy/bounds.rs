//! What a policy text may be before Cedar sees it. Cedar's parsers, its entity-hierarchy
//! builder and the passes over its syntax trees recurse, so a text nested deeply enough (a
//! condition in 300 parentheses, a parent chain of 100 000 entities) would overflow a
//! thread's stack and abort the process. Every way a set enters — the watched directory,
//! SIGHUP, `Reload`, a compare candidate, properties, test cases, the formatter — checks its
//! text here first, and loads run on a thread whose stack holds everything these bounds
//! admit ([`with_load_stack`]).
//!
//! A text out of bounds is a [`PolicyError`] at `file:line`; the bounds are far beyond what a
//! person writes (a generated set of 100 000 policies is well inside them).
//!
//! Imports nothing but the policy error type.

use super::error::PolicyError;

/// Deepest bracket nesting — `(`, `[`, `{` — in a policy, schema or entities file.
pub const MAX_NESTING: usize = 64;
/// Deepest expression a policy may build, counting each bracket level and each operator
/// chained at a level (`a || b || c` is three deep): Cedar keeps chains as nested nodes.
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;
/// Longest chain of parents in `entities.json` (a user in a group in a group …).
pub const MAX_HIERARCHY_DEPTH: usize = 64;
/// Largest single file of a policy set.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// Largest policy set, all files together.
pub const MAX_SET_BYTES: usize = 256 * 1024 * 1024;
/// Stack of the thread every load runs on: with the bounds above, Cedar's deepest recursion
/// (measured in debug builds, where frames are largest) stays well inside it. Only touched
/// pages are ever committed.
pub const LOAD_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Runs `load` on a thread with [`LOAD_STACK_BYTES`] of stack and waits for it: every load of
/// a policy set, its query index and its proofs go through here, wherever they were asked
/// for. Falls back to the calling thread only if no thread can be started (the bounds still
/// hold there).
pub fn with_load_stack<T: Send>(load: impl FnOnce() -> T + Send) -> T {
    both(load, || ()).0
}

/// Runs `first` on a thread with [`LOAD_STACK_BYTES`] of stack while `second` runs on the
/// caller's, and returns both once `first` has ended: how a load uses a second core for the
/// halves of a large set (`second` then runs on the load thread itself). Runs `first` on the
/// caller's thread after `second` if no thread can be started.
pub fn both<A: Send, B>(first: impl FnOnce() -> A + Send, second: impl FnOnce() -> B) -> (A, B) {
    let first = std::sync::Mutex::new(Some(first));
    let take = || first.lock().ok().and_then(|mut f| f.take());
    // The load's spans stay children of the caller's (a reload's, an RPC's).
    let caller = tracing::Span::current();
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("policy-load".into())
            .stack_size(LOAD_STACK_BYTES)
            .spawn_scoped(scope, || caller.in_scope(|| take().map(|f| f())));
        let b = second();
        let a = match spawned {
            Ok(handle) => match handle.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a policy load thread; loading on the caller's");
                take().map(|f| f())
            }
        };
        (a.unwrap_or_else(|| unreachable_load()), b)
    })
}

#[allow(
    clippy::panic,
    reason = "the closure is taken exactly once, by one of two paths"
)]
fn unreachable_load() -> ! {
    panic!("a policy load ran twice")
}

/// Checks a Cedar text (policies, a schema or properties) before it is parsed: its size, its
/// bracket nesting and the depth of the expressions it can build. Strings and `//` comments
/// are skipped, as Cedar's lexer does.
pub fn check_cedar(file: &str, text: &str) -> Result<(), PolicyError> {
    check_size(file, text)?;
    let mut scan = Scan::default();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => scan.line += 1,
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    match bytes[i] {
                        b'\\' => i += 1,
                        b'\n' => scan.line += 1,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => scan.open(file)?,
            b')' | b']' | b'}' => scan.close(),
            // A policy ends: its expressions end with it.
            b';' => scan.reset(),
            b'&' | b'|' | b'+' | b'*' | b'.' | b'<' | b'>' | b'!' | b'=' | b'-' => {
                // `&&`, `||`, `==`, `!=`, `<=`, `>=` are one operator.
                let pair = bytes
                    .get(i + 1)
                    .is_some_and(|n| matches!((b, n), (b'&', b'&') | (b'|', b'|') | (_, b'=')));
                scan.operator(file)?;
                if pair {
                    i += 1;
                }
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if matches!(
                    &text[start..i],
                    "in" | "has" | "like" | "is" | "if" | "then" | "else"
                ) {
                    scan.operator(file)?;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Checks `entities.json` before Cedar reads it: its size, its JSON nesting, and the longest
/// chain of parents it declares (Cedar computes the hierarchy's closure recursively).
pub fn check_entities(file: &str, text: &str) -> Result<(), PolicyError> {
    check_size(file, text)?;
    check_json_nesting(file, text)?;
    // Parse only the shape the hierarchy needs; Cedar reports anything else malformed.
    let Ok(serde_json::Value::Array(entities)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return Ok(());
    };
    let key = |v: &serde_json::Value| -> Option<String> {
        let uid = v.get("__entity").unwrap_or(v);
        Some(format!(
            "{}::{}",
            uid.get("type")?.as_str()?,
            serde_json::Value::from(uid.get("id")?.as_str()?)
        ))
    };
    let mut index = std::collections::HashMap::new();
    let mut parents: Vec<Vec<String>> = Vec::with_capacity(entities.len());
    for entity in &entities {
        let Some(uid) = entity.get("uid").and_then(key) else {
            continue;
        };
        let of = entity
            .get("parents")
            .and_then(|p| p.as_array())
            .map(|p| p.iter().filter_map(key).collect())
            .unwrap_or_default();
        index.insert(uid, parents.len());
        parents.push(of);
    }
    // Longest parent chain from each entity, iteratively (a cycle counts as unbounded).
    const UNSEEN: usize = usize::MAX;
    const ON_PATH: usize = usize::MAX - 1;
    let mut depth = vec![UNSEEN; parents.len()];
    for root in 0..parents.len() {
        if depth[root] != UNSEEN {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        depth[root] = ON_PATH;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let child = parents[node].get(*next).and_then(|p| index.get(p)).copied();
            if *next < parents[node].len() {
                *next += 1;
                let Some(child) = child else { continue };
                match depth[child] {
                    UNSEEN => {
                        depth[child] = ON_PATH;
                        stack.push((child, 0));
                    }
                    ON_PATH => {
                        return Err(PolicyError::file(
                            file,
                            "the entities' parents form a cycle".to_owned(),
                        ))
                    }
                    _ => {}
                }
                continue;
            }
            let longest = parents[node]
                .iter()
                .filter_map(|p| index.get(p))
                .map(|&p| depth[p] + 1)
                .max()
                .unwrap_or(0);
            if longest > MAX_HIERARCHY_DEPTH {
                return Err(PolicyError::file(
                    file,
                    format!(
                        "a chain of parents is deeper than {MAX_HIERARCHY_DEPTH} entities (from `{}`)",
                        entity_name(&entities, node)
                    ),
                ));
            }
            depth[node] = longest;
            stack.pop();
        }
    }
    Ok(())
}

/// The sizes of a whole set, checked as its files are read.
#[derive(Debug, Default)]
pub struct SetSize {
    bytes: usize,
}

impl SetSize {
    /// Adds a file; an error once the set is larger than [`MAX_SET_BYTES`].
    pub fn add(&mut self, file: &str, text: &str) -> Result<(), PolicyError> {
        self.bytes = self.bytes.saturating_add(text.len());
        if self.bytes > MAX_SET_BYTES {
            return Err(PolicyError::file(
                file,
                format!(
                    "the policy set is larger than {} MiB",
                    MAX_SET_BYTES / 1024 / 1024
                ),
            ));
        }
        Ok(())
    }
}

fn check_size(file: &str, text: &str) -> Result<(), PolicyError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(PolicyError::file(
            file,
            format!(
                "the file is larger than {} MiB",
                MAX_FILE_BYTES / 1024 / 1024
            ),
        ));
    }
    Ok(())
}

/// JSON nesting, skipping strings.
fn check_json_nesting(file: &str, text: &str) -> Result<(), PolicyError> {
    let mut scan = Scan::default();
    let mut in_string = false;
    let mut escaped = false;
    for b in text.bytes() {
        if b == b'\n' {
            scan.line += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => scan.open(file)?,
            b']' | b'}' => scan.close(),
            _ => {}
        }
    }
    Ok(())
}

fn entity_name(entities: &[serde_json::Value], node: usize) -> String {
    entities
        .get(node)
        .and_then(|e| e.get("uid"))
        .map(|u| {
            let u = u.get("__entity").unwrap_or(u);
            format!(
                "{}::\"{}\"",
                u.get("type").and_then(|t| t.as_str()).unwrap_or("?"),
                u.get("id").and_then(|t| t.as_str()).unwrap_or("?")
            )
        })
        .unwrap_or_default()
}

/// The nesting seen so far: open brackets, and the operators chained at each level.
#[derive(Debug)]
struct Scan {
    line: u32,
    /// Operators chained at each open level; the outermost level first.
    chained: Vec<usize>,
    /// Depth of the expression built so far: levels plus their chained operators.
    depth: usize,
}

impl Default for Scan {
    fn default() -> Self {
        Self {
            line: 1,
            chained: vec![0],
            depth: 1,
        }
    }
}

impl Scan {
    fn open(&mut self, file: &str) -> Result<(), PolicyError> {
        if self.chained.len() > MAX_NESTING {
            return Err(PolicyError::at(
                file,
                self.line,
                format!("brackets nested deeper than {MAX_NESTING} levels"),
            ));
        }
        self.chained.push(0);
        self.grow(file)
    }

    fn close(&mut self) {
        if self.chained.len() > 1 {
            let ops = self.chained.pop().unwrap_or(0);
            self.depth -= ops + 1;
        }
    }

    fn operator(&mut self, file: &str) -> Result<(), PolicyError> {
        if let Some(ops) = self.chained.last_mut() {
            *ops += 1;
        }
        self.grow(file)
    }

    fn grow(&mut self, file: &str) -> Result<(), PolicyError> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return Err(PolicyError::at(
                file,
                self.line,
                format!(
                    "an expression deeper than {MAX_EXPRESSION_DEPTH} levels (operators chained and brackets nested)"
                ),
            ));
        }
        Ok(())
    }

    /// A `;` at the top level ends a policy (inside brackets the text is malformed, and
    /// the nesting goes on counting).
    fn reset(&mut self) {
        if self.chained.len() == 1 {
            self.chained[0] = 0;
            self.depth = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_brackets_are_refused_at_their_line() {
        let text = format!(
            "permit (principal, action, resource)\nwhen {{ {}true{} }};\n",
            "(".repeat(300),
            ")".repeat(300)
        );
        let e = check_cedar("deep.cedar", &text).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("deep.cedar", Some(2)));
        assert!(e.message.contains("nested deeper than 64"), "{e}");
    }

    #[test]
    fn long_chains_are_refused_and_reset_per_policy() {
        let chain = |n: usize| vec!["1 == 1"; n].join(" && ");
        let one = format!(
            "permit (principal, action, resource) when {{ {} }};\n",
            chain(300)
        );
        assert!(check_cedar("a.cedar", &one).is_ok());
        // Many such policies are fine: each `;` ends an expression.
        assert!(check_cedar("a.cedar", &one.repeat(50)).is_ok());
        let long = format!(
            "permit (principal, action, resource) when {{ {} }};\n",
            chain(600)
        );
        assert!(check_cedar("a.cedar", &long).is_err());
    }

    #[test]
    fn strings_and_comments_do_not_count() {
        let text = format!(
            "// {}\npermit (principal, action, resource) when {{ context.s == \"{}\\\"(\" }};",
            "(".repeat(500),
            "(".repeat(500)
        );
        assert!(check_cedar("a.cedar", &text).is_ok());
    }

    #[test]
    fn the_bundled_set_is_well_inside_the_bounds() {
        let dir = crate::policy::bundled_copy();
        for entry in walk(dir.path()) {
            let text = std::fs::read_to_string(&entry).unwrap();
            let name = entry.display().to_string();
            if name.ends_with(".json") {
                check_entities(&name, &text).unwrap();
            } else if name.ends_with(".cedar") || name.ends_with(".cedarschema") {
                check_cedar(&name, &text).unwrap();
            }
        }
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    fn entities(chain: usize) -> String {
        let mut items = Vec::new();
        for i in 0..chain {
            let parents = if i + 1 < chain {
                format!(r#"[{{"type":"Group","id":"g{}"}}]"#, i + 1)
            } else {
                "[]".into()
            };
            items.push(format!(
                r#"{{"uid":{{"type":"Group","id":"g{i}"}},"attrs":{{}},"parents":{parents}}}"#
            ));
        }
        format!("[{}]", items.join(","))
    }

    #[test]
    fn deep_hierarchies_and_cycles_are_refused() {
        assert!(check_entities("entities.json", &entities(MAX_HIERARCHY_DEPTH)).is_ok());
        let e = check_entities("entities.json", &entities(5_000)).unwrap_err();
        assert!(e.message.contains("deeper than 64"), "{e}");
        let cycle = r#"[{"uid":{"type":"G","id":"a"},"attrs":{},"parents":[{"type":"G","id":"b"}]},
                        {"uid":{"type":"G","id":"b"},"attrs":{},"parents":[{"type":"G","id":"a"}]}]"#;
        assert!(check_entities("entities.json", cycle)
            .unwrap_err()
            .message
            .contains("cycle"));
    }

    #[test]
    fn deep_json_is_refused_at_its_line() {
        let text = format!("[\n{}{}]", "[".repeat(100), "]".repeat(100));
        let e = check_entities("entities.json", &text).unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    proptest::proptest! {
        /// Whatever the nesting and chains, the check answers (never overflows), and what it
        /// admits stays inside the bounds.
        #[test]
        fn any_nesting_is_checked_without_recursion(
            opens in proptest::collection::vec(0usize..3, 0..4000),
            ops in proptest::collection::vec(0usize..6, 0..4000),
        ) {
            let mut text = String::from("permit (principal, action, resource) when { ");
            for (o, op) in opens.iter().zip(&ops) {
                text.push(['(', '[', '{'][*o]);
                text.push_str(["x", "&& y", "|| z", ".a", "+ 1", "has b"][*op]);
            }
            text.push_str(" };");
            let admitted = check_cedar("p.cedar", &text).is_ok();
            let depth = opens.len().min(ops.len()) + 1;
            proptest::prop_assert!(!admitted || depth <= MAX_NESTING + 1);
        }
    }
}
