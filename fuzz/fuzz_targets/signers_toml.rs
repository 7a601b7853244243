//! The signers.toml parser and validation against a fixed allowed_signers list. The body
//! lives in `castellan_sig::fuzzing` so the property tests run it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    castellan_sig::fuzzing::signers_toml(data);
});
