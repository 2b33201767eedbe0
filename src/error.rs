//! The crate's error type. Every variant's message says what went wrong, where
//! (file or option) and, where it can, what to do; [`Error::exit_code`] maps
//! bad input to exit code 2 and internal failures to 1.

use std::path::Path;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Checkpoint(#[from] stiffness_checkpoint::CheckpointError),
    #[error(transparent)]
    Data(#[from] stiffness_data::DataError),
    #[error(transparent)]
    Report(#[from] stiffness_report::Error),
    #[error(transparent)]
    Records(#[from] stiffness_records::Error),
    /// The checkpoint does not describe a supported ResNet.
    #[error("{0}")]
    Model(String),
    /// Bad options or inputs that do not fit together.
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A value that must be finite is not (an input, or an overflow in a
    /// forward pass or a JVP). The analysis job turns it into a record with
    /// this reason instead of metrics; elsewhere it is bad input (exit 2).
    #[error("{0}")]
    NonFinite(String),
    /// A computation would need more memory than allowed.
    #[error("{0}")]
    Memory(String),
    /// A numerical step failed (e.g. an eigen-solve did not converge).
    #[error("{0}")]
    Numerical(String),
    #[error("eigen-solver: {0}")]
    Spectrum(#[from] stiffness_spectrum::Error),
    #[error("internal tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    /// 2 for bad input (files, options), 1 for internal failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Numerical(_) | Error::Spectrum(_) | Error::Tensor(_) => 1,
            _ => 2,
        }
    }

    /// An I/O error with the path it concerns.
    pub fn io(what: &str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}
