#![no_main]
//! CIFAR-10/100 binary batch parsing.
use libfuzzer_sys::fuzz_target;
include!("common.rs");

fuzz_target!(|data: &[u8]| {
    exercise(stiffness_data::parse_cifar_bin(
        data.to_vec(),
        std::path::Path::new("fuzz.bin"),
    ));
});
