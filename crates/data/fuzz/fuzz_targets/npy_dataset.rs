#![no_main]
//! npy images + labels parsing, layout detection and loading.
use libfuzzer_sys::fuzz_target;
use std::path::Path;
include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let (images, labels) = split_two(data);
    exercise(stiffness_data::parse_npy_pair(
        images,
        labels,
        Path::new("images.npy"),
        Path::new("labels.npy"),
    ));
});
