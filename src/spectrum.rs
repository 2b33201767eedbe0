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

use std::sync::atomic::{AtomicUsize, Ordering};

use num_complex::Complex64;
use stiffness_spectrum::{Par, Spectrum};

use crate::error::{Error, Result};
use crate::linearize::Linearization;
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
/// exact reduction.
pub fn exact_spectrum(
    lin: &Linearization<'_>,
    kind: JacobianKind,
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
            let k = reduced_matrix(lin, cut, false)?;
            let spectrum = solve(&k, 0.0, vec![(zero(), n - m)])?;
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
                let mut columns = vec![false; n];
                act.iter().for_each(|&i| columns[i] = true);
                let j = lin.jacobian(JacobianKind::Block, Some(&columns))?;
                let sub = j.dense_submatrix(&act, &act);
                solve(&sub, 0.0, vec![(zero(), n - a)])?
            } else {
                let k = reduced_matrix(lin, cut, true)?;
                let one = Complex64::new(1.0, 0.0);
                solve(&k, 1.0, vec![(zero(), n - a), (one, a - m)])?
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
    let j = lin.jacobian(kind, None)?;
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

/// V D U restricted to the active units of inner layer `cut`, dense f64.
fn reduced_matrix(
    lin: &Linearization<'_>,
    cut: usize,
    through_output_mask: bool,
) -> Result<faer::Mat<f64>> {
    let (k, act) = lin.cyclic_map(cut, through_output_mask)?;
    Ok(k.dense_submatrix(&act, &act))
}

/// shift + eig(matrix), together with the structurally known eigenvalues.
fn solve(matrix: &faer::Mat<f64>, shift: f64, exact: Vec<(Complex64, usize)>) -> Result<Spectrum> {
    let exact = exact.into_iter().filter(|&(_, count)| count > 0).collect();
    if matrix.nrows() == 0 {
        return Ok(Spectrum::new(Vec::new(), exact));
    }
    let threads = SOLVER_THREADS.load(Ordering::Relaxed);
    let par = if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    };
    Ok(Spectrum::shifted(matrix.as_ref(), shift, exact, par)?)
}

/// Threads inside one dense eigen-solve (1 = sequential, the default: the
/// analysis job parallelises across samples). The job raises it when fewer
/// samples than worker threads remain, so that a single image uses every core.
static SOLVER_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Set the number of threads inside one dense eigen-solve (at least 1).
pub fn set_solver_threads(threads: usize) {
    SOLVER_THREADS.store(threads.max(1), Ordering::Relaxed);
}

fn zero() -> Complex64 {
    Complex64::new(0.0, 0.0)
}
