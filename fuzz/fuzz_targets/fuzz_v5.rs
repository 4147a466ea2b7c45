//! cargo-fuzz target: `collector::fuzzing::fuzz_v5` (see that function for what is checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    collector::fuzzing::fuzz_v5(data);
});
