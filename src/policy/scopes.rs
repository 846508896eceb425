//! The `@scopes("…")` annotation: a Boolean expression of OAuth scopes, e.g.
//! `read && (fido || otp)`, kept in disjunctive normal form so the decision path can
//! name the cheapest set of scopes a token lacks (RFC 6750 `scope=`).
//!
//! Grammar: `expr := and ("||" and)*`, `and := atom ("&&"? atom)*`, `atom := SCOPE | "(" expr ")"`.
//! Juxtaposition means AND, so the OAuth form `"read fido"` also works.

use std::collections::BTreeSet;
use std::fmt;

/// Alternatives beyond this are refused, so a hostile annotation cannot blow up DNF.
const MAX_ALTERNATIVES: usize = 64;

/// A scope expression in disjunctive normal form: any one alternative suffices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeExpr {
    source: String,
    alternatives: Vec<BTreeSet<String>>,
}

/// Why an `@scopes` annotation could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid @scopes expression `{text}`: {message}")]
pub struct ScopeExprError {
    text: String,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Scope(String),
    And,
    Or,
    Open,
    Close,
}

impl ScopeExpr {
    /// Parses an annotation value.
    pub fn parse(source: &str) -> Result<Self, ScopeExprError> {
        let err = |message: &str| ScopeExprError {
            text: source.to_owned(),
            message: message.to_owned(),
        };
        let tokens = tokenize(source).map_err(|m| err(&m))?;
        if tokens.is_empty() {
            return Err(err("no scopes"));
        }
        let mut parser = Parser { tokens, pos: 0 };
        let alternatives = parser.expr().map_err(|m| err(&m))?;
        if parser.pos != parser.tokens.len() {
            return Err(err("unexpected `)`"));
        }
        Ok(Self {
            source: source.to_owned(),
            alternatives,
        })
    }

    /// The expression of these alternatives (read from a policy's conditions), written
    /// out as an annotation would be: `a && b || c`.
    /// Scopes every alternative shares come first: `read && (fido || otp)`.
    pub fn from_alternatives(alternatives: Vec<BTreeSet<String>>) -> Self {
        let and = |set: &BTreeSet<String>| {
            set.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(" && ")
        };
        let or = |alts: &[BTreeSet<String>]| alts.iter().map(and).collect::<Vec<_>>().join(" || ");
        let common: BTreeSet<String> = match alternatives.split_first() {
            Some((first, rest)) if !rest.is_empty() => first
                .iter()
                .filter(|s| rest.iter().all(|alt| alt.contains(*s)))
                .cloned()
                .collect(),
            _ => BTreeSet::new(),
        };
        let rests: Vec<BTreeSet<String>> = alternatives
            .iter()
            .map(|alt| alt.difference(&common).cloned().collect())
            .collect();
        let source = if common.is_empty() || rests.iter().any(BTreeSet::is_empty) {
            or(&alternatives)
        } else {
            format!("{} && ({})", and(&common), or(&rests))
        };
        Self {
            source,
            alternatives,
        }
    }

    /// The annotation as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The alternatives: a token holding every scope of any one of them satisfies the expression.
    pub fn alternatives(&self) -> &[BTreeSet<String>] {
        &self.alternatives
    }

    /// Every scope the expression names.
    pub fn scopes(&self) -> BTreeSet<&str> {
        self.alternatives
            .iter()
            .flat_map(|a| a.iter().map(String::as_str))
            .collect()
    }

    /// The alternative that needs the fewest scopes the token lacks, with those missing scopes.
    /// Ties go to the smaller alternative, then to the first written.
    pub fn closest<F>(&self, has: F) -> Option<(&BTreeSet<String>, Vec<&str>)>
    where
        F: Fn(&str) -> bool,
    {
        self.alternatives
            .iter()
            .map(|alt| {
                let missing: Vec<&str> =
                    alt.iter().map(String::as_str).filter(|s| !has(s)).collect();
                (alt, missing)
            })
            .min_by_key(|(alt, missing)| (missing.len(), alt.len()))
    }
}

