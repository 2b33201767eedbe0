//! State dict -> architecture inference -> validation -> model -> forward pass -> a Jacobian.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    resnet_stiffness::model::fuzzing::exercise(data);
});
