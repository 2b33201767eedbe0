//! The crate's error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading records or writing a report.
#[derive(Debug)]
pub enum Error {
    /// An I/O operation on `path` failed.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record directory could not be read.
    Records(stiffness_records::Error),
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
    /// An [`Error::Io`] for `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Records(e) => e.fmt(f),
            Self::Plot { figure, message } => write!(f, "figure {figure}: {message}"),
            Self::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Records(e) => Some(e),
            _ => None,
        }
    }
}

impl From<stiffness_records::Error> for Error {
    fn from(e: stiffness_records::Error) -> Self {
        Self::Records(e)
    }
}