impl fmt::Display for ScopeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            '&' | '|' => {
                if chars.next_if(|&(_, n)| n == c).is_none() {
                    return Err(format!("expected `{c}{c}` at offset {i}"));
                }
                tokens.push(if c == '&' { Token::And } else { Token::Or });
            }
            _ => {
                let mut end = source.len();
                while let Some(&(j, n)) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '(' | ')' | '&' | '|') {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                let scope = &source[i..end];
                // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
                if scope
                    .chars()
                    .any(|ch| !matches!(ch, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
                {
                    return Err(format!("`{scope}` is not a valid scope token"));
                }
                tokens.push(Token::Scope(scope.to_owned()));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn expr(&mut self) -> Result<Vec<BTreeSet<String>>, String> {
        let mut alternatives = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            alternatives.extend(self.and()?);
            if alternatives.len() > MAX_ALTERNATIVES {
                return Err(format!("more than {MAX_ALTERNATIVES} alternatives"));
            }
        }
        Ok(dedup(alternatives))
    }

    fn and(&mut self) -> Result<Vec<BTreeSet<String>>, String> {
        let mut product = self.atom()?;
        loop {
            match self.peek() {
                Some(Token::And) => self.pos += 1,
                Some(Token::Scope(_)) | Some(Token::Open) => {}
                _ => return Ok(product),
            }
            let rhs = self.atom()?;
            let mut next = Vec::with_capacity(product.len() * rhs.len());
            for left in &product {
                for right in &rhs {
                    next.push(left.union(right).cloned().collect());
                }
            }
            if next.len() > MAX_ALTERNATIVES {
                return Err(format!("more than {MAX_ALTERNATIVES} alternatives"));
            }
            product = next;
        }
    }

    fn atom(&mut self) -> Result<Vec<BTreeSet<String>>, String> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Scope(s)) => {
                self.pos += 1;
                Ok(vec![BTreeSet::from([s])])
            }
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.expr()?;
                if self.peek() != Some(&Token::Close) {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Close) => Err("unexpected `)`".into()),
            Some(Token::And) | Some(Token::Or) => Err("operator without a scope before it".into()),
            None => Err("expression ends after an operator".into()),
        }
    }
}

/// Drops duplicate alternatives and those that are supersets of another (they never help).
fn dedup(mut alternatives: Vec<BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let mut kept: Vec<BTreeSet<String>> = Vec::with_capacity(alternatives.len());
    alternatives.sort_by_key(BTreeSet::len);
    for alt in alternatives {
        if !kept.iter().any(|k| k.is_subset(&alt)) {
            kept.push(alt);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alts(s: &str) -> Vec<Vec<String>> {
        ScopeExpr::parse(s)
            .unwrap()
            .alternatives()
            .iter()
            .map(|a| a.iter().cloned().collect())
            .collect()
    }

    #[test]
    fn parses_conjunction_disjunction_and_grouping() {
        assert_eq!(alts("read"), vec![vec!["read"]]);
        assert_eq!(alts("read fido"), vec![vec!["fido", "read"]]);
        assert_eq!(
            alts("read && (fido || otp)"),
            vec![vec!["fido", "read"], vec!["otp", "read"]]
        );
        assert_eq!(alts("a || a && b"), vec![vec!["a"]]);
        assert_eq!(
            alts("https://jans.io/oauth/config/fido2.readonly"),
            vec![vec!["https://jans.io/oauth/config/fido2.readonly"]]
        );
    }

    #[test]
    fn rejects_malformed_expressions() {
        for bad in ["", "read &&", "(read", "read)", "a & b", "|| a", "a \"b\""] {
            assert!(ScopeExpr::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn closest_alternative_needs_fewest_missing_scopes() {
        let e = ScopeExpr::parse("(a && b && c) || (d && e)").unwrap();
        let (alt, missing) = e.closest(|s| s == "a" || s == "b").unwrap();
        assert_eq!(alt.len(), 3);
        assert_eq!(missing, vec!["c"]);
        let (alt, missing) = e.closest(|_| false).unwrap();
        assert_eq!(alt.iter().collect::<Vec<_>>(), vec!["d", "e"]);
        assert_eq!(missing.len(), 2);
    }

    #[test]
    fn refuses_exponential_blowup() {
        let bomb = (0..8)
            .map(|i| format!("(a{i} || b{i})"))
            .collect::<Vec<_>>()
            .join(" && ");
        assert!(ScopeExpr::parse(&bomb).is_err());
    }
}
