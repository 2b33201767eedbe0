//! Error types.
//!
//! Byte-level parsers ([`crate::npy::parse_npy`], [`crate::pickle::unpickle`], ...)
//! return [`FormatError`], which says what is wrong with the bytes. Functions that
//! take a path return [`CheckpointError`], which also names the file.

use std::fmt;
use std::path::{Path, PathBuf};

/// What is wrong with some bytes that were expected to hold a given format.
///
/// The message is complete English text, e.g.
/// `"npy header declares shape (2, 3) of '<f4' = 24 bytes but 20 bytes follow"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    message: String,
}

impl FormatError {
    /// Creates an error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message, without the file name.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with some context (`"<context>: <message>"`).
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self::new(format!("{context}: {}", self.message))
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FormatError {}

/// Shorthand for `Err(FormatError::new(message))`.
pub(crate) fn bail<T>(message: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError::new(message))
}

/// An error reading or writing a file: always names the file, says what is wrong
/// and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read, written or renamed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was attempted, e.g. `"read the file"`.
        action: &'static str,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The file's first bytes match no supported format.
    #[error(
        "{}: not a PyTorch checkpoint or safetensors file (starts with bytes {head}); \
         expected .pt/.pth/.th or .safetensors",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first bytes in hexadecimal, e.g. `"7f 45 4c 46"`.
        head: String,
    },
    /// The file has a recognised format but its content is invalid, truncated or
    /// unsupported.
    #[error("{}: cannot read {what}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the file was read as, e.g. `"PyTorch legacy checkpoint"`.
        what: &'static str,
        /// What is wrong.
        source: FormatError,
    },
    /// The data to be written is inconsistent (e.g. a shape that does not match
    /// the number of values).
    #[error("{}: cannot write: {message}", path.display())]
    BadInput {
        /// The file that was to be written.
        path: PathBuf,
        /// What is wrong with the data.
        message: String,
    },
}

impl CheckpointError {
    /// Wraps an I/O error with the file and the action.
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// Wraps a [`FormatError`] found while reading `path` as `what`.
    pub(crate) fn invalid(path: &Path, what: &'static str, source: FormatError) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}
