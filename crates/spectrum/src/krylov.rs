//! Extreme eigenvalues of a real operator known only through `y = A x`:
//! Krylov-Schur (Stewart 2001), the thick-restart form of implicitly
//! restarted Arnoldi, in real arithmetic (METHOD.md section 8).
//!
//! The method keeps a Krylov decomposition A V_k = V_k S + v_{k+1} b^T with
//! orthonormal V (n x k) and a small k x k matrix S; Arnoldi extends it to
//! A V_m = V_m H_m + beta v_{m+1} e_m^T. The Ritz pairs (theta, V_m y) of
//! H_m have residual ||A V_m y - theta V_m y|| = |beta y_m| (estimated
//! residual). At a restart the wanted Ritz vectors are kept: an orthonormal
//! basis Q of span{Re y, Im y : theta wanted} is an invariant subspace of
//! H_m, so V_m Q, S = Q^T H_m Q and b = beta Q^T e_m form a Krylov
//! decomposition again (Stewart's; with the Schur vectors of the wanted
//! values it is exactly what Krylov-Schur keeps, and implicitly restarted
//! Arnoldi with exact shifts keeps the same subspace; Morgan 1996).
//!
//! One Krylov space serves every [`Target`] at once: the space of A is the
//! space of A + s I, so the rightmost, leftmost, largest-modulus and
//! largest |s + lambda| eigenvalues are all read from the same Ritz values;
//! the restart keeps the best few of each.
//!
//! **Evidence.** Every reported eigenvalue carries the *true* residual
//! ||A x - theta x|| / ||x|| of its Ritz vector, from fresh applications of
//! the operator after the iteration (not the estimate, which rounding in a
//! restart could make optimistic), and whether it meets the tolerance. For a
//! normal operator the eigenvalue is then within that residual of an exact
//! one; for a non-normal one within residual x its condition number. A
//! target that does not converge is reported as such with its residual,
//! never as an exact value.
//!
//! **Cost.** The basis starts short (`dim` vectors) and grows to `max_dim`
//! only when the restarts do not converge; the Ritz values are checked every
//! `check_every` steps, so a run ends where it has converged, not at the end
//! of a cycle. Memory: (max_dim + 1) vectors of length n.

use crate::lanczos::start_vector;
use crate::{Error, Result};
use faer::linalg::matmul::matmul;
use faer::prelude::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use num_complex::Complex64;

/// The iteration stops when every target's *estimated* residual is below
/// this fraction of the tolerance, and then accepts a target when its *true*
/// residual is below the tolerance: with an operator that rounds (float32
/// JVPs) the true residual has a floor at the rounding level, which the
/// estimate of the Arnoldi relation does not see, so the margin keeps a
/// converged Ritz pair from being rejected by that rounding.
pub const STOP_MARGIN: f64 = 0.1;

/// Which extreme eigenvalue to find.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Largest real part (rightmost).
    MaxRe,
    /// Smallest real part (leftmost).
    MinRe,
    /// Largest modulus (the spectral radius).
    MaxModulus,
    /// Largest |shift + lambda|: with shift 1 and A = J_F, the largest
    /// amplification of a forward-Euler step (h = 1).
    MaxShiftedModulus(f64),
}

impl Target {
    /// Larger is better.
    fn score(self, z: Complex64) -> f64 {
        match self {
            Target::MaxRe => z.re,
            Target::MinRe => -z.re,
            Target::MaxModulus => z.norm(),
            Target::MaxShiftedModulus(s) => (z + s).norm(),
        }
    }
}

