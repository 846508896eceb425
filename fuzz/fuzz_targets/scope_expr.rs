//! Any `@scopes` annotation: parsed into a bounded DNF, or refused; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(expr) = arbiter::policy::scopes::ScopeExpr::parse(text) {
            assert!(!expr.alternatives().is_empty());
            assert!(expr.alternatives().len() <= 64);
        }
    }
});
