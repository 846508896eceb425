//! Any output annotation on a permit or a forbid: read into outputs or refused with a reason,
//! never a panic; what is read writes back (`annotations`) to the same annotations.
#![no_main]

use arbiter::policy::outputs::{PolicyOutputs, Template};
use libfuzzer_sys::fuzz_target;

const PREFIXES: [&str; 5] = ["header_", "metadata_", "deny_status", "deny_message", "id"];

fuzz_target!(|input: (u8, bool, String, String)| {
    let (kind, permit, name, value) = input;
    // Template text on its own: parsed, and its source kept as written.
    if let Ok(t) = Template::parse(&value) {
        assert_eq!(t.source(), value);
    }
    // The annotation as a policy author writes it: the key is an identifier, the value a
    // Cedar string (escaped here so any value reaches the reader).
    let prefix = PREFIXES[usize::from(kind) % PREFIXES.len()];
    let suffix: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    let key = if prefix.ends_with('_') { format!("{prefix}{suffix}") } else { prefix.to_owned() };
    let effect = if permit { "permit" } else { "forbid" };
    let text = format!(
        "@{key}(\"{}\")\n{effect}(principal, action, resource);",
        value.escape_default()
    );
    let Ok(policy) = cedar_policy::Policy::parse(None, &text) else {
        return;
    };
    if let Ok(Some(outputs)) = PolicyOutputs::read(&policy) {
        for (k, v) in outputs.annotations() {
            let again = format!(
                "@{k}(\"{}\")\n{effect}(principal, action, resource);",
                v.escape_default()
            );
            let policy = cedar_policy::Policy::parse(None, &again).expect("written back");
            let read = PolicyOutputs::read(&policy).expect("reads back").expect("has outputs");
            assert_eq!(read.annotations(), vec![(k, v)]);
        }
    }
});
