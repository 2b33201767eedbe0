//! CIFAR-10/100 binary batch parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_data::fuzzing::cifar_bin(data));
