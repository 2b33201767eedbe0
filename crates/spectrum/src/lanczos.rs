//! Extreme eigenvalues of symmetric operators: dense (faer) and matrix-free
//! Lanczos with full reorthogonalisation. Used for the symmetric part
//! (J + J^T)/2 (Söderlind metric) and for A^T A (largest singular value).

use crate::{Error, Result};
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self, ComputeEigenvectors};
use faer::{Mat, MatRef, Par};
use serde::{Deserialize, Serialize};
use stiffness_fsutil::nonfinite;

/// Extreme eigenvalues mu_min <= mu_max of the symmetric part (J + J^T)/2.
/// Their mean is the Söderlind metric (`soderlind` in the analysis crate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SymExtremes {
    #[serde(with = "nonfinite")]
    pub mu_min: f64,
    #[serde(with = "nonfinite")]
    pub mu_max: f64,
}

/// Options of the Lanczos iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanczosOptions {
    /// Converged when the Ritz residual |beta_k s_k| of each required end
    /// is at most `tol * ||op||` (||op|| estimated by the largest |Ritz
    /// value|). For a symmetric operator the Ritz value is then within that
    /// residual of an eigenvalue.
    pub tol: f64,
    /// Iteration cap (the iteration also stops at the dimension n).
    pub max_iter: usize,
    /// Seed of the pseudo-random start vector.
    pub seed: u64,
}

impl Default for LanczosOptions {
    /// `tol = 1e-10`, `max_iter = 500`, a fixed seed.
    fn default() -> Self {
        Self {
            tol: 1e-10,
            max_iter: 500,
            seed: 0x5eed_1a4c_205f_00d1,
        }
    }
}

/// mu_min, mu_max of (J + J^T)/2 for a dense square J (faer self-adjoint
/// eigenvalues, single-threaded).
pub fn sym_part_extremes_dense(j: MatRef<'_, f64>) -> Result<SymExtremes> {
    let (rows, cols) = j.shape();
    if rows != cols {
        return Err(Error::NotSquare { rows, cols });
    }
    if rows == 0 {
        return Err(Error::Shape(
            "empty matrix has no extreme eigenvalues".into(),
        ));
    }
    if !j.is_all_finite() {
        return Err(Error::NonFinite);
    }
    let sym = Mat::from_fn(rows, rows, |a, b| 0.5 * (j[(a, b)] + j[(b, a)]));
    let mu = self_adjoint_eigenvalues(sym.as_ref())?;
    Ok(SymExtremes {
        mu_min: mu[0],
        mu_max: mu[rows - 1],
    })
}

/// mu_min, mu_max of (J + J^T)/2 for an n x n J given only through
/// `matvec` (y = J x) and `rmatvec` (y = J^T x), by Lanczos with full
/// reorthogonalisation. Both ends must pass the residual test of
/// [`LanczosOptions::tol`]; otherwise [`Error::LanczosNotConverged`] (fall
/// back to [`sym_part_extremes_dense`]).
pub fn sym_part_extremes_lanczos(
    n: usize,
    matvec: &dyn Fn(&[f64], &mut [f64]),
    rmatvec: &dyn Fn(&[f64], &mut [f64]),
    opts: &LanczosOptions,
) -> Result<SymExtremes> {
    let mut tmp = vec![0.0; n];
    let mut op = |x: &[f64], y: &mut [f64]| {
        matvec(x, y);
        rmatvec(x, &mut tmp);
        y.iter_mut()
            .zip(&tmp)
            .for_each(|(y, t)| *y = 0.5 * (*y + t));
    };
    symmetric_extremes_lanczos(n, &mut op, opts)
}

/// The extreme eigenvalues of a symmetric n x n operator given as
/// `op` (y = S x), e.g. S = (J + J^T)/2 applied in one fused product, by
/// Lanczos with full reorthogonalisation; both ends must pass the residual
/// test of [`LanczosOptions::tol`], else [`Error::LanczosNotConverged`].
pub fn symmetric_extremes_lanczos(
    n: usize,
    op: &mut dyn FnMut(&[f64], &mut [f64]),
    opts: &LanczosOptions,
) -> Result<SymExtremes> {
    let ritz = lanczos(n, op, opts, Ends::Both)?;
    Ok(SymExtremes {
        mu_min: ritz.min,
        mu_max: ritz.max,
    })
}

/// Which ends of the spectrum must converge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ends {
    Both,
    Top,
}

/// Extreme Ritz values of a converged Lanczos run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ritz {
    pub min: f64,
    pub max: f64,
}

