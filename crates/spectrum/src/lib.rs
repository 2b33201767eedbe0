//! Numerical back end of the stiffness analysis: the eigen- and singular
//! value solvers behind `docs/METHOD.md` sections 4-6 (the metrics built on
//! them live with the analysis, in `resnet_stiffness::analysis::metrics`).
//!
//! - [`Spectrum`]: the eigenvalue multiset of an n x n matrix, part solved
//!   densely ([`eigenvalues`], f64, with the LAPACK `gebal` permutation step
//!   so that structurally exact eigenvalues come out exactly), part known
//!   exactly from structure (values with multiplicities).
//! - [`singular_values`], [`SingularSummary`], [`sigma_max_lanczos`]: for
//!   non-square Jacobians.
//! - [`sym_part_extremes_dense`], [`sym_part_extremes_lanczos`]: extreme
//!   eigenvalues of (J + J^T)/2 for the Söderlind metric.
//! - [`paper_compatible`]: the spectrum of the H x W slices of the
//!   unflattened Jacobian (METHOD.md section 6).
//! - Summaries serialise non-finite values as the strings "inf", "-inf",
//!   "nan" (`stiffness_fsutil::nonfinite`).
//!
//! Parallelism: every solver here is single-threaded by default because the
//! caller parallelises across samples; [`eigenvalues`] accepts a
//! [`faer::Par`] for the rare case where one large solve should use several
//! threads. [`paper_compatible`] runs over slices in parallel on the rayon
//! pool.

mod dense;
mod error;
mod isolate;
mod krylov;
mod lanczos;
mod paper;
mod singular;
mod small;
mod spectrum;
#[cfg(test)]
mod testutil;

pub use dense::eigenvalues;
pub use error::{Error, Result};
pub use faer::Par;
pub use krylov::{krylov_schur, KrylovOptions, KrylovReport, RitzEstimate, Target, STOP_MARGIN};
pub use lanczos::{
    sym_part_extremes_dense, sym_part_extremes_lanczos, symmetric_extremes_lanczos, LanczosOptions,
    SymExtremes,
};
pub use num_complex::Complex64;
pub use paper::{paper_compatible, PaperCompatSummary};
pub use singular::{sigma_max_lanczos, singular_values, SingularSummary};
pub use spectrum::{multiset_distance, Spectrum};
