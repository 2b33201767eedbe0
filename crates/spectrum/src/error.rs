//! Error type of the crate.

/// Errors of the spectral routines. Non-convergence is always an error,
/// never a silently wrong number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An eigenvalue routine was given a non-square matrix.
    #[error("matrix must be square, got {rows} x {cols}")]
    NotSquare { rows: usize, cols: usize },
    /// The matrix holds an infinite or NaN entry.
    #[error("matrix has a non-finite entry")]
    NonFinite,
    /// faer's Schur iteration did not converge.
    #[error("dense eigenvalue solve of size {size} did not converge")]
    EigenNoConvergence { size: usize },
    /// faer's SVD did not converge.
    #[error("singular value decomposition of a {rows} x {cols} matrix did not converge")]
    SvdNoConvergence { rows: usize, cols: usize },
    /// Lanczos hit its iteration cap before the Ritz residual test passed;
    /// fall back to a dense solve.
    #[error(
        "Lanczos did not converge in {iterations} iterations: relative Ritz residual {residual:e} > tol {tol:e}"
    )]
    LanczosNotConverged {
        iterations: usize,
        residual: f64,
        tol: f64,
    },
    /// Inconsistent shapes or lengths.
    #[error("shape error: {0}")]
    Shape(String),
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, Error>;
