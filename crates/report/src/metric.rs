//! The per-record metrics that the report aggregates and correlates.

use std::fmt;
use stiffness_records::Record;

/// A stiffness (or singular-value) metric of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Signed max_re / min_re.
    StiffnessIndex,
    /// Fraction of eigenvalues with Re < -tol.
    NegShare,
    /// Largest Re(lambda).
    MaxRe,
    /// Smallest Re(lambda).
    MinRe,
    /// max |lambda|.
    SpectralRadius,
    /// Mean of the upper and lower logarithmic 2-norms.
    Soderlind,
    /// Fraction of eigenvalues outside the forward-Euler disk.
    EulerUnstableShare,
    /// ||x_{k+1} - x_k|| / ||x_k||.
    RelativeStep,
    /// Classical stiffness ratio over the eigenvalues with Re < -tol.
    StiffnessRatio,
    /// Number of exactly zero eigenvalues.
    NZero,
    /// Largest singular value.
    SigmaMax,
    /// Smallest singular value.
    SigmaMin,
    /// sigma_max / sigma_min.
    SigmaRatio,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 13] = [
        Metric::StiffnessIndex,
        Metric::NegShare,
        Metric::MaxRe,
        Metric::MinRe,
        Metric::SpectralRadius,
        Metric::Soderlind,
        Metric::EulerUnstableShare,
        Metric::RelativeStep,
        Metric::StiffnessRatio,
        Metric::NZero,
        Metric::SigmaMax,
        Metric::SigmaMin,
        Metric::SigmaRatio,
    ];

    /// The metrics shown in figures and report tables by default.
    pub const KEY: [Metric; 5] = [
        Metric::StiffnessIndex,
        Metric::NegShare,
        Metric::SpectralRadius,
        Metric::Soderlind,
        Metric::SigmaRatio,
    ];

    /// The record field name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::StiffnessIndex => "stiffness_index",
            Metric::NegShare => "neg_share",
            Metric::MaxRe => "max_re",
            Metric::MinRe => "min_re",
            Metric::SpectralRadius => "spectral_radius",
            Metric::Soderlind => "soderlind",
            Metric::EulerUnstableShare => "euler_unstable_share",
            Metric::RelativeStep => "relative_step",
            Metric::StiffnessRatio => "stiffness_ratio",
            Metric::NZero => "n_zero",
            Metric::SigmaMax => "sigma_max",
            Metric::SigmaMin => "sigma_min",
            Metric::SigmaRatio => "sigma_ratio",
        }
    }

    /// An axis label with the metric's meaning.
    pub fn label(self) -> &'static str {
        match self {
            Metric::StiffnessIndex => "stiffness index max Re λ / min Re λ",
            Metric::NegShare => "share of eigenvalues with Re λ < -tol",
            Metric::MaxRe => "max Re λ",
            Metric::MinRe => "min Re λ",
            Metric::SpectralRadius => "spectral radius max |λ|",
            Metric::Soderlind => "Söderlind (μ_max + μ_min) / 2",
            Metric::EulerUnstableShare => "share with |1 + λ| > 1 (Euler-unstable)",
            Metric::RelativeStep => "relative step ‖x_k+1 − x_k‖ / ‖x_k‖",
            Metric::StiffnessRatio => "stiffness ratio max|Re λ| / min|Re λ|",
            Metric::NZero => "number of exact zero eigenvalues",
            Metric::SigmaMax => "largest singular value σ_max",
            Metric::SigmaMin => "smallest singular value σ_min",
            Metric::SigmaRatio => "σ_max / σ_min",
        }
    }

    /// The metric's value in `r`, if it applies.
    pub fn value(self, r: &Record) -> Option<f64> {
        match self {
            Metric::StiffnessIndex => r.stiffness_index,
            Metric::NegShare => r.neg_share,
            Metric::MaxRe => r.max_re,
            Metric::MinRe => r.min_re,
            Metric::SpectralRadius => r.spectral_radius,
            Metric::Soderlind => r.soderlind,
            Metric::EulerUnstableShare => r.euler_unstable_share,
            Metric::RelativeStep => r.relative_step,
            Metric::StiffnessRatio => r.stiffness_ratio,
            Metric::NZero => r.n_zero.map(|k| k as f64),
            Metric::SigmaMax => r.sigma_max,
            Metric::SigmaMin => r.sigma_min,
            Metric::SigmaRatio => r.sigma_ratio,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
