//! Safe readers for model weights and arrays.
//!
//! * [`load_state_dict`]: named `f32` tensors from a PyTorch checkpoint (zip
//!   or legacy format) or a safetensors file, told apart by their first bytes.
//! * [`npy`]: NumPy `.npy` arrays (read and atomic write).
//! * [`pickle`]: a restricted, allow-list unpickler that never executes code
//!   (also reads CIFAR python batches).
//! * [`torch`]: the PyTorch checkpoint formats in detail.
//! * [`safetensors`]: safetensors reading and atomic writing.
//!
//! Nothing here panics, hangs or allocates without bound on malformed or
//! hostile input: such input gives an error.

#![warn(missing_docs)]

pub mod dtype;
pub mod error;
mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod npy;
pub mod pickle;
pub mod safetensors;
mod state;
pub mod torch;

pub use dtype::SourceDType;
pub use error::{CheckpointError, FormatError};
pub use state::{Format, LoadedCheckpoint, Scalar, StateDict, Tensor};

use std::path::Path;

impl Format {
    /// What a file of this format is called in messages.
    pub fn description(self) -> &'static str {
        match self {
            Self::Safetensors => "safetensors file",
            Self::TorchZip => "PyTorch zip checkpoint",
            Self::TorchLegacy => "PyTorch legacy checkpoint",
        }
    }
}

/// Recognises a checkpoint format from the first bytes: a zip archive
/// (`PK\x03\x04`) is [`Format::TorchZip`], a pickle (`\x80`) is
/// [`Format::TorchLegacy`], and a plausible safetensors header length followed
/// by `{` is [`Format::Safetensors`].
pub fn detect_format(bytes: &[u8]) -> Option<Format> {
    if torch::is_zip(bytes) {
        Some(Format::TorchZip)
    } else if bytes.first() == Some(&0x80) {
        Some(Format::TorchLegacy)
    } else if safetensors::looks_like_safetensors(bytes) {
        Some(Format::Safetensors)
    } else {
        None
    }
}

/// Loads the weights of a model from a PyTorch checkpoint (`.pt`, `.pth`,
/// `.th`; zip or legacy format) or a `.safetensors` file. The format is
/// detected from the bytes, not the file name.
///
/// In a PyTorch checkpoint the state dict is the top-level dict if it holds
/// any tensor, else the dict under `state_dict`, `model` or `net` (first
/// match); the top-level number, bool and string entries (e.g.
/// `best_prec1`) become [`LoadedCheckpoint::metadata`]. Non-tensor entries of
/// the state dict are skipped. If every name starts with `module.` (saved
/// from `nn.DataParallel`) that prefix is removed.
///
/// All tensors are converted to `f32` (see [`Tensor`]); integer tensors such
/// as `num_batches_tracked` are kept, with an integer
/// [`Tensor::source_dtype`].
pub fn load_state_dict(path: &Path) -> Result<LoadedCheckpoint, CheckpointError> {
    let bytes = fsutil::read(path)?;
    let format = detect_format(&bytes).ok_or_else(|| CheckpointError::UnknownFormat {
        path: path.to_path_buf(),
        head: bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
    })?;
    parse_as(&bytes, format).map_err(|e| CheckpointError::invalid(path, format.description(), e))
}

/// [`load_state_dict`] on bytes already in memory.
pub fn parse_state_dict(bytes: &[u8]) -> Result<LoadedCheckpoint, FormatError> {
    let format = detect_format(bytes)
        .ok_or_else(|| FormatError::new("not a PyTorch checkpoint or safetensors file"))?;
    parse_as(bytes, format)
}

fn parse_as(bytes: &[u8], format: Format) -> Result<LoadedCheckpoint, FormatError> {
    let (state, metadata) = match format {
        Format::Safetensors => safetensors::parse_safetensors(bytes)?,
        Format::TorchZip | Format::TorchLegacy => {
            torch::TorchFile::parse(bytes)?.into_state_dict()?
        }
    };
    Ok(LoadedCheckpoint {
        state,
        format,
        metadata,
    })
}
