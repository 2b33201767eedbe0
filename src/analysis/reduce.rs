//! Exact block spectra with the structural reductions of METHOD.md section 5.
//!
//! Write J_F = U V, cut after the inner ReLU layer L with the fewest active
//! units m (V ends with that ReLU's mask restricted to its m active units).
//!
//! - Residual kind: eig(J_F) = eig(V U) U {0} x (n - m). V U is m x m.
//! - Block kind, identity shortcut (every square block): J_B = D_out (I + U V).
//!   With the a active outputs A first, J_B is block upper-triangular, so
//!   eig(J_B) = {0} x (n - a) U eig(I_A + U[A,:] V[:,A]). If a <= m the a x a
//!   matrix J_B[A, A] is solved; otherwise
//!   eig(I_A + U[A,:] V[:,A]) = 1 + eig(V D_out U) U {1} x (a - m),
//!   with V D_out U restricted to the m active units of layer L.
//!
//! Either way the dense problem has size min(a, m) (block) or m (residual),
//! not n. [`dense_spectrum`] solves the full n x n matrix for verification.

use std::sync::Arc;

use candle_core::Tensor;
use num_complex::Complex64;
use stiffness_spectrum::{Par, Spectrum};

use crate::analysis::jacobian::{FootprintJacobian, LinearMap};
use crate::analysis::linearize::{active, Linearization};
use crate::error::{Error, Result};
use crate::model::{JacobianKind, Shortcut};

/// How a spectrum was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reduction {
    /// Matrix size n.
    pub n: usize,
    /// Active outputs a (block kind) or active units of the cut layer m (residual kind).
    pub n_active: usize,
    /// Size of the dense eigenproblem actually solved.
    pub solved_size: usize,
}

/// The exact spectrum of a square block's Jacobian of `kind`, by the cheapest
/// exact reduction; the dense eigen-solve runs on `solver` threads.
pub fn exact_spectrum(
    lin: &Linearization<'_>,
    kind: JacobianKind,
    solver: Par,
) -> Result<(Spectrum, Reduction)> {
    if !lin.is_square() {
        return Err(Error::Usage(format!(
            "block {} is not square ({:?} -> {:?}): it has singular values, not eigenvalues",
            lin.block.name, lin.in_shape, lin.out_shape
        )));
    }
    let n = lin.n();
    let inner = lin.active_inner()?;
    let (cut, m) = narrowest(&inner);
    match kind {
        JacobianKind::Residual => {
            let k = reduced_matrix(lin, cut, false, solver)?;
            let spectrum = solve(&k, 0.0, vec![(zero(), n - m)], solver)?;
            Ok((
                spectrum,
                Reduction {
                    n,
                    n_active: m,
                    solved_size: m,
                },
            ))
        }
        JacobianKind::Block => {
            let act = lin.active_outputs()?;
            let a = act.len();
            let identity = matches!(lin.block.shortcut, Shortcut::Identity);
            let spectrum = if a <= m || !identity {
                let sub = lin
                    .jacobian(JacobianKind::Block)?
                    .dense_submatrix(&act, &act);
                solve(&sub, 0.0, vec![(zero(), n - a)], solver)?
            } else {
                let k = reduced_matrix(lin, cut, true, solver)?;
                let one = Complex64::new(1.0, 0.0);
                solve(&k, 1.0, vec![(zero(), n - a), (one, a - m)], solver)?
            };
            let solved_size = spectrum.solved_size();
            Ok((
                spectrum,
                Reduction {
                    n,
                    n_active: a,
                    solved_size,
                },
            ))
        }
    }
}

/// The spectrum of the full n x n Jacobian, without reductions (for tests and benchmarks).
pub fn dense_spectrum(lin: &Linearization<'_>, kind: JacobianKind) -> Result<Spectrum> {
    let j = lin.jacobian(kind)?;
    let all: Vec<usize> = (0..lin.n()).collect();
    Ok(Spectrum::dense(j.dense_submatrix(&all, &all).as_ref())?)
}

/// The inner ReLU layer with the fewest active units: (index, m).
fn narrowest(inner: &[Vec<usize>]) -> (usize, usize) {
    inner
        .iter()
        .enumerate()
        .map(|(i, act)| (i, act.len()))
        .min_by_key(|&(_, m)| m)
        .unwrap_or((0, 0))
}

