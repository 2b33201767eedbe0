//! The crate's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while opening or reading a data set.
///
/// Messages name the file, say what is wrong and, where there is one, what to
/// do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused to read a file or folder.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file's contents do not match the format it was read as.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An image file could not be decoded.
    #[error("{}: cannot decode image: {source}; is the file a complete JPEG or PNG?", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// An index past the end of the data set.
    #[error("index {index} is out of range for a data set of {len} images")]
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// The data set's size.
        len: usize,
    },
    /// An image holds NaN or infinite values (after its transform), which no
    /// analysis may turn into numbers.
    #[error("{image}: {count} of {total} values are not finite (NaN or infinity), the first at \
             flat index {first}; remove or repair the image (for a .npy data set, check how it was made)")]
    NonFinite {
        /// Which image (see `ImageSource::describe`).
        image: String,
        /// How many values are not finite.
        count: usize,
        /// Values in the image.
        total: usize,
        /// Flat CHW index of the first one.
        first: usize,
    },
    /// A bad option value (normalisation string, crop size, format name, ...).
    #[error("{0}")]
    Option(String),
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An [`DataError::Invalid`] for `path` with the given reason.
    pub fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// `Err(NonFinite)` naming `image` unless every value is finite.
pub fn check_finite(values: &[f32], image: impl FnOnce() -> String) -> Result<()> {
    let Some(first) = values.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    Err(DataError::NonFinite {
        image: image(),
        count: values.iter().filter(|v| !v.is_finite()).count(),
        total: values.len(),
        first,
    })
}

/// Result with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;