/// Lanczos on the symmetric operator `op` (y = op x, dimension n) with full
/// reorthogonalisation (modified Gram-Schmidt, twice). The tridiagonal
/// T_k is diagonalised every few steps; the Ritz residual of the pair
/// (theta_i, y_i) is |beta_k * y_i[k-1]|. Stops on convergence of the
/// required `ends`, on an invariant subspace (beta_k ~ 0: the Ritz values
/// are exact eigenvalues; with a random start vector all distinct
/// eigenvalues are represented) or at the iteration cap (error).
pub(crate) fn lanczos(
    n: usize,
    op: &mut dyn FnMut(&[f64], &mut [f64]),
    opts: &LanczosOptions,
    ends: Ends,
) -> Result<Ritz> {
    if n == 0 {
        return Err(Error::Shape(
            "empty operator has no extreme eigenvalues".into(),
        ));
    }
    let k_max = opts.max_iter.clamp(1, n);
    let mut basis = vec![start_vector(n, opts.seed)];
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    let mut w = vec![0.0; n];
    let (mut scale, mut next_check) = (0.0_f64, 1);
    loop {
        let k = basis.len();
        let v = &basis[k - 1];
        op(v, &mut w);
        alpha.push(dot(&w, v));
        orthogonalise(&basis, &mut w);
        orthogonalise(&basis, &mut w);
        let b = dot(&w, &w).sqrt();
        scale = scale.max(alpha[k - 1].abs()).max(b);
        let breakdown = b <= f64::EPSILON * scale;
        if breakdown || k == k_max || k >= next_check {
            let (ritz, residual) = ritz_extremes(&alpha, &beta, b, ends)?;
            if residual <= opts.tol {
                return Ok(ritz);
            }
            if breakdown || k == k_max {
                return Err(Error::LanczosNotConverged {
                    iterations: k,
                    residual,
                    tol: opts.tol,
                });
            }
            next_check = k + (k / 8).max(8);
        }
        beta.push(b);
        basis.push(w.iter().map(|x| x / b).collect());
    }
}

/// Extreme eigenpairs of the Lanczos tridiagonal (diagonal `alpha`,
/// off-diagonal `beta`, next coefficient `b`) and the largest relative Ritz
/// residual |b * s_last| / max|theta| among the required ends (0 when T is
/// zero and b is zero).
fn ritz_extremes(alpha: &[f64], beta: &[f64], b: f64, ends: Ends) -> Result<(Ritz, f64)> {
    let k = alpha.len();
    let t = Mat::from_fn(k, k, |i, j| match i.abs_diff(j) {
        0 => alpha[i],
        1 => beta[i.min(j)],
        _ => 0.0,
    });
    let (theta, s) = self_adjoint_eigen(t.as_ref())?;
    let norm = theta[0].abs().max(theta[k - 1].abs());
    let res_max = (b * s[(k - 1, k - 1)]).abs();
    let res_min = (b * s[(k - 1, 0)]).abs();
    let res = match ends {
        Ends::Both => res_max.max(res_min),
        Ends::Top => res_max,
    };
    let relative = if res == 0.0 { 0.0 } else { res / norm };
    let ritz = Ritz {
        min: theta[0],
        max: theta[k - 1],
    };
    Ok((ritz, relative))
}

/// Eigenvalues (nondecreasing) of a symmetric matrix (lower half read).
fn self_adjoint_eigenvalues(a: MatRef<'_, f64>) -> Result<Vec<f64>> {
    let n = a.nrows();
    let mut s = Diag::<f64>::zeros(n);
    let req = evd::self_adjoint_evd_scratch::<f64>(
        n,
        ComputeEigenvectors::No,
        Par::Seq,
        Default::default(),
    );
    evd::self_adjoint_evd(
        a,
        s.as_mut(),
        None,
        Par::Seq,
        MemStack::new(&mut MemBuffer::new(req)),
        Default::default(),
    )
    .map_err(|_| Error::EigenNoConvergence { size: n })?;
    Ok(s.column_vector().iter().copied().collect())
}

/// Eigenvalues (nondecreasing) and eigenvectors of a symmetric matrix.
fn self_adjoint_eigen(a: MatRef<'_, f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let n = a.nrows();
    let mut s = Diag::<f64>::zeros(n);
    let mut u = Mat::<f64>::zeros(n, n);
    let req = evd::self_adjoint_evd_scratch::<f64>(
        n,
        ComputeEigenvectors::Yes,
        Par::Seq,
        Default::default(),
    );
    evd::self_adjoint_evd(
        a,
        s.as_mut(),
        Some(u.as_mut()),
        Par::Seq,
        MemStack::new(&mut MemBuffer::new(req)),
        Default::default(),
    )
    .map_err(|_| Error::EigenNoConvergence { size: n })?;
    Ok((s.column_vector().iter().copied().collect(), u))
}

