//! Fuzzes safetensors loading.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = stiffness_checkpoint::safetensors::parse_safetensors(data);
});