/// Options of [`krylov_schur`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KrylovOptions {
    /// A target is converged when the true residual of its Ritz pair is at
    /// most `tol * scale` (the iteration runs until the estimated residuals
    /// are below [`STOP_MARGIN`] of that), scale = the largest |Ritz value|
    /// (an estimate of the spectral radius, at least `f64::MIN_POSITIVE`).
    pub tol: f64,
    /// Basis size m of the first cycles (capped at `max_dim` and n).
    pub dim: usize,
    /// Largest basis size (capped at n); memory is (max_dim + 1) n f64.
    /// After `grow_after` restarts without convergence the basis grows from
    /// `dim` to this: a clustered extreme that a short basis separates only
    /// over hundreds of restarts is separated by a longer one in a few, while
    /// the common case keeps the cheaper orthogonalisation of a short basis.
    pub max_dim: usize,
    /// Restarts before the basis grows to `max_dim`.
    pub grow_after: usize,
    /// The Ritz values are checked for convergence every `check_every`
    /// expansion steps (eigenvalues of an m x m matrix, m <= max_dim: cheap
    /// beside an operator application), so a run stops as soon as it has
    /// converged instead of at the end of a cycle.
    pub check_every: usize,
    /// Restart cap; past it the unconverged targets are reported as such.
    pub max_restarts: usize,
    /// Seed of the pseudo-random start vector.
    pub seed: u64,
    /// Threads of the orthogonalisation and restart products.
    pub par: Par,
}

impl Default for KrylovOptions {
    /// `tol = 1e-10`, `dim = 48` growing to `max_dim = 96` after 16
    /// restarts, checks every 16 steps, `max_restarts = 200`, one thread.
    fn default() -> Self {
        Self {
            tol: 1e-10,
            dim: 48,
            max_dim: 96,
            grow_after: 16,
            check_every: 16,
            max_restarts: 200,
            seed: 0x6b72_796c_6f76_5f73,
            par: Par::Seq,
        }
    }
}

/// One reported extreme eigenvalue and its evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RitzEstimate {
    pub value: Complex64,
    /// True relative residual ||A x - value x|| / (||x|| scale).
    pub residual: f64,
    /// `residual <= tol`.
    pub converged: bool,
}

/// What [`krylov_schur`] found, target by target, and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct KrylovReport {
    /// One estimate per requested target, in the order requested.
    pub estimates: Vec<RitzEstimate>,
    /// Operator applications, the final residual checks included.
    pub applications: usize,
    /// Thick restarts performed.
    pub restarts: usize,
    /// The basis size at the end (`dim`, or `max_dim` once grown).
    pub dim: usize,
    /// The scale residuals are relative to (largest |Ritz value|).
    pub scale: f64,
    /// The tolerance applied.
    pub tol: f64,
    /// Arnoldi found an invariant subspace: the Ritz values are eigenvalues
    /// of A restricted to it (with a random start, every eigenvalue whose
    /// eigenvector the start vector touches).
    pub invariant: bool,
}

impl KrylovReport {
    /// Whether every target converged.
    pub fn converged(&self) -> bool {
        self.estimates.iter().all(|e| e.converged)
    }
}

/// Extreme eigenvalues of the n x n real operator `op` (y = A x) for every
/// target, by Krylov-Schur; see the module documentation. Errors only on
/// bad arguments or a non-finite operator output; non-convergence is
/// reported in the [`KrylovReport`].
pub fn krylov_schur(
    n: usize,
    op: &mut dyn FnMut(&[f64], &mut [f64]),
    targets: &[Target],
    opts: &KrylovOptions,
) -> Result<KrylovReport> {
    if n == 0 || targets.is_empty() {
        return Err(Error::Shape(
            "Krylov-Schur needs a non-empty operator and at least one target".into(),
        ));
    }
    let max_dim = opts.max_dim.clamp(2, n.max(2)).min(n);
    let mut run = Arnoldi::new(n, opts.dim.max(2).min(max_dim), opts);
    run.basis_mut(0)
        .copy_from_slice(&start_vector(n, opts.seed));
    let step = opts.check_every.max(1);
    let mut m = 0;
    loop {
        m = run.expand(op, m, (m + step).min(run.m_max))?;
        let ritz = run.ritz(m)?;
        let scale = ritz.scale();
        let best: Vec<usize> = targets.iter().map(|&t| ritz.best(t)).collect();
        let done = run.invariant
            || best
                .iter()
                .all(|&i| ritz.estimated_residual[i] <= STOP_MARGIN * opts.tol * scale);
        if done || m < 2 || (m == run.m_max && run.restarts >= opts.max_restarts) {
            return run.finish(op, m, &ritz, &best, scale);
        }
        if m == run.m_max {
            if run.restarts >= opts.grow_after && run.m_max < max_dim {
                run.grow(max_dim);
            } else {
                m = run.restart(m, &ritz, targets);
            }
        }
    }
}

