//! Fuzzes the `.npy` parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_checkpoint::fuzzing::npy(data));
