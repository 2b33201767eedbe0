//! Dense real eigenvalues: `gebal`-style isolation, then faer's real Schur
//! (Hessenberg reduction + multishift QR) on the remaining core, in f64;
//! cores of at most 16 (`small::MAX_SMALL`) rows go to the allocation-free
//! `small` solver instead.

use crate::isolate::Isolation;
use crate::small;
use crate::{Error, Result};
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self, ComputeEigenvectors};
use faer::{Mat, MatRef, Par};
use num_complex::Complex64;

/// All n eigenvalues of the real square matrix `a`, with multiplicity.
///
/// First the permutation step of LAPACK `gebal` isolates indices whose row
/// (or column) has no nonzero off-diagonal entry within the remaining set;
/// their diagonal entries are exact eigenvalues (a zero row gives an exact
/// 0.0, as LAPACK `geev` returns it). Only the remaining core is solved by
/// faer (`evd_real`, no eigenvectors, no scaling), or, up to 16
/// (`small::MAX_SMALL`) rows, by Householder Hessenberg reduction and
/// Francis double-shift QR without allocation (faer if that does not
/// converge). Order: isolated values first, then the core's. `par` is
/// faer's parallelism for the core solve; use [`Par::Seq`] when the caller
/// already parallelises across problems.
/// Memory: faer works on its own copy of the core (8 m^2 bytes), plus a
/// gathered copy of the core when anything was isolated.
///
/// Errors: [`Error::NotSquare`], [`Error::NonFinite`],
/// [`Error::EigenNoConvergence`].
pub fn eigenvalues(a: MatRef<'_, f64>, par: Par) -> Result<Vec<Complex64>> {
    let mut out = Vec::with_capacity(a.nrows());
    EigenSolver::new(par).solve(a, &mut out)?;
    Ok(out)
}

/// Reusable workspace for many solves (the paper-compatible slices).
#[derive(Debug)]
pub(crate) struct EigenSolver {
    par: Par,
    isolation: Isolation,
    /// Row-major copy of a small core, reused across solves.
    small_core: Vec<f64>,
}

impl EigenSolver {
    pub fn new(par: Par) -> Self {
        Self {
            par,
            isolation: Isolation::default(),
            small_core: Vec::with_capacity(small::MAX_SMALL * small::MAX_SMALL),
        }
    }

    /// Appends the eigenvalues of `a` to `out` (see [`eigenvalues`]).
    pub fn solve(&mut self, a: MatRef<'_, f64>, out: &mut Vec<Complex64>) -> Result<()> {
        let (rows, cols) = a.shape();
        if rows != cols {
            return Err(Error::NotSquare { rows, cols });
        }
        if !a.is_all_finite() {
            return Err(Error::NonFinite);
        }
        self.isolation.run(a);
        out.extend(
            self.isolation
                .isolated
                .iter()
                .map(|&i| Complex64::new(a[(i, i)], 0.0)),
        );
        let idx = &self.isolation.core;
        let m = idx.len();
        if m == 0 {
            return Ok(());
        }
        if m <= small::MAX_SMALL {
            self.small_core.clear();
            self.small_core.extend(
                idx.iter()
                    .flat_map(|&i| idx.iter().map(move |&j| a[(i, j)])),
            );
            if small::eigenvalues(&mut self.small_core, m, out) {
                return Ok(());
            }
        }
        if m == rows {
            // Nothing isolated: no copy (faer copies once more internally).
            return solve_core(a, self.par, out);
        }
        let core = Mat::from_fn(m, m, |i, j| a[(idx[i], idx[j])]);
        solve_core(core.as_ref(), self.par, out)
    }
}

