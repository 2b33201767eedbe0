//! Exact block spectra with the structural reductions of METHOD.md section 5.
//!
//! Write J_F = U V, cut after the inner ReLU layer L with the fewest active
//! units m (V ends with that ReLU's mask restricted to its m active units).
//!
//! - Residual kind: eig(J_F) = eig(V U) U {0} x (n - m). V U is m x m.
//! - Block kind, identity shortcut (every square block): J_B = D_out (I + U V).
//!   With the a active outputs A first, J_B is block upper-triangular, so
//!   eig(J_B) = {0} x (n - a) U eig(I_A + U\[A,:\] V\[:,A\]). If a <= m the a x a
//!   matrix J_B\[A, A\] is solved; otherwise
//!   eig(I_A + U\[A,:\] V\[:,A\]) = 1 + eig(V D_out U) U {1} x (a - m),
//!   with V D_out U restricted to the m active units of layer L.
//!
//! Either way the dense problem has size min(a, m) (block) or m (residual),
//! not n. [`dense_spectrum`] solves the full n x n matrix for verification.

use std::sync::Arc;

use candle_core::Tensor;
use num_complex::Complex64;
use stiffness_spectrum::{Par, Spectrum};

use crate::analysis::blocked;
use crate::analysis::cache::{lock, Shared};
use crate::analysis::factored::RunFactors;
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

/// Which exact reduction applies to a square block's Jacobian (METHOD.md
/// section 5): the small problem whose eigenvalues, shifted, are the
/// nonzero part of the spectrum, and the eigenvalues structure gives.
/// Shared by the dense path ([`exact_spectrum`]) and the matrix-free one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// eig(J_F) = eig(V U) U {0} x (n - m): V U over the m active units of
    /// inner ReLU `cut`.
    Branch { cut: usize, m: usize },
    /// eig(J_B) = eig(J_B[A, A]) U {0} x (n - a), A the active outputs.
    ActiveRows { active: Vec<usize> },
    /// eig(J_B) = 1 + eig(V D_out U) U {0} x (n - a) U {1} x (a - m)
    /// (identity shortcut, a > m).
    Shifted { cut: usize, m: usize, a: usize },
}

impl Form {
    /// The cheapest exact reduction of `lin`'s Jacobian of `kind`.
    pub fn of(lin: &Linearization<'_>, kind: JacobianKind) -> Result<Self> {
        if !lin.is_square() {
            return Err(Error::Usage(format!(
                "block {} is not square ({:?} -> {:?}): it has singular values, not eigenvalues",
                lin.block.name, lin.in_shape, lin.out_shape
            )));
        }
        let (cut, m) = narrowest(&lin.active_inner()?);
        Ok(match kind {
            JacobianKind::Residual => Form::Branch { cut, m },
            JacobianKind::Block => {
                let active = lin.active_outputs()?;
                let a = active.len();
                if a <= m || !matches!(lin.block.shortcut, Shortcut::Identity) {
                    Form::ActiveRows { active }
                } else {
                    Form::Shifted { cut, m, a }
                }
            }
        })
    }

    /// The size of the small problem.
    pub fn size(&self) -> usize {
        match self {
            Form::Branch { m, .. } | Form::Shifted { m, .. } => *m,
            Form::ActiveRows { active } => active.len(),
        }
    }

    /// Active outputs a (block kind) or active units m of the cut layer.
    pub fn n_active(&self) -> usize {
        match self {
            Form::Branch { m, .. } => *m,
            Form::ActiveRows { active } => active.len(),
            Form::Shifted { a, .. } => *a,
        }
    }

    /// The shift s: eigenvalues of the small problem plus s are eigenvalues of J.
    pub fn shift(&self) -> f64 {
        match self {
            Form::Shifted { .. } => 1.0,
            _ => 0.0,
        }
    }

