//! Which context attributes a policy can read. Building a context attribute costs time on
//! every decision (the token's claims record most of all), so a decision builds only those
//! that some policy of the endpoint's slice names. The scan is conservative: any use of
//! `context` other than `context.a`, `context has a` or `context["a"]` counts as reading all.

use std::collections::HashSet;

/// Context attributes a policy reads; `None` when it may read all of them.
pub type ContextReads = Option<HashSet<String>>;

/// Scans a policy's Cedar text (as printed by cedar, without comments).
pub fn context_reads(text: &str) -> ContextReads {
    let bytes = text.as_bytes();
    let mut reads = HashSet::new();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if is_ident_start(b) {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            let word = &text[start..i];
            // `context` as a whole word, not part of `a.context` or `has context` (an attribute)
            let after_dot_or_has = preceded_by_dot_or_has(text, start);
            if word == "context" && !after_dot_or_has {
                match attribute_after(text, i) {
                    Some((name, end)) => {
                        reads.insert(name);
                        i = end;
                    }
                    None => return None,
                }
            }
            continue;
        }
        i += 1;
    }
    Some(reads)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn preceded_by_dot_or_has(text: &str, start: usize) -> bool {
    let before = text[..start].trim_end();
    before.ends_with('.')
        || (before.ends_with("has")
            && !before[..before.len() - 3]
                .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

/// After `context`: `.name`, `has name`, `has "name"` or `["name"]`.
fn attribute_after(text: &str, pos: usize) -> Option<(String, usize)> {
    let rest = &text[pos..];
    let trimmed = rest.trim_start();
    let skipped = rest.len() - trimmed.len();
    let (name, used) = if let Some(r) = trimmed.strip_prefix('.') {
        let r2 = r.trim_start();
        ident(r2).map(|(n, l)| (n, 1 + (r.len() - r2.len()) + l))?
    } else if let Some(r) = trimmed.strip_prefix("has") {
        if r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let r2 = r.trim_start();
        let (n, l) = ident(r2).or_else(|| string(r2))?;
        (n, 3 + (r.len() - r2.len()) + l)
    } else if let Some(r) = trimmed.strip_prefix('[') {
        let r2 = r.trim_start();
        let (n, l) = string(r2)?;
        (n, 1 + (r.len() - r2.len()) + l)
    } else {
        return None;
    };
    Some((name, pos + skipped + used))
}

fn ident(s: &str) -> Option<(String, usize)> {
    let len = s.bytes().take_while(|&b| is_ident(b)).count();
    (len > 0 && is_ident_start(s.as_bytes()[0])).then(|| (s[..len].to_owned(), len))
}

/// A string literal without escapes (an escaped name is treated as unknown: read all).
fn string(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix('"')?;
    let end = body.find('"')?;
    let name = &body[..end];
    (!name.contains('\\')).then(|| (name.to_owned(), end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(text: &str) -> Option<Vec<String>> {
        context_reads(text).map(|s| {
            let mut v: Vec<String> = s.into_iter().collect();
            v.sort();
            v
        })
    }

    #[test]
    fn finds_attribute_reads() {
        assert_eq!(
            reads(
                r#"permit(principal, action, resource) when { context.scopes.contains("read") && context has token && context.token.acr == "mfa" };"#
            ),
            Some(vec!["scopes".into(), "token".into()])
        );
        assert_eq!(
            reads(
                r#"permit(principal, action, resource) when { context["fraud_score"] > 1 || context has "ip" };"#
            ),
            Some(vec!["fraud_score".into(), "ip".into()])
        );
        assert_eq!(reads("permit(principal, action, resource);"), Some(vec![]));
        assert_eq!(
            reads(
                r#"permit(principal, action, resource) when { principal.context == "context" };"#
            ),
            Some(vec![])
        );
    }

    #[test]
    fn whole_context_use_reads_everything() {
        assert_eq!(
            reads(r#"permit(principal, action, resource) when { context == {} };"#),
            None
        );
        assert_eq!(
            reads(r#"permit(principal, action, resource) when { [context].isEmpty() };"#),
            None
        );
        assert_eq!(
            reads(r#"permit(principal, action, resource) when { context has "a\"b" };"#),
            None
        );
    }
}
