//! IDX images + labels parsing (plain or gzipped).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_data::fuzzing::idx(data));
