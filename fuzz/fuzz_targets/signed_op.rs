//! The signed-op parser (format v1): never panics, and whatever it accepts is exactly its
//! own canonical encoding and passes validation. The body lives in
//! `castellan_core::op::check_parse_invariant` so the unit and property tests run it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    castellan_core::op::check_parse_invariant(data);
});