/// The Arnoldi state: basis V (n x (m_max + 1), column-major) and the
/// (m_max + 1) x m_max matrix of the Krylov decomposition.
struct Arnoldi {
    n: usize,
    m_max: usize,
    v: Vec<f64>,
    h: Mat<f64>,
    applications: usize,
    restarts: usize,
    invariant: bool,
    opts: KrylovOptions,
}

/// Ritz values and vectors of H_m.
struct Ritz {
    values: Vec<Complex64>,
    /// Unit eigenvectors of H_m, column i for values[i].
    vectors: Mat<Complex64>,
    estimated_residual: Vec<f64>,
}

impl Ritz {
    fn scale(&self) -> f64 {
        self.values
            .iter()
            .map(|z| z.norm())
            .fold(f64::MIN_POSITIVE, f64::max)
    }

    /// Index of the best Ritz value for `target` (ties: the one with
    /// non-negative imaginary part, then the smaller estimated residual).
    fn best(&self, target: Target) -> usize {
        self.ranked(target)[0]
    }

    fn ranked(&self, target: Target) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.values.len()).collect();
        order.sort_by(|&a, &b| {
            let (za, zb) = (self.values[a], self.values[b]);
            target
                .score(zb)
                .total_cmp(&target.score(za))
                .then((zb.im >= 0.0).cmp(&(za.im >= 0.0)))
                .then(self.estimated_residual[a].total_cmp(&self.estimated_residual[b]))
        });
        order
    }
}

impl Arnoldi {
    fn new(n: usize, m_max: usize, opts: &KrylovOptions) -> Self {
        Self {
            n,
            m_max,
            v: vec![0.0; n * (m_max + 1)],
            h: Mat::zeros(m_max + 1, m_max),
            applications: 0,
            restarts: 0,
            invariant: false,
            opts: *opts,
        }
    }

