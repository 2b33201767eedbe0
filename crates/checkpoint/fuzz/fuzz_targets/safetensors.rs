//! Fuzzes safetensors loading.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_checkpoint::fuzzing::safetensors(data));
