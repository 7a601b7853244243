//! The inbox's file handling: op and signature files laid out as regular files, links,
//! FIFOs or oversize files, scanned and settled. The body lives in
//! `castellan_agent::fuzzing` so the property tests run it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    castellan_agent::fuzzing::inbox_files(data);
});
