#![no_main]
//! CIFAR python (pickle) batch + meta parsing.
use libfuzzer_sys::fuzz_target;
use std::path::Path;
include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let (batch, meta) = split_two(data);
    exercise(stiffness_data::parse_cifar_py(
        batch,
        Path::new("test_batch"),
        Some(meta),
    ));
    exercise(stiffness_data::parse_cifar_py(
        data,
        Path::new("test_batch"),
        None,
    ));
});