/// faer's real eigenvalue solve of a full square matrix, appended to `out`.
fn solve_core(a: MatRef<'_, f64>, par: Par, out: &mut Vec<Complex64>) -> Result<()> {
    let m = a.nrows();
    let mut re = Diag::<f64>::zeros(m);
    let mut im = Diag::<f64>::zeros(m);
    let no = ComputeEigenvectors::No;
    let req = evd::evd_scratch::<f64>(m, no, no, par, Default::default());
    let mut mem = MemBuffer::new(req);
    evd::evd_real(
        a,
        re.as_mut(),
        im.as_mut(),
        None,
        None,
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|_| Error::EigenNoConvergence { size: m })?;
    let (re, im) = (re.column_vector(), im.column_vector());
    out.extend((0..m).map(|i| Complex64::new(re[i], im[i])));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multiset_distance;
    use crate::testutil::{plain_faer_eigenvalues, random_matrix, scale, Rng};

    /// P M P^T with M = [[T1, X, Y], [0, B, Z], [0, 0, T2]], T1 (t1 x t1)
    /// and T2 (t2 x t2) upper triangular, B dense (m x m), P a random
    /// permutation; a diagonal entry of T1, T2 is 0 with probability
    /// `p_zero`. Also returns the exact spectrum diag(T1), diag(T2) U eig(B)
    /// (eig(B) by faer on B itself).
    fn planted(
        rng: &mut Rng,
        t1: usize,
        m: usize,
        t2: usize,
        p_zero: f64,
    ) -> (Mat<f64>, Vec<Complex64>) {
        let n = t1 + m + t2;
        let block = |i: usize| usize::from(i >= t1) + usize::from(i >= t1 + m);
        let zero_diag: Vec<bool> = (0..n).map(|_| rng.uniform() < p_zero).collect();
        let m_mat = Mat::from_fn(n, n, |i, j| {
            let (bi, bj) = (block(i), block(j));
            let triangular = bi != 1 || bj != 1;
            if bi > bj
                || (triangular && bi == bj && i > j)
                || (i == j && triangular && zero_diag[i])
            {
                0.0
            } else {
                rng.normal()
            }
        });
        let b = m_mat.as_ref().submatrix(t1, t1, m, m).to_owned();
        let mut exact = plain_faer_eigenvalues(&b);
        exact.extend(
            (0..n)
                .filter(|&i| block(i) != 1)
                .map(|i| Complex64::new(m_mat[(i, i)], 0.0)),
        );
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        (Mat::from_fn(n, n, |i, j| m_mat[(perm[i], perm[j])]), exact)
    }

    const SHAPES: [(usize, usize, usize); 7] = [
        (0, 12, 0),
        (5, 0, 0),
        (0, 0, 6),
        (4, 9, 7),
        (10, 3, 1),
        (1, 20, 13),
        (3, 1, 3),
    ];

    #[test]
    fn isolation_matches_plain_faer_on_planted_structure() {
        // Nonzero random diagonals: simple eigenvalues, well conditioned.
        let mut rng = Rng::new(1);
        for (t1, m, t2) in SHAPES {
            let (a, _) = planted(&mut rng, t1, m, t2, 0.0);
            let ours = eigenvalues(a.as_ref(), Par::Seq).unwrap();
            let reference = plain_faer_eigenvalues(&a);
            let d = multiset_distance(&ours, &reference);
            assert!(d <= 1e-10 * scale(&reference), "{t1} {m} {t2}: {d}");
        }
    }

    #[test]
    fn isolation_is_exact_on_planted_zeros() {
        // Repeated zero diagonals make nilpotent (defective) parts, on which
        // an unreduced solve is only accurate to eps^(1/k); isolation
        // returns them exactly.
        let mut rng = Rng::new(6);
        for (t1, m, t2) in SHAPES {
            let (a, exact) = planted(&mut rng, t1, m, t2, 0.5);
            let ours = eigenvalues(a.as_ref(), Par::Seq).unwrap();
            let d = multiset_distance(&ours, &exact);
            assert!(d <= 1e-10 * scale(&exact), "{t1} {m} {t2}: {d}");
            let zeros =
                |v: &[Complex64]| v.iter().filter(|z| **z == Complex64::new(0.0, 0.0)).count();
            assert_eq!(zeros(&ours), zeros(&exact), "{t1} {m} {t2}");
            let mut iso = Isolation::default();
            iso.run(a.as_ref());
            assert!(iso.core.len() <= m, "core {} > {m}", iso.core.len());
        }
    }

    #[test]
    fn isolation_matches_plain_faer_on_random_dense() {
        let mut rng = Rng::new(2);
        for n in [1, 2, 3, 10, 40] {
            let a = random_matrix(&mut rng, n, n);
            let ours = eigenvalues(a.as_ref(), Par::Seq).unwrap();
            let reference = plain_faer_eigenvalues(&a);
            assert!(multiset_distance(&ours, &reference) <= 1e-10 * scale(&reference));
        }
    }

    #[test]
    fn zero_rows_give_exact_zeros() {
        // Rows 1 and 3 zero: exactly two zero eigenvalues, exactly 0.0.
        let mut rng = Rng::new(3);
        let a = Mat::from_fn(
            6,
            6,
            |i, _| if i == 1 || i == 3 { 0.0 } else { rng.normal() },
        );
        let ev = eigenvalues(a.as_ref(), Par::Seq).unwrap();
        assert_eq!(ev.len(), 6);
        assert_eq!(ev.iter().filter(|z| z.re == 0.0 && z.im == 0.0).count(), 2);
        let zero = eigenvalues(Mat::<f64>::zeros(5, 5).as_ref(), Par::Seq).unwrap();
        assert_eq!(zero, vec![Complex64::new(0.0, 0.0); 5]);
        assert!(eigenvalues(Mat::<f64>::zeros(0, 0).as_ref(), Par::Seq)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn errors_are_reported() {
        let rect = Mat::<f64>::zeros(2, 3);
        assert_eq!(
            eigenvalues(rect.as_ref(), Par::Seq),
            Err(Error::NotSquare { rows: 2, cols: 3 })
        );
        let mut nan = Mat::<f64>::identity(3, 3);
        nan[(0, 1)] = f64::NAN;
        assert_eq!(eigenvalues(nan.as_ref(), Par::Seq), Err(Error::NonFinite));
    }

    #[test]
    fn parallel_solve_agrees() {
        let mut rng = Rng::new(4);
        let a = random_matrix(&mut rng, 60, 60);
        let seq = eigenvalues(a.as_ref(), Par::Seq).unwrap();
        let par = eigenvalues(a.as_ref(), Par::rayon(2)).unwrap();
        assert!(multiset_distance(&seq, &par) <= 1e-10 * scale(&seq));
    }

    /// Timing of the dense solve (release, one thread). Run with
    /// `cargo test --release -p stiffness-spectrum -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_dense_solve() {
        let mut rng = Rng::new(5);
        for n in [256, 512, 1024, 2048] {
            let a = random_matrix(&mut rng, n, n);
            let t = std::time::Instant::now();
            let ev = eigenvalues(a.as_ref(), Par::Seq).unwrap();
            let s = t.elapsed().as_secs_f64();
            let gflops = 13.0 * (n as f64).powi(3) / s / 1e9;
            println!(
                "n = {n}: {s:.3} s ({gflops:.1} GFLOP/s at 13 n^3), {} values",
                ev.len()
            );
        }
    }
}
