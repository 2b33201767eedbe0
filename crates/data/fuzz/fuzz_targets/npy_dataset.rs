//! npy images + labels parsing, layout detection and loading.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_data::fuzzing::npy_dataset(data));
