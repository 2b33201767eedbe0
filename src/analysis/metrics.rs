//! Stiffness metrics of one spectrum (METHOD.md section 4).
//!
//! With lambda_1..lambda_n the eigenvalues (with multiplicity), rho =
//! max |lambda_i| and tol = 1e-6 * max(1, rho):
//! - `max_re`, `min_re`: extreme real parts; an exact zero counts as +0.0
//!   (what LAPACK returns), never -0.0;
//! - `stiffness_index` = max_re / min_re (IEEE: +inf for max_re > 0 =
//!   min_re, NaN for 0/0);
//! - `stiffness_ratio` = max |Re| / min |Re| over {Re lambda < -tol}, NaN if
//!   that set is empty;
//! - `neg_share` = #{Re lambda < -tol} / n;
//! - `spectral_radius` = rho;
//! - `euler_unstable_share` = #{|1 + lambda| > 1 + tol} / n, residual
//!   branch J_F only;
//! - `n_zero`: eigenvalues exactly 0 (structural ones and solved ones that
//!   are exactly 0.0).
//!
//! For an empty spectrum (n = 0) every real-valued field is NaN.

use serde::{Deserialize, Serialize};
use stiffness_fsutil::nonfinite;
use stiffness_spectrum::Spectrum;

use crate::model::JacobianKind;

/// The eigenvalue metrics of one Jacobian (field names are the output
/// schema; see the module documentation for the definitions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EigenMetrics {
    pub n: usize,
    pub n_zero: usize,
    #[serde(with = "nonfinite")]
    pub max_re: f64,
    #[serde(with = "nonfinite")]
    pub min_re: f64,
    #[serde(with = "nonfinite")]
    pub stiffness_index: f64,
    #[serde(with = "nonfinite")]
    pub stiffness_ratio: f64,
    #[serde(with = "nonfinite")]
    pub neg_share: f64,
    #[serde(with = "nonfinite")]
    pub spectral_radius: f64,
    #[serde(with = "nonfinite::option", default)]
    pub euler_unstable_share: Option<f64>,
    /// max |1 + lambda|, the largest forward-Euler amplification (residual kind).
    pub euler_amplification: Option<f64>,
}

impl EigenMetrics {
    /// Computes every metric of `spectrum` in two passes over its values;
    /// `euler_unstable_share` is `Some` only for [`JacobianKind::Residual`].
    pub fn from_spectrum(spectrum: &Spectrum, kind: JacobianKind) -> Self {
        let n = spectrum.n();
        let rho = spectrum.iter().map(|z| z.norm()).fold(0.0, f64::max);
        let tol = 1e-6 * rho.max(1.0);
        let mut max_re = f64::NEG_INFINITY;
        let mut min_re = f64::INFINITY;
        let (mut neg, mut neg_max_abs, mut neg_min_abs) = (0usize, 0.0_f64, f64::INFINITY);
        let mut unstable = 0usize;
        let mut amplification = 0.0_f64;
        for z in spectrum.iter() {
            max_re = max_re.max(z.re);
            min_re = min_re.min(z.re);
            if z.re < -tol {
                neg += 1;
                neg_max_abs = neg_max_abs.max(-z.re);
                neg_min_abs = neg_min_abs.min(-z.re);
            }
            let step = (z + 1.0).norm();
            amplification = amplification.max(step);
            if step > 1.0 + tol {
                unstable += 1;
            }
        }
        let share = |count: usize| count as f64 / n as f64;
        let (max_re, min_re, rho) = if n == 0 {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            // x + 0.0 turns -0.0 into +0.0: exact zeros count as +0.
            (max_re + 0.0, min_re + 0.0, rho)
        };
        Self {
            n,
            n_zero: spectrum.n_exact_zero(),
            max_re,
            min_re,
            stiffness_index: max_re / min_re,
            stiffness_ratio: if neg == 0 {
                f64::NAN
            } else {
                neg_max_abs / neg_min_abs
            },
            neg_share: share(neg),
            spectral_radius: rho,
            euler_unstable_share: (kind == JacobianKind::Residual).then(|| share(unstable)),
            euler_amplification: (kind == JacobianKind::Residual && n > 0).then_some(amplification),
        }
    }
}