    fn basis(&self, cols: usize) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.v[..cols * self.n], self.n, cols)
    }

    fn basis_mut(&mut self, j: usize) -> &mut [f64] {
        &mut self.v[j * self.n..(j + 1) * self.n]
    }

    /// Extend the decomposition from k to `upto` (<= m_max) columns; returns
    /// the size reached (smaller on an invariant subspace).
    fn expand(
        &mut self,
        op: &mut dyn FnMut(&[f64], &mut [f64]),
        k: usize,
        upto: usize,
    ) -> Result<usize> {
        let n = self.n;
        let mut w = vec![0.0; n];
        let mut coeffs = Mat::<f64>::zeros(self.m_max, 1);
        for j in k..upto {
            op(&self.v[j * n..(j + 1) * n], &mut w);
            self.applications += 1;
            if w.iter().any(|x| !x.is_finite()) {
                return Err(Error::NonFinite);
            }
            let norm_aw = norm(&w);
            // Classical Gram-Schmidt twice (DGKS): orthogonal to rounding.
            for _ in 0..2 {
                let c = coeffs.as_mut().subrows_mut(0, j + 1);
                self.project(j + 1, &mut w, c);
                for i in 0..=j {
                    self.h[(i, j)] += coeffs[(i, 0)];
                }
            }
            let beta = norm(&w);
            self.h[(j + 1, j)] = beta;
            if beta <= f64::EPSILON * norm_aw.max(f64::MIN_POSITIVE) * (j + 1) as f64 {
                self.invariant = true;
                return Ok(j + 1);
            }
            let next = self.basis_mut(j + 1);
            next.iter_mut().zip(&w).for_each(|(x, w)| *x = w / beta);
        }
        Ok(upto)
    }

    /// Room for a basis of `m_max` columns, the decomposition kept as it is
    /// (the coupling vector stays the column after the last).
    fn grow(&mut self, m_max: usize) {
        self.v.resize(self.n * (m_max + 1), 0.0);
        let mut h = Mat::zeros(m_max + 1, m_max);
        h.as_mut()
            .submatrix_mut(0, 0, self.m_max + 1, self.m_max)
            .copy_from(self.h.as_ref());
        self.h = h;
        self.m_max = m_max;
    }

    /// c = V_j^T w, w -= V_j c.
    fn project(&self, j: usize, w: &mut [f64], mut c: MatMut<'_, f64>) {
        let basis = self.basis(j);
        let par = self.opts.par;
        matmul(
            c.rb_mut(),
            Accum::Replace,
            basis.transpose(),
            MatRef::from_column_major_slice(w, self.n, 1),
            1.0,
            par,
        );
        matmul(
            MatMut::from_column_major_slice_mut(w, self.n, 1),
            Accum::Add,
            basis,
            c.rb(),
            -1.0,
            par,
        );
    }

    /// Eigenpairs of H_m and their estimated residuals |beta y_m|.
    fn ritz(&self, m: usize) -> Result<Ritz> {
        let hm = self.h.as_ref().submatrix(0, 0, m, m).to_owned();
        let eig = hm
            .eigen()
            .map_err(|_| Error::EigenNoConvergence { size: m })?;
        let values: Vec<Complex64> = eig.S().column_vector().iter().copied().collect();
        let mut vectors = eig.U().to_owned();
        for i in 0..m {
            let len = (0..m)
                .map(|r| vectors[(r, i)].norm_sqr())
                .sum::<f64>()
                .sqrt();
            if len > 0.0 {
                for r in 0..m {
                    vectors[(r, i)] /= len;
                }
            }
        }
        let last = if self.invariant {
            0.0
        } else {
            self.h[(m, m - 1)]
        };
        let estimated_residual = (0..m)
            .map(|i| (last * vectors[(m - 1, i)]).norm())
            .collect();
        Ok(Ritz {
            values,
            vectors,
            estimated_residual,
        })
    }

    /// Keep about half the basis: the best Ritz vectors of every target in
    /// turn, conjugate pairs together; returns the new size k.
    fn restart(&mut self, m: usize, ritz: &Ritz, targets: &[Target]) -> usize {
        let goal = (m / 2).max(2 * targets.len()).min(m - 1);
        let ranked: Vec<Vec<usize>> = targets.iter().map(|&t| ritz.ranked(t)).collect();
        let scale = ritz.scale();
        let mut chosen: Vec<usize> = Vec::new();
        let mut dims = 0;
        'fill: for rank in 0..m {
            for list in &ranked {
                let i = list[rank];
                let z = ritz.values[i];
                let complex = z.im.abs() > 1e-12 * scale;
                let partner = |j: &usize| (ritz.values[*j] - z.conj()).norm() <= 1e-10 * scale;
                if chosen.contains(&i) || (complex && chosen.iter().any(partner)) {
                    continue;
                }
                let add = if complex { 2 } else { 1 };
                if dims + add > m - 1 {
                    break 'fill;
                }
                chosen.push(i);
                dims += add;
                if dims >= goal {
                    break 'fill;
                }
            }
        }
        let q = orthonormal_real_basis(ritz, &chosen, scale);
        let k = q.ncols();
        // S = Q^T H_m Q, b = beta Q^T e_m.
        let hm = self.h.as_ref().submatrix(0, 0, m, m);
        let hq = hm * q.as_ref();
        let s = q.transpose() * hq.as_ref();
        let b: Vec<f64> = (0..k).map(|c| self.h[(m, m - 1)] * q[(m - 1, c)]).collect();
        // V_k = V_m Q, then the coupling vector v_{m+1} as column k.
        let mut vk = Mat::<f64>::zeros(self.n, k);
        matmul(
            vk.as_mut(),
            Accum::Replace,
            self.basis(m),
            q.as_ref(),
            1.0,
            self.opts.par,
        );
        let n = self.n;
        self.v.copy_within(m * n..(m + 1) * n, k * n);
        for c in 0..k {
            for r in 0..n {
                self.v[c * n + r] = vk[(r, c)];
            }
        }
        self.h.fill(0.0);
        for r in 0..k {
            for c in 0..k {
                self.h[(r, c)] = s[(r, c)];
            }
            self.h[(k, r)] = b[r];
        }
        self.restarts += 1;
        k
    }

    /// The estimates with their true residuals (two applications per complex
    /// Ritz vector, one per real one).
    fn finish(
        mut self,
        op: &mut dyn FnMut(&[f64], &mut [f64]),
        m: usize,
        ritz: &Ritz,
        best: &[usize],
        scale: f64,
    ) -> Result<KrylovReport> {
        let n = self.n;
        let mut estimates = Vec::with_capacity(best.len());
        let mut checked: Vec<(usize, RitzEstimate)> = Vec::new();
        for &i in best {
            if let Some((_, e)) = checked.iter().find(|(j, _)| *j == i) {
                estimates.push(*e);
                continue;
            }
            let theta = ritz.values[i];
            let y = ritz.vectors.col(i);
            let (yr, yi) = (
                Mat::from_fn(m, 1, |r, _| y[r].re),
                Mat::from_fn(m, 1, |r, _| y[r].im),
            );
            let basis = self.basis(m);
            let (xr, xi) = (basis * yr.as_ref(), basis * yi.as_ref());
            let (xr, xi): (Vec<f64>, Vec<f64>) = (
                (0..n).map(|r| xr[(r, 0)]).collect(),
                (0..n).map(|r| xi[(r, 0)]).collect(),
            );
            let mut axr = vec![0.0; n];
            op(&xr, &mut axr);
            self.applications += 1;
            let complex = xi.iter().any(|&x| x != 0.0);
            let mut axi = vec![0.0; n];
            if complex {
                op(&xi, &mut axi);
                self.applications += 1;
            }
            let mut res2 = 0.0;
            let mut len2 = 0.0;
            for r in 0..n {
                let re = axr[r] - (theta.re * xr[r] - theta.im * xi[r]);
                let im = axi[r] - (theta.re * xi[r] + theta.im * xr[r]);
                res2 += re * re + im * im;
                len2 += xr[r] * xr[r] + xi[r] * xi[r];
            }
            let residual = (res2 / len2.max(f64::MIN_POSITIVE)).sqrt() / scale;
            if !residual.is_finite() {
                return Err(Error::NonFinite);
            }
            let e = RitzEstimate {
                value: theta,
                residual,
                converged: residual <= self.opts.tol,
            };
            checked.push((i, e));
            estimates.push(e);
        }
        Ok(KrylovReport {
            estimates,
            applications: self.applications,
            restarts: self.restarts,
            dim: self.m_max,
            scale,
            tol: self.opts.tol,
            invariant: self.invariant,
        })
    }
}

