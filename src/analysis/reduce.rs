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

use candle_core::Tensor;
use num_complex::Complex64;
use stiffness_spectrum::{Par, Spectrum};

use crate::analysis::jacobian::{FootprintJacobian, LinearMap};
use crate::analysis::linearize::{active, Linearization};
use crate::error::{Error, Result};
use crate::model::geometry::{AxisFootprint, Interval};
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
            let k = reduced_matrix(lin, cut, false)?;
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
                let mut columns = vec![false; n];
                act.iter().for_each(|&i| columns[i] = true);
                let j = lin.jacobian(JacobianKind::Block, Some(&columns))?;
                let sub = j.dense_submatrix(&act, &act);
                solve(&sub, 0.0, vec![(zero(), n - a)], solver)?
            } else {
                let k = reduced_matrix(lin, cut, true)?;
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
    let (k, act) = cyclic_map(lin, cut, through_output_mask)?;
    Ok(k.dense_submatrix(&act, &act))
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

/// The cyclic map K = V D U on the space of inner ReLU layer `cut`
/// (0-based among the branch's ReLUs) of `lin`'s block, where J_F = U V is split after that
/// ReLU (V includes its mask) and D = D_out when `through_output_mask`
/// (whole-block kind) or the identity (residual kind). Only the columns of
/// the active units of layer `cut` are assembled.
pub fn cyclic_map(
    lin: &Linearization<'_>,
    cut: usize,
    through_output_mask: bool,
) -> Result<(FootprintJacobian, Vec<usize>)> {
    let branch = &lin.block.branch;
    let at = branch.relu_positions()[cut];
    let end = branch.layers.len();
    let inner_channels = branch.channels_after(lin.in_shape[0])[at];
    let apply = |t: &Tensor| -> Result<Tensor> {
        let mut u = branch.jvp_range(&lin.trace.branch, at + 1..end, t)?;
        if through_output_mask {
            u = u.broadcast_mul(&lin.trace.out_mask)?;
        }
        branch.jvp_range(&lin.trace.branch, 0..at + 1, &u)
    };
    let footprints = [1, 2].map(|axis| {
        let lens = branch.lens_after(lin.in_shape[axis]);
        let inner_len = lens[at];
        let reach = (0..inner_len)
            .map(|p| {
                let iv = Interval::point(p);
                let out = branch.footprint_range(at + 1..end, &lens, iv);
                branch.footprint_range(0..at + 1, &lens, out)
            })
            .collect();
        AxisFootprint::new(reach, inner_len)
    });
    let inner_shape = [
        inner_channels,
        footprints[0].in_len(),
        footprints[1].in_len(),
    ];
    let map = LinearMap {
        in_shape: inner_shape,
        out_shape: inner_shape,
        footprints,
        apply: &apply,
        dtype: lin.block.branch.dtype(),
    };
    let act = active(&lin.trace64.branch.masks[cut])?;
    let mut selected = vec![false; inner_shape.iter().product()];
    act.iter().for_each(|&i| selected[i] = true);
    Ok((FootprintJacobian::assemble(&map, Some(&selected))?, act))
}
