//! Tiny-ImageNet's text files (wnids.txt, words.txt, val_annotations.txt).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stiffness_data::fuzzing::tiny_imagenet(data));