/// An orthonormal real basis (m x k, k <= 2 * chosen) of the span of the
/// chosen Ritz vectors: Re y for a real value (phase removed), Re y and
/// Im y for a complex one; modified Gram-Schmidt twice, dropping directions
/// that are numerically dependent (a defective cluster).
fn orthonormal_real_basis(ritz: &Ritz, chosen: &[usize], scale: f64) -> Mat<f64> {
    let m = ritz.vectors.nrows();
    let mut columns: Vec<Vec<f64>> = Vec::new();
    for &i in chosen {
        let y = ritz.vectors.col(i);
        if ritz.values[i].im.abs() > 1e-12 * scale {
            columns.push((0..m).map(|r| y[r].re).collect());
            columns.push((0..m).map(|r| y[r].im).collect());
        } else {
            // A real eigenvector times a unit phase: undo the phase of its
            // largest entry.
            let top = (0..m)
                .max_by(|&a, &b| y[a].norm().total_cmp(&y[b].norm()))
                .unwrap_or(0);
            let phase = y[top].conj() / y[top].norm().max(f64::MIN_POSITIVE);
            columns.push((0..m).map(|r| (y[r] * phase).re).collect());
        }
    }
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for mut c in columns {
        let before = norm(&c);
        for _ in 0..2 {
            for b in &basis {
                let d: f64 = b.iter().zip(&c).map(|(x, y)| x * y).sum();
                c.iter_mut().zip(b).for_each(|(x, b)| *x -= d * b);
            }
        }
        let after = norm(&c);
        if after > 1e-8 * before && after > 0.0 {
            c.iter_mut().for_each(|x| *x /= after);
            basis.push(c);
        }
    }
    Mat::from_fn(m, basis.len(), |r, c| basis[c][r])
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_matrix, Rng};

    fn dense_op(a: &Mat<f64>) -> impl FnMut(&[f64], &mut [f64]) + '_ {
        move |x, y| {
            let xm = MatRef::from_column_major_slice(x, a.ncols(), 1);
            let ym = MatMut::from_column_major_slice_mut(y, a.nrows(), 1);
            matmul(ym, Accum::Replace, a.as_ref(), xm, 1.0, Par::Seq);
        }
    }

    const ALL: [Target; 4] = [
        Target::MaxRe,
        Target::MinRe,
        Target::MaxModulus,
        Target::MaxShiftedModulus(1.0),
    ];

    /// Q^T a Q for a random orthogonal Q: the same spectrum, its structure hidden.
    fn hidden(a: &Mat<f64>, rng: &mut Rng) -> Mat<f64> {
        let n = a.nrows();
        let q = random_matrix(rng, n, n).qr().compute_Q();
        q.transpose() * a * &q
    }

    /// The best eigenvalue of `values` for `target`, by score.
    fn best_of(values: &[Complex64], target: Target) -> f64 {
        values
            .iter()
            .map(|&z| target.score(z))
            .fold(f64::NEG_INFINITY, f64::max)
    }

    fn check_against_dense(a: &Mat<f64>, opts: &KrylovOptions, rel: f64) {
        let n = a.nrows();
        let dense = a.eigenvalues().unwrap();
        let report = krylov_schur(n, &mut dense_op(a), &ALL, opts).unwrap();
        assert!(report.converged(), "{report:?}");
        let scale = dense.iter().map(|z| z.norm()).fold(1.0, f64::max);
        for (t, e) in ALL.iter().zip(&report.estimates) {
            let want = best_of(&dense, *t);
            let got = t.score(e.value);
            assert!(
                (got - want).abs() <= rel * scale,
                "n={n} {t:?}: {got} vs dense {want} ({report:?})"
            );
        }
    }

    #[test]
    fn matches_dense_on_random_nonsymmetric_matrices() {
        let mut rng = Rng::new(7);
        for n in [5, 30, 200, 600] {
            let a = random_matrix(&mut rng, n, n);
            check_against_dense(&a, &KrylovOptions::default(), 1e-8);
        }
    }

    #[test]
    fn complex_conjugate_extremes() {
        // Rotation blocks r (cos t, sin t) with the largest modulus and the
        // rightmost value in a complex pair.
        let n = 400;
        let mut a = Mat::<f64>::zeros(n, n);
        let mut rng = Rng::new(3);
        for b in 0..n / 2 {
            let (r, t) = (0.5 + rng.uniform(), std::f64::consts::PI * rng.uniform());
            let (c, s) = (r * t.cos(), r * t.sin());
            let i = 2 * b;
            a[(i, i)] = c;
            a[(i, i + 1)] = -s;
            a[(i + 1, i)] = s;
            a[(i + 1, i + 1)] = c;
        }
        a[(0, 0)] = 2.0;
        a[(0, 1)] = -1.5;
        a[(1, 0)] = 1.5;
        a[(1, 1)] = 2.0;
        // Orthogonal similarity so the structure is hidden.
        let a = hidden(&a, &mut rng);
        check_against_dense(&a, &KrylovOptions::default(), 1e-8);
        let report =
            krylov_schur(n, &mut dense_op(&a), &[Target::MaxRe], &Default::default()).unwrap();
        let z = report.estimates[0].value;
        assert!(
            (z.re - 2.0).abs() < 1e-8 && (z.im.abs() - 1.5).abs() < 1e-8,
            "{z}"
        );
    }

    #[test]
    fn clustered_and_non_normal_extremes() {
        // Upper triangular 4 x 4 diagonal blocks with strong coupling (5 N(0,1)
        // above the diagonal: eigenvector condition numbers ~1e3), a
        // cluster 1, 1 + 1e-4, 1 + 2e-4 on the right and -3 on the left,
        // hidden by an orthogonal similarity. Compared with the dense solve.
        let n = 300;
        let mut rng = Rng::new(11);
        let mut a = Mat::<f64>::zeros(n, n);
        for i in 0..n {
            a[(i, i)] = -0.5 + rng.uniform();
            for j in i + 1..(i / 4 * 4 + 4).min(n) {
                a[(i, j)] = 5.0 * rng.normal();
            }
        }
        // In different blocks: the cluster is tight but each member well
        // conditioned.
        a[(0, 0)] = 1.0;
        a[(4, 4)] = 1.0 + 1e-4;
        a[(8, 8)] = 1.0 + 2e-4;
        a[(n - 1, n - 1)] = -3.0;
        let a = hidden(&a, &mut rng);
        let opts = KrylovOptions {
            max_dim: 64,
            max_restarts: 500,
            ..Default::default()
        };
        check_against_dense(&a, &opts, 1e-6);
        let report =
            krylov_schur(n, &mut dense_op(&a), &[Target::MaxRe, Target::MinRe], &opts).unwrap();
        assert!(
            (report.estimates[0].value.re - (1.0 + 2e-4)).abs() < 1e-6,
            "{report:?}"
        );
        assert!(
            (report.estimates[1].value.re + 3.0).abs() < 1e-6,
            "{report:?}"
        );
    }

    #[test]
    fn low_rank_operator_ends_in_an_invariant_subspace() {
        // Rank 3 in n = 2000: Arnoldi breaks down after 4 steps; the Ritz
        // values are the exact nonzero eigenvalues and 0.
        let n = 2000;
        let (u, v) = {
            let mut rng = Rng::new(5);
            (random_matrix(&mut rng, n, 3), random_matrix(&mut rng, 3, n))
        };
        let mut op = |x: &[f64], y: &mut [f64]| {
            let xm = MatRef::from_column_major_slice(x, n, 1);
            let vx = &v * xm;
            let ym = MatMut::from_column_major_slice_mut(y, n, 1);
            matmul(ym, Accum::Replace, u.as_ref(), vx.as_ref(), 1.0, Par::Seq);
        };
        let report = krylov_schur(n, &mut op, &ALL, &Default::default()).unwrap();
        assert!(report.invariant && report.converged(), "{report:?}");
        assert!(report.applications <= 10, "{report:?}");
        let small = (&v * &u).eigenvalues().unwrap();
        let mut all = small.clone();
        all.push(Complex64::new(0.0, 0.0));
        for (t, e) in ALL.iter().zip(&report.estimates) {
            assert!((t.score(e.value) - best_of(&all, *t)).abs() < 1e-8 * 100.0);
        }
    }

    #[test]
    fn separated_extremes_stop_inside_the_first_cycle() {
        // Eigenvalues 10 and -10 far from the rest (in [-1, 1]): the
        // in-cycle checks end the run long before a 48-vector basis is full.
        let n = 1000;
        let mut rng = Rng::new(17);
        let mut a = Mat::<f64>::zeros(n, n);
        for i in 0..n {
            a[(i, i)] = 2.0 * rng.uniform() - 1.0;
        }
        a[(0, 0)] = 10.0;
        a[(1, 1)] = -10.0;
        let a = hidden(&a, &mut rng);
        let opts = KrylovOptions {
            tol: 1e-8,
            ..Default::default()
        };
        let report = krylov_schur(n, &mut dense_op(&a), &ALL, &opts).unwrap();
        assert!(report.converged(), "{report:?}");
        assert_eq!(report.restarts, 0, "{report:?}");
        assert!(report.applications < 48, "{report:?}");
        assert!(
            (report.estimates[0].value.re - 10.0).abs() < 1e-7,
            "{report:?}"
        );
        assert!(
            (report.estimates[1].value.re + 10.0).abs() < 1e-7,
            "{report:?}"
        );
    }

    #[test]
    fn basis_grows_when_restarts_do_not_converge() {
        // A random non-symmetric matrix (a disk of eigenvalues: its extremes
        // are poorly separated) with a basis too short for it: after
        // `grow_after` restarts it grows to `max_dim`, converges to the
        // dense answer and needs fewer applications than the short basis.
        let n = 300;
        let mut rng = Rng::new(11);
        let a = random_matrix(&mut rng, n, n);
        let opts = KrylovOptions {
            dim: 8,
            max_dim: 40,
            grow_after: 3,
            max_restarts: 500,
            ..Default::default()
        };
        let report = krylov_schur(n, &mut dense_op(&a), &ALL, &opts).unwrap();
        assert_eq!(report.dim, 40, "{report:?}");
        assert!(report.restarts > 3, "{report:?}");
        check_against_dense(&a, &opts, 1e-8);
        let fixed = KrylovOptions { max_dim: 8, ..opts };
        let short = krylov_schur(n, &mut dense_op(&a), &ALL, &fixed).unwrap();
        assert!(
            short.applications > report.applications,
            "{short:?} vs {report:?}"
        );
    }

    #[test]
    fn non_convergence_is_reported_not_hidden() {
        let mut rng = Rng::new(9);
        let a = random_matrix(&mut rng, 500, 500);
        let opts = KrylovOptions {
            max_dim: 8,
            max_restarts: 2,
            ..Default::default()
        };
        let report = krylov_schur(500, &mut dense_op(&a), &[Target::MinRe], &opts).unwrap();
        let e = report.estimates[0];
        assert!(!e.converged && e.residual > opts.tol, "{report:?}");
        assert_eq!(report.restarts, 2);
    }

    #[test]
    fn known_spectrum_at_scale() {
        for n in [200_000, 1_000_000] {
            planted_spectrum(n);
        }
    }

    fn planted_spectrum(n: usize) {
        // n = 200,000 and 10^6: block-diagonal with 2x2 blocks [[a, b], [-b, a]]
        // (eigenvalues a +- ib) and a non-normal coupling inside each block,
        // spectrum planted: rightmost 0.9 +- 0.2i, leftmost -1.7, the rest in
        // a disk of radius 0.5 around -0.2.
        let mut rng = Rng::new(13);
        let blocks: Vec<[f64; 3]> = (0..n / 2)
            .map(|b| match b {
                0 => [0.9, 0.2, 0.0],
                1 => [-1.7, 0.0, 0.3],
                _ => {
                    let r = 0.5 * rng.uniform().sqrt();
                    let t = std::f64::consts::TAU * rng.uniform();
                    [-0.2 + r * t.cos(), r * t.sin().abs(), 0.0]
                }
            })
            .collect();
        // Block [[a, b + c], [-b, a]] has eigenvalues a +- i sqrt(b (b + c))
        // when b > 0; with b = 0 it is a Jordan-like [[a, c], [0, a]].
        let mut op = |x: &[f64], y: &mut [f64]| {
            for (i, [a, b, c]) in blocks.iter().enumerate() {
                let (x0, x1) = (x[2 * i], x[2 * i + 1]);
                y[2 * i] = a * x0 + (b + c) * x1;
                y[2 * i + 1] = -b * x0 + a * x1;
            }
        };
        let opts = KrylovOptions {
            tol: 1e-9,
            ..Default::default()
        };
        let report = krylov_schur(n, &mut op, &ALL, &opts).unwrap();
        assert!(report.converged(), "{report:?}");
        let [right, left, radius, euler] = [0, 1, 2, 3].map(|i| report.estimates[i].value);
        assert!((right.re - 0.9).abs() < 1e-7 && (right.im.abs() - 0.2).abs() < 1e-7);
        assert!(
            (left.re + 1.7).abs() < 1e-6 && left.im.abs() < 1e-6,
            "{left}"
        );
        assert!((radius.norm() - 1.7).abs() < 1e-6);
        assert!(((euler + 1.0).norm() - (1.9f64.powi(2) + 0.04).sqrt()).abs() < 1e-7);
    }

    #[test]
    fn rejects_empty_input() {
        let mut op = |_: &[f64], _: &mut [f64]| {};
        assert!(krylov_schur(0, &mut op, &ALL, &Default::default()).is_err());
        assert!(krylov_schur(3, &mut op, &[], &Default::default()).is_err());
    }
}
