//! Entry points of the fuzz targets in `crates/checkpoint/fuzz`, shared with
//! the regression corpus that `cargo test` replays
//! (`tests/fuzz_regressions.rs`). Errors are fine; a panic is a bug.

/// The `.npy` parser.
pub fn npy(data: &[u8]) {
    let _ = crate::npy::parse_npy(data);
}

/// The restricted unpickler.
pub fn pickle(data: &[u8]) {
    let _ = crate::pickle::unpickle(data);
}

/// safetensors loading.
pub fn safetensors(data: &[u8]) {
    let _ = crate::safetensors::parse_safetensors(data);
}

/// PyTorch checkpoint loading (zip and legacy formats), including tensor
/// materialisation.
pub fn torch(data: &[u8]) {
    if let Ok(file) = crate::torch::TorchFile::parse(data) {
        let _ = file.into_state_dict();
    }
}

/// A target: its name and entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name, for the regression replay.
pub const TARGETS: [Target; 4] = [
    ("npy", npy),
    ("pickle", pickle),
    ("safetensors", safetensors),
    ("torch", torch),
];
