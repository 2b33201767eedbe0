//! Fuzzes the restricted unpickler.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = stiffness_checkpoint::pickle::unpickle(data);
});
