#![no_main]
//! IDX images + labels parsing (plain or gzipped).
use libfuzzer_sys::fuzz_target;
use std::path::Path;
include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let (images, labels) = split_two(data);
    exercise(stiffness_data::parse_idx_pair(
        images,
        labels,
        Path::new("images-idx3-ubyte"),
        Path::new("labels-idx1-ubyte"),
    ));
});
