//! The crate's error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading or writing a record directory.
#[derive(Debug)]
pub enum Error {
    /// An I/O operation on `path` failed.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file could not be parsed; `line` is 1-based when known.
    Parse {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number, if the format has lines.
        line: Option<usize>,
        /// What was wrong.
        message: String,
    },
    /// The request cannot be carried out as given (e.g. records already
    /// present without `resume`, or runs with different options); the
    /// message says what to do instead.
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

    /// An [`Error::Parse`] for `path` at an optional 1-based `line`.
    pub fn parse(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self::Parse {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Parse {
                path,
                line: Some(line),
                message,
            } => write!(f, "{}, line {line}: {message}", path.display()),
            Self::Parse {
                path,
                line: None,
                message,
            } => write!(f, "{}: {message}", path.display()),
            Self::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
