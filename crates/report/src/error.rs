//! The crate's error type.

use std::fmt;
use std::path::Path;

/// Everything that can go wrong while reading records or writing a report.
#[derive(Debug)]
pub enum Error {
    /// A file could not be read, parsed or written (records, eigenvalues,
    /// tables, figures, documents).
    Files(stiffness_records::Error),
    /// Drawing a figure failed.
    Plot {
        /// The figure's file stem.
        figure: String,
        /// The backend's message.
        message: String,
    },
    /// The inputs are unusable (e.g. no records at all).
    Invalid(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path` (an [`Error::Files`]).
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Files(stiffness_records::Error::io(path, source))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Files(e) => e.fmt(f),
            Self::Plot { figure, message } => write!(f, "figure {figure}: {message}"),
            Self::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Files(e) => Some(e),
            _ => None,
        }
    }
}

impl From<stiffness_records::Error> for Error {
    fn from(e: stiffness_records::Error) -> Self {
        Self::Files(e)
    }
}