/// Söderlind's metric (mu_max + mu_min) / 2, the mean of the upper and lower
/// logarithmic 2-norms, mu = eigenvalues of (J + J^T)/2 (negative =
/// contractive).
pub fn soderlind(mu_min: f64, mu_max: f64) -> f64 {
    0.5 * (mu_max + mu_min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_complex::Complex64;

    fn c(re: f64, im: f64) -> Complex64 {
        Complex64::new(re, im)
    }

    fn metrics(
        solved: &[Complex64],
        exact: &[(Complex64, usize)],
        kind: JacobianKind,
    ) -> EigenMetrics {
        EigenMetrics::from_spectrum(&Spectrum::new(solved.to_vec(), exact.to_vec()), kind)
    }

    #[test]
    fn straddling_spectrum() {
        // {2, -0.5, -4, 1 +- 3i, 0 x 3}: rho = 4, tol = 4e-6.
        let solved = [
            c(2.0, 0.0),
            c(-0.5, 0.0),
            c(-4.0, 0.0),
            c(1.0, 3.0),
            c(1.0, -3.0),
        ];
        let m = metrics(&solved, &[(c(0.0, 0.0), 3)], JacobianKind::Residual);
        assert_eq!((m.n, m.n_zero), (8, 3));
        assert_eq!((m.max_re, m.min_re), (2.0, -4.0));
        assert_eq!(m.stiffness_index, -0.5);
        assert_eq!(m.stiffness_ratio, 8.0);
        assert_eq!(m.neg_share, 2.0 / 8.0);
        assert_eq!(m.spectral_radius, 4.0);
        // |1 + lambda| > 1: 2 (3), -4 (3), 1 +- 3i (sqrt 13); not -0.5, not 0.
        assert_eq!(m.euler_unstable_share, Some(4.0 / 8.0));
        // max |1 + lambda| = |2 + 3i| = sqrt 13.
        assert_eq!(m.euler_amplification, Some(13f64.sqrt()));
        let block = metrics(&solved, &[(c(0.0, 0.0), 3)], JacobianKind::Block);
        assert_eq!(block.euler_unstable_share, None);
        assert_eq!(block.euler_amplification, None);
    }

    #[test]
    fn exact_zero_minimum_gives_plus_infinity() {
        // min_re = 0 (a -0.0 from the solver counts as +0.0), max_re > 0.
        let m = metrics(
            &[c(3.0, 0.0), c(-0.0, 0.0)],
            &[(c(0.0, 0.0), 2)],
            JacobianKind::Block,
        );
        assert_eq!(m.min_re.to_bits(), 0.0_f64.to_bits());
        assert_eq!(m.stiffness_index, f64::INFINITY);
        assert!(m.stiffness_ratio.is_nan());
        assert_eq!((m.neg_share, m.n_zero), (0.0, 3));
    }

    #[test]
    fn all_zero_spectrum() {
        let m = metrics(&[], &[(c(0.0, 0.0), 5)], JacobianKind::Residual);
        assert_eq!((m.n, m.n_zero, m.max_re, m.min_re), (5, 5, 0.0, 0.0));
        assert!(m.stiffness_index.is_nan() && m.stiffness_ratio.is_nan());
        assert_eq!(
            (m.neg_share, m.spectral_radius, m.euler_unstable_share),
            (0.0, 0.0, Some(0.0))
        );
    }

    #[test]
    fn tolerance_excludes_rounding_noise() {
        // rho = 2.5 -> tol = 2.5e-6: -1e-7 is not negative, |1 + 1e-7| is
        // stable, and so is |1 - 1| = 0; |1 - 2.5| = 1.5 is not.
        let m = metrics(
            &[c(-1e-7, 0.0), c(-2.5, 0.0), c(1e-7, 0.0), c(-1.0, 0.0)],
            &[],
            JacobianKind::Residual,
        );
        assert_eq!(m.neg_share, 0.5);
        assert_eq!(m.stiffness_ratio, 2.5);
        assert_eq!(m.euler_unstable_share, Some(0.25));
        assert_eq!(m.n_zero, 0);
        // Small spectra use tol = 1e-6 (rho < 1): -5e-7 is not negative.
        let small = metrics(&[c(-5e-7, 0.0), c(-0.5, 0.0)], &[], JacobianKind::Block);
        assert_eq!(small.neg_share, 0.5);
    }

    #[test]
    fn all_negative_and_all_positive() {
        let neg = metrics(&[c(-1.0, 0.0), c(-3.0, 0.0)], &[], JacobianKind::Block);
        assert_eq!(
            (neg.stiffness_index, neg.stiffness_ratio, neg.neg_share),
            (1.0 / 3.0, 3.0, 1.0)
        );
        let pos = metrics(&[c(1.0, 0.0), c(3.0, 0.0)], &[], JacobianKind::Block);
        assert_eq!(pos.stiffness_index, 3.0);
        assert!(pos.stiffness_ratio.is_nan());
        // max_re = 0 > min_re: index = -0.0.
        let half = metrics(&[c(-2.0, 0.0)], &[(c(0.0, 0.0), 1)], JacobianKind::Block);
        assert_eq!(half.stiffness_index, 0.0);
    }

    #[test]
    fn empty_spectrum_is_nan() {
        let m = metrics(&[], &[], JacobianKind::Residual);
        assert_eq!(m.n, 0);
        assert!(m.max_re.is_nan() && m.min_re.is_nan() && m.neg_share.is_nan());
        assert!(m.spectral_radius.is_nan() && m.euler_unstable_share.unwrap().is_nan());
    }

    #[test]
    fn json_round_trip_with_non_finite_values() {
        let m = metrics(&[c(3.0, 0.0)], &[(c(0.0, 0.0), 1)], JacobianKind::Residual);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""stiffness_index":"inf""#), "{json}");
        assert!(json.contains(r#""stiffness_ratio":"nan""#), "{json}");
        let back: EigenMetrics = serde_json::from_str(&json).unwrap();
        assert_eq!(back.stiffness_index, f64::INFINITY);
        assert!(back.stiffness_ratio.is_nan());
        assert_eq!(
            (back.n, back.n_zero, back.max_re, back.euler_unstable_share),
            (m.n, m.n_zero, m.max_re, m.euler_unstable_share)
        );
        let block = metrics(&[c(-1.0, 0.0)], &[], JacobianKind::Block);
        let json = serde_json::to_string(&block).unwrap();
        assert!(json.contains(r#""euler_unstable_share":null"#));
        assert_eq!(serde_json::from_str::<EigenMetrics>(&json).unwrap(), block);
    }

    #[test]
    fn soderlind_is_the_mean() {
        assert_eq!(soderlind(-3.0, 1.0), -1.0);
    }
}
