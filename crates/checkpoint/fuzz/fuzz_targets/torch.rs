//! Fuzzes PyTorch checkpoint loading (zip and legacy formats), including
//! tensor materialisation.
#![no_main]

use stiffness_checkpoint::torch::TorchFile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(file) = TorchFile::parse(data) {
        let _ = file.into_state_dict();
    }
});
