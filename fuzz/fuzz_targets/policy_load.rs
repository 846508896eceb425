//! Any text as a policy file, and as `entities.json`, loaded as the server loads a directory
//! (bounds first, then Cedar on the load thread): a set or a `file:line` error, never a
//! crash. Deep nesting (`((((…`) aborted the process before the bounds; seed the corpus with
//! `printf 'permit(principal,action,resource) when {%0300d};' | tr 0 '('` to find it fast.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SCHEMA: &str = include_str!("../../policies/schema.cedarschema");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let _ = std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA);
    let _ = std::fs::write(dir.path().join("fuzzed.cedar"), text);
    let _ = arbiter::policy::PolicySnapshot::load(dir.path());
    let _ = std::fs::remove_file(dir.path().join("fuzzed.cedar"));
    let _ = std::fs::write(dir.path().join("entities.json"), text);
    let _ = arbiter::policy::PolicySnapshot::load(dir.path());
});
