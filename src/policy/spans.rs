//! Where each policy of a Cedar file starts and ends, found without Cedar: its parser keeps no
//! public source location for a policy, and a load needs one to report `file:line`, to key
//! its cache by each policy's text and to split a large file in two.

/// Each top-level policy of a Cedar file, as its source text (from its first annotation to
/// its closing `;`) and the 1-based line it starts on.
pub fn policy_texts(text: &str) -> Vec<(u32, &str)> {
    let spans = policy_spans(text);
    lines_of(text, &spans)
        .into_iter()
        .zip(spans)
        .map(|(line, (start, end))| (line, &text[start..end]))
        .collect()
}

/// Byte ranges of each top-level policy: from its first annotation to its closing `;`
/// (or the end of the text, for an unterminated last policy), skipping comments and string
/// literals.
pub(super) fn policy_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut starts: Vec<(usize, usize)> = Vec::new();
    let mut at_policy_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b if b.is_ascii_whitespace() => {}
            _ => {
                if at_policy_start {
                    starts.push((i, bytes.len()));
                    at_policy_start = false;
                }
                if b == b'"' {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                } else if b == b';' {
                    at_policy_start = true;
                    if let Some(last) = starts.last_mut() {
                        last.1 = i + 1;
                    }
                }
            }
        }
        i += 1;
    }
    starts
}

/// The 1-based line each of `spans` (ascending, as [`policy_spans`] gives them) starts on,
/// in one pass.
pub(super) fn lines_of(text: &str, spans: &[(usize, usize)]) -> Vec<u32> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(spans.len());
    let (mut pos, mut line) = (0usize, 1u32);
    for &(offset, _) in spans {
        let end = offset.min(bytes.len());
        line += bytes[pos..end].iter().filter(|&&b| b == b'\n').count() as u32;
        pos = end;
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_policy_starts_past_comments_and_strings() {
        let text = "// a; comment\n@id(\"a;\")\npermit(principal, action, resource);\n\n  forbid(principal, action, resource) when { \"x;\" == \"y\" };\n";
        let spans = policy_spans(text);
        assert_eq!(spans.len(), 2);
        assert_eq!(lines_of(text, &spans), vec![2, 5]);
    }
}
