//! Fuzzes the restricted unpickler.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_checkpoint::fuzzing::pickle(data));
