//! CIFAR python (pickle) batch + meta parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_data::fuzzing::cifar_py(data));