/// V D U restricted to the active units of inner layer `cut`, dense f64,
/// from the factors ([`factors`], shared by both kinds): D = D_out when
/// `through_output_mask` (whole-block kind), else the identity.
fn reduced_matrix(
    lin: &Linearization<'_>,
    cut: usize,
    through_output_mask: bool,
    solver: Par,
) -> Result<faer::Mat<f64>> {
    let f = factors(lin, cut)?;
    if !through_output_mask {
        return Ok(product(f.v.as_ref(), f.u.as_ref(), solver));
    }
    let mask = lin.output_mask()?;
    let du = faer::Mat::from_fn(f.u.nrows(), f.u.ncols(), |i, j| mask[i] * f.u[(i, j)]);
    Ok(product(f.v.as_ref(), du.as_ref(), solver))
}

/// The dense product a b on `par` threads.
fn product(a: faer::MatRef<'_, f64>, b: faer::MatRef<'_, f64>, par: Par) -> faer::Mat<f64> {
    let mut out = faer::Mat::<f64>::zeros(a.nrows(), b.ncols());
    faer::linalg::matmul::matmul(out.as_mut(), faer::Accum::Replace, a, b, 1.0, par);
    out
}

/// J_F = U V as one GEMM of the factors at the narrowest inner ReLU (which
/// the reductions need anyway), stored over J_F's footprints: on small maps
/// (2x2, 1x1) this replaces a coloured assembly of n tangents through the
/// whole branch. Exact: U's columns and V's rows vanish outside their
/// footprints, so the product does too.
pub fn branch_jacobian_from_factors(lin: &Linearization<'_>) -> Result<FootprintJacobian> {
    let (cut, _) = narrowest(&lin.active_inner()?);
    let f = factors(lin, cut)?;
    // On the threads of the pool it runs in (the job's).
    let jf = product(f.u.as_ref(), f.v.as_ref(), Par::rayon(0));
    let footprints = lin.block.footprints(JacobianKind::Residual, lin.in_shape);
    FootprintJacobian::from_dense(lin.in_shape, lin.out_shape, &footprints, jf.as_ref())
}

/// J_F = U V split after the `cut`-th inner ReLU, both restricted to its m
/// active units: V (m x n, the branch up to and including that ReLU) and
/// U (n_out x m, the rest of the branch), dense f64.
pub struct Factors {
    pub cut: usize,
    pub v: faer::Mat<f64>,
    pub u: faer::Mat<f64>,
}

/// The factors of `lin`'s branch at inner ReLU `cut`, assembled once per
/// linearisation from coloured JVPs through each half of the branch (the
/// colouring period of one half, not of the whole cycle) and kept for the
/// other kind.
pub fn factors(lin: &Linearization<'_>, cut: usize) -> Result<Arc<Factors>> {
    let mut slot = lin.factors.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = slot.as_ref().filter(|f| f.cut == cut) {
        return Ok(Arc::clone(f));
    }
    let branch = &lin.block.branch;
    let at = branch.relu_positions()[cut];
    let end = branch.layers.len();
    let inner_channels = branch.channels_after(lin.in_shape[0])[at];
    let hw = [lin.in_shape[1], lin.in_shape[2]];
    let inner_shape = [
        inner_channels,
        branch.lens_after(hw[0])[at],
        branch.lens_after(hw[1])[at],
    ];
    let half = |range: std::ops::Range<usize>, from: [usize; 3], to: [usize; 3]| {
        let apply = |t: &Tensor| branch.jvp_range(&lin.trace.branch, range.clone(), t);
        FootprintJacobian::assemble(&LinearMap {
            in_shape: from,
            out_shape: to,
            footprints: branch.footprints(range.clone(), hw),
            apply: &apply,
            dtype: branch.dtype(),
        })
    };
    let act = active(&lin.trace64.branch.masks[cut])?;
    let all_in: Vec<usize> = (0..lin.n()).collect();
    let all_out: Vec<usize> = (0..lin.out_shape.iter().product()).collect();
    let v = half(0..at + 1, lin.in_shape, inner_shape)?.dense_submatrix(&act, &all_in);
    let u = half(at + 1..end, inner_shape, lin.out_shape)?.dense_submatrix(&all_out, &act);
    let f = Arc::new(Factors { cut, v, u });
    *slot = Some(Arc::clone(&f));
    Ok(f)
}

/// shift + eig(matrix), together with the structurally known eigenvalues.
fn solve(
    matrix: &faer::Mat<f64>,
    shift: f64,
    exact: Vec<(Complex64, usize)>,
    solver: Par,
) -> Result<Spectrum> {
    let exact = exact.into_iter().filter(|&(_, count)| count > 0).collect();
    if matrix.nrows() == 0 {
        return Ok(Spectrum::new(Vec::new(), exact));
    }
    Ok(Spectrum::shifted(matrix.as_ref(), shift, exact, solver)?)
}

fn zero() -> Complex64 {
    Complex64::new(0.0, 0.0)
}