/// Unit start vector with splitmix64 entries uniform in [-1, 1).
pub(crate) fn start_vector(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            2.0 * ((z >> 11) as f64 / (1u64 << 53) as f64) - 1.0
        })
        .collect();
    let norm = dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// w -= sum_j (v_j . w) v_j over the basis, one modified Gram-Schmidt sweep.
fn orthogonalise(basis: &[Vec<f64>], w: &mut [f64]) {
    for v in basis {
        let h = dot(v, w);
        w.iter_mut().zip(v).for_each(|(w, v)| *w -= h * v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_matrix, random_sparse, Rng};

    fn apply(a: MatRef<'_, f64>) -> impl Fn(&[f64], &mut [f64]) + '_ {
        move |x, y| {
            for (i, yi) in y.iter_mut().enumerate() {
                *yi = (0..a.ncols()).map(|j| a[(i, j)] * x[j]).sum();
            }
        }
    }

    #[test]
    fn lanczos_matches_dense_on_random_nonsymmetric() {
        let mut rng = Rng::new(21);
        for (n, density) in [(50, 0.3), (120, 0.1), (250, 0.05), (400, 0.02)] {
            let j = random_sparse(&mut rng, n, n, density);
            let dense = sym_part_extremes_dense(j.as_ref()).unwrap();
            let mv = apply(j.as_ref());
            let rmv = apply(j.transpose());
            let lz = sym_part_extremes_lanczos(n, &mv, &rmv, &LanczosOptions::default()).unwrap();
            let scale = dense.mu_max.abs().max(dense.mu_min.abs());
            assert!(
                (lz.mu_max - dense.mu_max).abs() <= 1e-9 * scale,
                "n={n} max {} vs {}",
                lz.mu_max,
                dense.mu_max
            );
            assert!(
                (lz.mu_min - dense.mu_min).abs() <= 1e-9 * scale,
                "n={n} min {} vs {}",
                lz.mu_min,
                dense.mu_min
            );
        }
    }

    #[test]
    fn lanczos_reports_non_convergence() {
        let mut rng = Rng::new(22);
        let j = random_matrix(&mut rng, 200, 200);
        let opts = LanczosOptions {
            max_iter: 5,
            ..Default::default()
        };
        let (mv, rmv) = (apply(j.as_ref()), apply(j.transpose()));
        match sym_part_extremes_lanczos(200, &mv, &rmv, &opts) {
            Err(Error::LanczosNotConverged {
                iterations: 5,
                residual,
                ..
            }) => assert!(residual > opts.tol),
            other => panic!("expected non-convergence, got {other:?}"),
        }
    }

    #[test]
    fn lanczos_on_zero_and_low_rank_operators() {
        let zero = |_: &[f64], y: &mut [f64]| y.fill(0.0);
        let z = sym_part_extremes_lanczos(30, &zero, &zero, &LanczosOptions::default()).unwrap();
        assert_eq!((z.mu_min, z.mu_max), (0.0, 0.0));
        // J = diag(3, -2, 0, ..., 0): invariant subspace after three steps.
        let diag = |x: &[f64], y: &mut [f64]| {
            y.fill(0.0);
            y[0] = 3.0 * x[0];
            y[1] = -2.0 * x[1];
        };
        let d = sym_part_extremes_lanczos(40, &diag, &diag, &LanczosOptions::default()).unwrap();
        assert!(
            (d.mu_max - 3.0).abs() < 1e-12 && (d.mu_min + 2.0).abs() < 1e-12,
            "{d:?}"
        );
    }

    #[test]
    fn dense_extremes_on_hand_made_matrix() {
        // J = [[1, 4], [0, 1]]: (J + J^T)/2 = [[1, 2], [2, 1]], eigenvalues -1, 3.
        let j = Mat::from_fn(2, 2, |i, k| [[1.0, 4.0], [0.0, 1.0]][i][k]);
        let e = sym_part_extremes_dense(j.as_ref()).unwrap();
        assert!((e.mu_min + 1.0).abs() < 1e-14 && (e.mu_max - 3.0).abs() < 1e-14);
        assert!(matches!(
            sym_part_extremes_dense(Mat::<f64>::zeros(2, 3).as_ref()),
            Err(Error::NotSquare { .. })
        ));
    }
}
