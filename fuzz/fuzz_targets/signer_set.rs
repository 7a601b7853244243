//! The signer-set document parser (key rotation), with a rendering round trip and its
//! conversion to a signer config on success. The body lives in `castellan_sig::fuzzing`
//! so the property tests run it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    castellan_sig::fuzzing::signer_set(data);
});
