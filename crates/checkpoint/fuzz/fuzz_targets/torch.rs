//! Fuzzes PyTorch checkpoint loading (zip and legacy formats), including tensor materialisation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_checkpoint::fuzzing::torch(data));