    /// The eigenvalues known from structure, with multiplicities (those of
    /// multiplicity zero left out), for a Jacobian of size n.
    pub fn exact(&self, n: usize) -> Vec<(Complex64, usize)> {
        let one = Complex64::new(1.0, 0.0);
        let values = match self {
            Form::Branch { m, .. } => vec![(zero(), n - m)],
            Form::ActiveRows { active } => vec![(zero(), n - active.len())],
            Form::Shifted { m, a, .. } => vec![(zero(), n - a), (one, a - m)],
        };
        values.into_iter().filter(|&(_, count)| count > 0).collect()
    }
}

/// The exact spectrum of a square block's Jacobian of `kind`, by the cheapest
/// exact reduction ([`Form`]); the dense eigen-solve runs on `solver` threads.
pub fn exact_spectrum(
    lin: &Linearization<'_>,
    kind: JacobianKind,
    solver: Par,
) -> Result<(Spectrum, Reduction)> {
    let form = Form::of(lin, kind)?;
    let n = lin.n();
    let matrix = match &form {
        Form::Branch { cut, .. } => reduced_matrix(lin, *cut, false, solver)?,
        Form::Shifted { cut, .. } => reduced_matrix(lin, *cut, true, solver)?,
        Form::ActiveRows { active } => lin
            .jacobian(JacobianKind::Block)?
            .dense_submatrix(active, active),
    };
    let spectrum = solve(&matrix, form.shift(), form.exact(n), solver)?;
    let reduction = Reduction {
        n,
        n_active: form.n_active(),
        solved_size: spectrum.solved_size(),
    };
    Ok((spectrum, reduction))
}

/// The spectrum of the full n x n Jacobian, without reductions (for tests and benchmarks).
pub fn dense_spectrum(lin: &Linearization<'_>, kind: JacobianKind) -> Result<Spectrum> {
    let j = lin.jacobian(kind)?;
    let all: Vec<usize> = (0..lin.n()).collect();
    Ok(Spectrum::dense(j.dense_submatrix(&all, &all).as_ref())?)
}

/// The inner ReLU layer with the fewest active units: (index, m).
pub(crate) fn narrowest(inner: &[Vec<usize>]) -> (usize, usize) {
    inner
        .iter()
        .enumerate()
        .map(|(i, act)| (i, act.len()))
        .min_by_key(|&(_, m)| m)
        .unwrap_or((0, 0))
}

/// V D U restricted to the active units of inner layer `cut`, dense f64,
/// from the factors ([`factors`], shared by both kinds): D = D_out when
/// `through_output_mask` (whole-block kind), else the identity. Summed over
/// the factors' stored runs when they are sparse ([`RunFactors`]), else one
/// GEMM of the dense factors on `solver` threads.
fn reduced_matrix(
    lin: &Linearization<'_>,
    cut: usize,
    through_output_mask: bool,
    solver: Par,
) -> Result<faer::Mat<f64>> {
    let f = factors(lin, cut)?;
    let mask = match through_output_mask {
        true => Some(lin.output_mask()?),
        false => None,
    };
    let runs = f.runs()?;
    if runs.stored_share() < SPARSE_PRODUCT_SHARE {
        return Ok(runs.reduced_matrix(mask.as_deref()));
    }
    let unit = f.unit_positions();
    let space = blocked::positions(f.space, None);
    let groups = [unit.as_slice(), space.as_slice(), unit.as_slice()];
    Ok(match mask {
        None => blocked::product(f.v.as_ref(), f.u.as_ref(), groups, solver),
        Some(mask) => {
            let du = faer::Mat::from_fn(f.u.nrows(), f.u.ncols(), |i, j| mask[i] * f.u[(i, j)]);
            blocked::product(f.v.as_ref(), du.as_ref(), groups, solver)
        }
    })
}

/// Below this share of stored factor entries ([`RunFactors::stored_share`])
/// the reduced matrix is summed over the stored runs; above it a GEMM of
/// the dense factors by spatial blocks ([`blocked::product`]) is faster
/// (maps a window covers much of: 4x4, 2x2, 1x1).
const SPARSE_PRODUCT_SHARE: f64 = 0.25;

