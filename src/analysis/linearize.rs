//! A residual block linearised at one input: the JVP operators that the
//! Jacobian assembly and the structural reductions need.
//!
//! Masks come from a float64 forward pass of the block at float64(x), so that
//! they agree with a float64 reference even where a pre-activation lies within
//! float32 rounding of zero; the JVPs themselves run in float32 (METHOD.md
//! section 8), and the Jacobian entries are exact to float32 rounding.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor};

use crate::analysis::jacobian::{mostly_dense, FootprintJacobian, LinearMap};
use crate::error::Result;
use crate::model::{BlockTrace, JacobianKind, ResidualBlock, Shortcut};

/// Block `block` linearised at input x (batch of one).
pub struct Linearization<'a> {
    /// The block whose dtype the JVPs use.
    pub block: &'a ResidualBlock,
    /// Masks and values of the float64 forward pass, in the block's dtype.
    pub trace: BlockTrace,
    /// The float64 forward pass (input, output) for exact norms.
    pub trace64: BlockTrace,
    pub in_shape: [usize; 3],
    pub out_shape: [usize; 3],
    /// The Jacobians assembled so far, by kind ([block, residual]): every
    /// metric and spectrum variant of a kind shares one assembly.
    assembled: Mutex<[Option<Arc<FootprintJacobian>>; 2]>,
    /// The branch's factors at the narrowest inner ReLU, shared by both
    /// kinds' reductions ([`crate::analysis::reduce::factors`]).
    pub(crate) factors: Mutex<Option<Arc<crate::analysis::reduce::Factors>>>,
}

impl<'a> Linearization<'a> {
    /// Linearise `block` at `x` (1, C, H, W), taking the masks from `block64`,
    /// the same block in float64. The JVPs run in the dtype of `block`
    /// (float32 for analysis; float64 where a test needs exactness).
    pub fn new(block: &'a ResidualBlock, block64: &ResidualBlock, x: &Tensor) -> Result<Self> {
        let trace64 = block64.trace(&x.to_dtype(DType::F64)?)?;
        let (_, c, h, w) = x.dims4()?;
        let in_shape = [c, h, w];
        let dtype = block.branch.dtype();
        Ok(Self {
            block,
            trace: trace64.to_dtype(dtype)?,
            out_shape: block.out_shape(in_shape),
            trace64,
            in_shape,
            assembled: Mutex::new([None, None]),
            factors: Mutex::new(None),
        })
    }

    pub fn is_square(&self) -> bool {
        self.in_shape == self.out_shape
    }

    /// n = C*H*W of the input.
    pub fn n(&self) -> usize {
        self.in_shape.iter().product()
    }

    /// The Jacobian of `kind`, assembled on first use and kept with the
    /// linearisation. With an identity shortcut read at the block input,
    /// the whole block's is D_out (J_F + I) of the branch's, derived from it
    /// instead of assembled again ([`FootprintJacobian::masked_identity_plus`]).
    pub fn jacobian(&self, kind: JacobianKind) -> Result<Arc<FootprintJacobian>> {
        let slot = |k: JacobianKind| match k {
            JacobianKind::Block => 0,
            JacobianKind::Residual => 1,
        };
        if let Some(jac) = &self.cache()[slot(kind)] {
            return Ok(Arc::clone(jac));
        }
        let identity = matches!(self.block.shortcut, Shortcut::Identity)
            && self.block.shortcut_tap == 0
            && self.is_square();
        let derived = match kind {
            JacobianKind::Block if identity => self
                .jacobian(JacobianKind::Residual)?
                .masked_identity_plus(&self.output_mask()?),
            _ => None,
        };
        let jac = Arc::new(match derived {
            Some(jac) => jac,
            None if kind == JacobianKind::Residual && self.dense_footprint(kind) => {
                crate::analysis::reduce::branch_jacobian_from_factors(self)?
            }
            None => self.assemble(kind)?,
        });
        self.cache()[slot(kind)] = Some(Arc::clone(&jac));
        Ok(jac)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, [Option<Arc<FootprintJacobian>>; 2]> {
        crate::analysis::cache::lock(&self.assembled)
    }

    /// Whether the footprints of `kind` make a mostly dense matrix (small
    /// maps), where dense products beat coloured assembly.
    pub fn dense_footprint(&self, kind: JacobianKind) -> bool {
        let n_out: usize = self.out_shape.iter().product();
        let stored = crate::analysis::memory::footprint_entries(self.block, kind, self.in_shape);
        self.is_square() && mostly_dense(stored as usize, n_out, self.n())
    }

    /// D_out as f64 values, one per output (all ones without an output ReLU).
    pub fn output_mask(&self) -> Result<Vec<f64>> {
        Ok(self.trace64.out_mask.flatten_all()?.to_vec1::<f64>()?)
    }

    /// The Jacobian of `kind` from coloured JVPs.
    fn assemble(&self, kind: JacobianKind) -> Result<FootprintJacobian> {
        let apply = |t: &Tensor| self.block.jvp(&self.trace, kind, t);
        let map = LinearMap {
            in_shape: self.in_shape,
            out_shape: self.out_shape,
            footprints: self.block.footprints(kind, self.in_shape),
            apply: &apply,
            dtype: self.block.branch.dtype(),
        };
        FootprintJacobian::assemble(&map)
    }

    /// Flat indices of the active outputs (relu'(pre-activation) = 1).
    pub fn active_outputs(&self) -> Result<Vec<usize>> {
        active(&self.trace64.out_mask)
    }

    /// Flat indices of the active units of every inner ReLU layer, in order.
    pub fn active_inner(&self) -> Result<Vec<Vec<usize>>> {
        self.trace64.branch.masks.iter().map(active).collect()
    }

    /// ||B(x) - x|| / ||x|| in float64 (square blocks).
    pub fn relative_step(&self) -> Result<f64> {
        let x = &self.trace64.input;
        let step = (&self.trace64.output - x)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?
            .sqrt();
        let norm = x.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
        Ok(step / norm)
    }
}

/// Indices where a 0/1 mask is 1.
pub(crate) fn active(mask: &Tensor) -> Result<Vec<usize>> {
    let values = mask.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    Ok(values
        .iter()
        .enumerate()
        .filter_map(|(i, &v)| (v != 0.0).then_some(i))
        .collect())
}
