//! Singular values of (possibly non-square) Jacobians.

use crate::lanczos::{lanczos, Ends, LanczosOptions};
use crate::{Error, Result};
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::svd::{self, ComputeSvdVectors};
use faer::{MatRef, Par};
use serde::{Deserialize, Serialize};
use stiffness_fsutil::nonfinite;

/// All min(m, n) singular values of the m x n matrix `a`, nonincreasing
/// (faer SVD without vectors, single-threaded).
pub fn singular_values(a: MatRef<'_, f64>) -> Result<Vec<f64>> {
    let (rows, cols) = a.shape();
    if !a.is_all_finite() {
        return Err(Error::NonFinite);
    }
    let mut s = Diag::<f64>::zeros(rows.min(cols));
    let no = ComputeSvdVectors::No;
    let req = svd::svd_scratch::<f64>(rows, cols, no, no, Par::Seq, Default::default());
    svd::svd(
        a,
        s.as_mut(),
        None,
        None,
        Par::Seq,
        MemStack::new(&mut MemBuffer::new(req)),
        Default::default(),
    )
    .map_err(|_| Error::SvdNoConvergence { rows, cols })?;
    Ok(s.column_vector().iter().copied().collect())
}

/// Extreme singular values of a Jacobian and their ratio
/// sigma_max / sigma_min (IEEE division: +inf when sigma_min = 0 < sigma_max,
/// NaN for the zero matrix).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SingularSummary {
    #[serde(with = "nonfinite")]
    pub sigma_max: f64,
    #[serde(with = "nonfinite")]
    pub sigma_min: f64,
    #[serde(with = "nonfinite")]
    pub sigma_ratio: f64,
}

impl SingularSummary {
    /// Summary of all min(m, n) singular values `sigma`. `rank_bound` is the
    /// structural hook: if the caller has proved rank <= r < min(m, n)
    /// (= `sigma.len()`), then sigma_min = 0 exactly, whatever rounding made
    /// of it. All NaN for an empty `sigma`.
    pub fn from_values(sigma: &[f64], rank_bound: Option<usize>) -> Self {
        if sigma.is_empty() {
            return Self {
                sigma_max: f64::NAN,
                sigma_min: f64::NAN,
                sigma_ratio: f64::NAN,
            };
        }
        let sigma_max = sigma.iter().copied().fold(0.0, f64::max);
        let sigma_min = match rank_bound {
            Some(r) if r < sigma.len() => 0.0,
            _ => sigma.iter().copied().fold(f64::INFINITY, f64::min),
        };
        Self {
            sigma_max,
            sigma_min,
            sigma_ratio: sigma_max / sigma_min,
        }
    }

    /// Summary of the dense matrix `a` (see [`singular_values`] and
    /// [`SingularSummary::from_values`]).
    pub fn dense(a: MatRef<'_, f64>, rank_bound: Option<usize>) -> Result<Self> {
        Ok(Self::from_values(&singular_values(a)?, rank_bound))
    }
}

/// sigma_max of an m x n matrix A given by `matvec` (y = A x, x of length
/// `cols`, y of length `rows`) and `rmatvec` (y = A^T x), as the square root
/// of the largest eigenvalue of A^T A by Lanczos. Only the top end has to
/// pass the residual test; the eigenvalue of A^T A is then accurate to
/// `opts.tol` relative, sigma_max to about half of that.
/// Errors: [`Error::LanczosNotConverged`] (fall back to
/// [`singular_values`]).
pub fn sigma_max_lanczos(
    rows: usize,
    cols: usize,
    matvec: &dyn Fn(&[f64], &mut [f64]),
    rmatvec: &dyn Fn(&[f64], &mut [f64]),
    opts: &LanczosOptions,
) -> Result<f64> {
    let mut tmp = vec![0.0; rows];
    let mut op = |x: &[f64], y: &mut [f64]| {
        matvec(x, &mut tmp);
        rmatvec(&tmp, y);
    };
    let ritz = lanczos(cols, &mut op, opts, Ends::Top)?;
    Ok(ritz.max.max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_matrix, Rng};
    use faer::Mat;

    #[test]
    fn singular_values_square_to_eigenvalues_of_gram_matrix() {
        let mut rng = Rng::new(31);
        for (m, n) in [(7, 7), (12, 5), (5, 12), (40, 25)] {
            let a = random_matrix(&mut rng, m, n);
            let sv = singular_values(a.as_ref()).unwrap();
            assert_eq!(sv.len(), m.min(n));
            let gram = if m >= n {
                a.transpose() * &a
            } else {
                &a * a.transpose()
            };
            let mut ev: Vec<f64> = gram.self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
            ev.reverse();
            for (s, e) in sv.iter().zip(&ev) {
                assert!(
                    (s * s - e).abs() <= 1e-11 * ev[0],
                    "{m}x{n}: {} vs {e}",
                    s * s
                );
            }
        }
    }

    #[test]
    fn summary_with_rank_bound_and_degenerate_cases() {
        let s = SingularSummary::from_values(&[4.0, 2.0, 1e-17], None);
        assert_eq!((s.sigma_max, s.sigma_min), (4.0, 1e-17));
        let s = SingularSummary::from_values(&[4.0, 2.0, 1e-17], Some(2));
        assert_eq!(
            (s.sigma_max, s.sigma_min, s.sigma_ratio),
            (4.0, 0.0, f64::INFINITY)
        );
        let s = SingularSummary::from_values(&[4.0, 2.0], Some(2));
        assert_eq!(s.sigma_ratio, 2.0);
        let z = SingularSummary::dense(Mat::<f64>::zeros(3, 5).as_ref(), None).unwrap();
        assert_eq!((z.sigma_max, z.sigma_min), (0.0, 0.0));
        assert!(z.sigma_ratio.is_nan());
        assert!(SingularSummary::from_values(&[], None).sigma_max.is_nan());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SingularSummary>(&json).unwrap(), s);
    }

    #[test]
    fn lanczos_sigma_max_matches_dense() {
        let mut rng = Rng::new(32);
        for (m, n) in [(60, 30), (30, 60), (150, 150)] {
            let a = random_matrix(&mut rng, m, n);
            let dense = singular_values(a.as_ref()).unwrap()[0];
            let mv = |x: &[f64], y: &mut [f64]| {
                for (i, yi) in y.iter_mut().enumerate() {
                    *yi = (0..n).map(|j| a[(i, j)] * x[j]).sum();
                }
            };
            let rmv = |x: &[f64], y: &mut [f64]| {
                for (j, yj) in y.iter_mut().enumerate() {
                    *yj = (0..m).map(|i| a[(i, j)] * x[i]).sum();
                }
            };
            let lz = sigma_max_lanczos(m, n, &mv, &rmv, &LanczosOptions::default()).unwrap();
            assert!(
                (lz - dense).abs() <= 1e-9 * dense,
                "{m}x{n}: {lz} vs {dense}"
            );
        }
    }
}