/// J_F = U V as a product of the factors at the narrowest inner ReLU (which
/// the reductions need anyway) by spatial blocks ([`blocked::product`]),
/// stored over J_F's footprints: on small maps (4x4, 2x2, 1x1) this
/// replaces a coloured assembly of n tangents through the whole branch.
/// Exact: U's columns and V's rows vanish outside their footprints, so the
/// product does too.
pub fn branch_jacobian_from_factors(lin: &Linearization<'_>) -> Result<FootprintJacobian> {
    let (cut, _) = narrowest(&lin.active_inner()?);
    let f = factors(lin, cut)?;
    let out = blocked::positions(lin.out_shape, None);
    let unit = f.unit_positions();
    let space = blocked::positions(lin.in_shape, None);
    // On the threads of the pool it runs in (the job's).
    let groups = [out.as_slice(), unit.as_slice(), space.as_slice()];
    let jf = blocked::product(f.u.as_ref(), f.v.as_ref(), groups, Par::rayon(0));
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
    /// The active units of the cut layer (V's rows, U's columns), as flat
    /// (C, H, W) indices of its output of shape `inner_shape`.
    pub active: Vec<usize>,
    pub inner_shape: [usize; 3],
    /// The block's (square) space, U's rows and V's columns.
    pub space: [usize; 3],
    /// U and V as run columns, made on first use ([`Factors::runs`]).
    runs: Shared<RunFactors>,
}

impl Factors {
    /// The spatial position of each active unit (V's rows, U's columns).
    pub fn unit_positions(&self) -> Vec<usize> {
        blocked::positions(self.inner_shape, Some(&self.active))
    }

    /// U and V as run columns ([`RunFactors`]), built once and kept for
    /// both kinds.
    pub fn runs(&self) -> Result<Arc<RunFactors>> {
        self.runs.get_or_make(|| RunFactors::of(self))
    }
}

/// The factors of `lin`'s branch at inner ReLU `cut`, assembled once per
/// linearisation from coloured JVPs through each half of the branch (the
/// colouring period of one half, not of the whole cycle) and kept for the
/// other kind.
pub fn factors(lin: &Linearization<'_>, cut: usize) -> Result<Arc<Factors>> {
    let mut slot = lock(&lin.factors);
    if let Some(f) = slot.as_ref().filter(|f| f.cut == cut) {
        return Ok(Arc::clone(f));
    }
    let branch = &lin.block.branch;
    let at = branch.relu_positions()[cut];
    let end = branch.layers.len();
    let hw = [lin.in_shape[1], lin.in_shape[2]];
    let inner_shape = branch.shape_after(lin.in_shape, at);
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
    let f = Arc::new(Factors {
        cut,
        v,
        u,
        active: act,
        inner_shape,
        space: lin.in_shape,
        runs: Shared::default(),
    });
    *slot = Some(Arc::clone(&f));
    Ok(f)
}

/// y = a x for a dense matrix a, on one thread (memory-bound).
pub(crate) fn gemv(a: faer::MatRef<'_, f64>, x: &[f64], y: &mut [f64]) {
    faer::linalg::matmul::matmul(
        faer::MatMut::from_column_major_slice_mut(y, a.nrows(), 1),
        faer::Accum::Replace,
        a,
        faer::MatRef::from_column_major_slice(x, a.ncols(), 1),
        1.0,
        Par::Seq,
    );
}

/// shift + eig(matrix), together with the structurally known eigenvalues.
fn solve(
    matrix: &faer::Mat<f64>,
    shift: f64,
    exact: Vec<(Complex64, usize)>,
    solver: Par,
) -> Result<Spectrum> {
    if matrix.nrows() == 0 {
        return Ok(Spectrum::new(Vec::new(), exact));
    }
    Ok(Spectrum::shifted(matrix.as_ref(), shift, exact, solver)?)
}

fn zero() -> Complex64 {
    Complex64::new(0.0, 0.0)
}
