//! A residual block linearised at one input: the JVP operators that the
//! Jacobian assembly and the structural reductions need.
//!
//! Masks come from a float64 forward pass of the block at float64(x), so that
//! they agree with a float64 reference even where a pre-activation lies within
//! float32 rounding of zero; the JVPs themselves run in float32 (METHOD.md
//! section 8), and the Jacobian entries are exact to float32 rounding.

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::jacobian::{FootprintJacobian, LinearMap};
use crate::model::geometry::AxisFootprint;
use crate::model::{BlockTrace, JacobianKind, ResidualBlock};

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
        })
    }

    pub fn is_square(&self) -> bool {
        self.in_shape == self.out_shape
    }

    /// n = C*H*W of the input.
    pub fn n(&self) -> usize {
        self.in_shape.iter().product()
    }

    /// The Jacobian of `kind`, columns restricted to `columns` when given.
    pub fn jacobian(
        &self,
        kind: JacobianKind,
        columns: Option<&[bool]>,
    ) -> Result<FootprintJacobian> {
        let apply = |t: &Tensor| self.block.jvp(&self.trace, kind, t);
        let map = LinearMap {
            in_shape: self.in_shape,
            out_shape: self.out_shape,
            footprints: self.block.footprints(kind, self.in_shape),
            apply: &apply,
            dtype: self.block.branch.dtype(),
        };
        FootprintJacobian::assemble(&map, columns)
    }

    /// Flat indices of the active outputs (relu'(pre-activation) = 1).
    pub fn active_outputs(&self) -> Result<Vec<usize>> {
        active(&self.trace64.out_mask)
    }

    /// Flat indices of the active units of every inner ReLU layer, in order.
    pub fn active_inner(&self) -> Result<Vec<Vec<usize>>> {
        self.trace64.branch.masks.iter().map(active).collect()
    }

    /// The cyclic map K = V D U on the space of inner ReLU layer `cut`
    /// (0-based among the branch's ReLUs), where J_F = U V is split after that
    /// ReLU (V includes its mask) and D = D_out when `through_output_mask`
    /// (whole-block kind) or the identity (residual kind). Only the columns of
    /// the active units of layer `cut` are assembled.
    pub fn cyclic_map(
        &self,
        cut: usize,
        through_output_mask: bool,
    ) -> Result<(FootprintJacobian, Vec<usize>)> {
        let branch = &self.block.branch;
        let at = branch.relu_positions()[cut];
        let end = branch.layers.len();
        let inner_channels = branch.channels_after(self.in_shape[0])[at];
        let apply = |t: &Tensor| -> Result<Tensor> {
            let mut u = branch.jvp_range(&self.trace.branch, at + 1..end, t)?;
            if through_output_mask {
                u = u.broadcast_mul(&self.trace.out_mask)?;
            }
            branch.jvp_range(&self.trace.branch, 0..at + 1, &u)
        };
        let footprints = [1, 2].map(|axis| {
            let lens = branch.lens_after(self.in_shape[axis]);
            let inner_len = lens[at];
            let reach = (0..inner_len)
                .map(|p| {
                    let iv = crate::model::geometry::Interval::point(p);
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
            dtype: self.block.branch.dtype(),
        };
        let act = active(&self.trace64.branch.masks[cut])?;
        let mut selected = vec![false; inner_shape.iter().product()];
        act.iter().for_each(|&i| selected[i] = true);
        Ok((FootprintJacobian::assemble(&map, Some(&selected))?, act))
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
fn active(mask: &Tensor) -> Result<Vec<usize>> {
    let values = mask.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    Ok(values
        .iter()
        .enumerate()
        .filter_map(|(i, &v)| (v != 0.0).then_some(i))
        .collect())
}
