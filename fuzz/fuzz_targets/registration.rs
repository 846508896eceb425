//! Any `/register` body: a checked client description or `invalid_client_metadata`; never
//! a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = arbiter::oauth::register::parse_registration(data);
});
