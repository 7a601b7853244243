//! The allowed_signers parser, with a canonical-text round trip on success. The body
//! lives in `castellan_sig::fuzzing` so the property tests run it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    castellan_sig::fuzzing::allowed_signers(data);
});
