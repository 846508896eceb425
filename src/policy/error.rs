//! Errors of loading a policy directory: every one names its file and, where known, its line.

use std::fmt;
use std::path::PathBuf;

/// One problem in one file of the policy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file, relative to the policy directory.
    pub file: String,
    /// The 1-based line, where the problem has a location.
    pub line: Option<u32>,
    /// What is wrong, lowercase, safe to show to policy authors.
    pub message: String,
}

impl PolicyError {
    /// A problem with a file as a whole.
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            message: message.into(),
        }
    }

    /// A problem at a line of a file.
    pub fn at(file: impl Into<String>, line: u32, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: Some(line),
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A policy directory that could not be loaded; the live set (if any) stays in force.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadError {
    /// The directory that was read.
    pub dir: PathBuf,
    /// Every problem found, in file order.
    pub errors: Vec<PolicyError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} error{} in policy directory `{}`",
            if n == 1 { "" } else { "s" },
            self.dir.display()
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Converts a cedar diagnostic (and the errors related to it) into located errors.
/// `base` is the byte offset in `text` that the diagnostic's own offsets start from (non-zero
/// for a policy parsed on its own, out of a larger file).
pub(crate) fn from_diagnostic(
    file: &str,
    text: Option<&str>,
    base: usize,
    diag: &dyn miette::Diagnostic,
) -> Vec<PolicyError> {
    let mut out = Vec::new();
    let mut push = |d: &dyn miette::Diagnostic| {
        let mut message = d.to_string();
        if let Some(help) = d.help() {
            message.push_str(&format!(" (help: {help})"));
        }
        let line = text.and_then(|t| {
            d.labels()
                .and_then(|mut labels| labels.next())
                .map(|label| line_of(t, base + label.offset()))
        });
        out.push(PolicyError {
            file: file.to_owned(),
            line,
            message,
        });
    };
    // miette convention (cedar's ParseErrors follows it): the diagnostic itself is the
    // first error and `related` holds the others.
    push(diag);
    if let Some(related) = diag.related() {
        for d in related {
            push(d);
        }
    }
    out
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    let line = text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    u32::try_from(line).unwrap_or(u32::MAX)
}
