//! ImageFolder image decoding, then resize and centre crop.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_data::fuzzing::image_decode(data));
