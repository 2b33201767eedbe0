//! Fuzzes the `.npy` parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = stiffness_checkpoint::npy::parse_npy(data);
});
