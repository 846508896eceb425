//! A large policy set loaded on two cores: a file of many policies parsed, and a set of many
//! validated, in two halves on two threads ([`bounds::both`]), with the same policies,
//! warnings and errors, at the same `file:line`, as one pass would give.

use std::str::FromStr;

use cedar_policy::{Policy, PolicySet, Schema, ValidationMode, ValidationResult, Validator};

use super::bounds;
use super::spans::lines_of;

/// From how many policies a file is parsed, and a set validated, in two halves on two
/// threads: below it, a second thread costs more than it saves.
pub(super) const IN_HALVES_FROM: usize = 512;

/// A large file parsed as two halves on two threads, split where a policy starts: each policy
/// with its line, the offset its diagnostics are relative to (its half's start) and its text.
/// `None` unless each half parses as exactly the policies the split expects (no error, no
/// template): the whole file is then parsed on one thread, which reports errors exactly.
pub(super) fn parse(
    text: &str,
    spans: &[(usize, usize)],
) -> Option<Vec<(Policy, u32, usize, String)>> {
    let mid = spans.len() / 2;
    let split = spans.get(mid)?.0;
    let (first, second) = bounds::both(
        || PolicySet::from_str(&text[..split]).ok(),
        || PolicySet::from_str(&text[split..]).ok(),
    );
    let (first, second) = (first?, second?);
    let expected =
        |set: &PolicySet, n: usize| set.templates().next().is_none() && set.policies().count() == n;
    if !expected(&first, mid) || !expected(&second, spans.len() - mid) {
        return None;
    }
    let lines = lines_of(text, spans);
    let mut parsed = Vec::with_capacity(spans.len());
    for (set, first_index, base) in [(&first, 0, 0), (&second, mid, split)] {
        for policy in set.policies() {
            // Cedar names the Nth policy of a text `policyN`.
            let n = first_index
                + policy
                    .id()
                    .to_string()
                    .strip_prefix("policy")?
                    .parse::<usize>()
                    .ok()?;
            let &(start, end) = spans.get(n)?;
            parsed.push((
                policy.clone(),
                *lines.get(n)?,
                base,
                text[start..end].to_owned(),
            ));
        }
    }
    parsed.sort_by_key(|(_, line, _, _)| *line);
    Some(parsed)
}

/// Validates `set` under `schema` in strict mode: a large set in two halves on two threads
/// (each policy is validated on its own, so the halves' results are the whole's).
pub(super) fn validate(schema: &Schema, set: &PolicySet) -> Vec<ValidationResult> {
    let validator = Validator::new(schema.clone());
    let count = set.policies().count();
    if count < IN_HALVES_FROM {
        return vec![validator.validate(set, ValidationMode::Strict)];
    }
    let (mut first, mut second) = (PolicySet::new(), PolicySet::new());
    for (i, policy) in set.policies().enumerate() {
        let half = if i < count / 2 {
            &mut first
        } else {
            &mut second
        };
        // The ids are those of `set`, so unique in each half; were one refused, the halves
        // would not hold every policy, and the whole set is validated in one pass instead.
        if half.add(policy.clone()).is_err() {
            return vec![validator.validate(set, ValidationMode::Strict)];
        }
    }
    let (a, b) = bounds::both(
        || validator.validate(&first, ValidationMode::Strict),
        || validator.validate(&second, ValidationMode::Strict),
    );
    vec![a, b]
}

#[cfg(test)]
mod tests {
    use cedar_policy::PolicyId;

    use super::*;
    use crate::policy::load::{load_dir, SCHEMA_FILE};
    use crate::policy::spans::policy_spans;

    /// A file of `n` route policies (each five lines, the first on line 1), with `broken`
    /// (0-based) reading a context field the schema does not declare.
    fn routes(n: usize, broken: &[usize]) -> String {
        (0..n)
            .map(|i| {
                let extra = if broken.contains(&i) { " && context.nope == 1" } else { "" };
                format!(
                    "@id(\"route-{i}\")\n@scopes(\"read\")\npermit (principal, action == Action::\"GET\",\n  resource == Endpoint::\"/svc{i}/items/{{id}}\")\nwhen {{ context.scopes.contains(\"read\"){extra} }};\n"
                )
            })
            .collect()
    }

    fn set_with(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let bundled = crate::policy::bundled_copy();
        std::fs::copy(
            bundled.path().join(SCHEMA_FILE),
            dir.path().join(SCHEMA_FILE),
        )
        .unwrap();
        std::fs::write(dir.path().join("routes.cedar"), text).unwrap();
        dir
    }

    #[test]
    fn a_large_file_parsed_in_halves_is_the_file_parsed_whole() {
        let text = routes(2 * IN_HALVES_FROM + 1, &[]);
        let spans = policy_spans(&text);
        let halves = parse(&text, &spans).expect("two halves that parse");
        let whole = {
            let set = PolicySet::from_str(&text).unwrap();
            let lines = lines_of(&text, &spans);
            let mut whole: Vec<(String, u32)> = set
                .policies()
                .map(|p| {
                    let n: usize = p.id().to_string()["policy".len()..].parse().unwrap();
                    (p.to_string(), lines[n])
                })
                .collect();
            whole.sort_by_key(|(_, line)| *line);
            whole
        };
        let halves: Vec<(String, u32)> = halves
            .iter()
            .map(|(p, line, _, _)| (p.to_string(), *line))
            .collect();
        assert_eq!(halves, whole);
        // Each policy keeps its own text, for the next load's cache.
        let loaded = load_dir(set_with(&text).path(), None).unwrap();
        assert_eq!(loaded.meta.len(), 2 * IN_HALVES_FROM + 1);
        assert_eq!(loaded.meta[&PolicyId::new("route-1000")].line, 5001);
    }

    #[test]
    fn a_set_validated_in_halves_finds_what_one_pass_finds() {
        let n = 2 * IN_HALVES_FROM + 3;
        let text = routes(n, &[0, n / 2, n - 1]);
        let set = PolicySet::from_str(&text).unwrap();
        let dir = set_with("");
        let schema_text = std::fs::read_to_string(dir.path().join(SCHEMA_FILE)).unwrap();
        let (schema, _) = Schema::from_cedarschema_str(&schema_text).unwrap();
        let found = |results: &[ValidationResult]| {
            let mut found: Vec<String> = results
                .iter()
                .flat_map(ValidationResult::validation_errors)
                .map(|e| format!("{}: {e}", e.policy_id()))
                .collect();
            found.sort();
            found
        };
        let halves = found(&validate(&schema, &set));
        let whole = found(&[Validator::new(schema).validate(&set, ValidationMode::Strict)]);
        assert_eq!(halves.len(), 3, "{halves:?}");
        assert_eq!(halves, whole);
    }

    #[test]
    fn errors_in_either_half_of_a_large_file_are_located_exactly() {
        let n = 2 * IN_HALVES_FROM;
        // Policy i starts on line 5i + 1; its condition is on line 5i + 5.
        let errors = load_dir(set_with(&routes(n, &[3, n - 2])).path(), None)
            .err()
            .expect("refused");
        let lines: Vec<Option<u32>> = errors.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            vec![Some(20), Some(5 * (n as u32 - 2) + 5)],
            "{errors:?}"
        );
        // A syntax error in the second half: the whole file is parsed and says where.
        let mut text = routes(n, &[]);
        let at = text.rfind("permit").unwrap();
        text.insert_str(at, "permitt ");
        let errors = load_dir(set_with(&text).path(), None)
            .err()
            .expect("refused");
        assert_eq!(errors[0].line, Some(5 * (n as u32 - 1) + 3), "{errors:?}");
    }
}
