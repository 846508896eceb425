//! `arbiter policies fmt`: Cedar's own formatter (`cedar-policy-formatter`, the one the
//! Cedar CLI uses) over every `.cedar` file of a policy directory, comments kept. Formatting
//! formatted text changes nothing, so `--check` can guard a directory in CI.

use std::path::{Path, PathBuf};

/// Line width of formatted policies.
const LINE_WIDTH: usize = 100;
/// Indentation of formatted policies.
const INDENT: isize = 2;

/// One file's text, formatted; an error names why it cannot be (it does not parse).
pub fn format_policies(text: &str) -> Result<String, String> {
    let config = cedar_policy_formatter::Config {
        line_width: LINE_WIDTH,
        indent_width: INDENT,
    };
    cedar_policy_formatter::policies_str_to_pretty(text, &config).map_err(|e| format!("{e:?}"))
}

/// What formatting a directory found.
#[derive(Debug, Default)]
pub struct FormatReport {
    /// Files whose text differs from their formatted text (rewritten unless checking).
    pub changed: Vec<PathBuf>,
    /// Files already formatted.
    pub unchanged: usize,
    /// Files that do not parse, with why.
    pub errors: Vec<(PathBuf, String)>,
}

/// Formats every `.cedar` file below `dir` (sorted), writing the changed ones unless `check`.
pub fn format_dir(dir: &Path, check: bool) -> std::io::Result<FormatReport> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    let mut report = FormatReport::default();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let bounded = super::bounds::check_cedar(&file.display().to_string(), &text)
            .map_err(|e| e.to_string());
        match bounded.and_then(|()| super::bounds::with_load_stack(|| format_policies(&text))) {
            Ok(formatted) if formatted == text => report.unchanged += 1,
            Ok(formatted) => {
                if !check {
                    std::fs::write(&file, formatted)?;
                }
                report.changed.push(file);
            }
            Err(e) => report.errors.push((file, e)),
        }
    }
    Ok(report)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "cedar") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_idempotent_and_keeps_comments() {
        let ugly = "// why this rule exists\n@id(\"a\")\npermit(principal,action==Action::\"GET\",resource)\nwhen{context.scopes.contains(\"read\")};\n";
        let once = format_policies(ugly).unwrap();
        assert_ne!(once, ugly);
        assert!(once.contains("// why this rule exists"));
        assert_eq!(format_policies(&once).unwrap(), once);
        assert!(format_policies("permit(").is_err());
    }
}
