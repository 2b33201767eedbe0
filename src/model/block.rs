//! Residual blocks: forward pass, recorded trace, and the Jacobian-vector
//! products of the whole block and of its branch.
//!
//! Post-activation blocks (torchvision, CIFAR) compute B(x) = relu(F(x) +
//! S(x)); pre-activation blocks (PreAct ResNet, WideResNet) compute B(x) =
//! F(x) + S(x), and a projection shortcut there reads the branch's first
//! layers' output relu(bn1(x)) (the shortcut's *tap*), which it shares with F.
//!
//! Linearisation at x (METHOD.md section 3), with D_out = diag(relu'(F(x) +
//! S(x))) for post-activation blocks and D_out = I otherwise, and P the
//! linearisation of the branch's first `tap` layers (the identity for tap 0):
//! - whole block: J_B t = D_out (J_F t + J_S P t)
//! - residual branch: J_F t
//!
//! J_S is the identity, the option-A subsample-and-pad map (already linear),
//! or the linear part of the projection shortcut `bn(conv1x1(.))` (conv
//! only in pre-activation blocks).

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::model::geometry::{AxisFootprint, Interval};
use crate::model::layers::{relu_mask, BatchNorm, Branch, BranchTrace, Conv2d};
pub use stiffness_records::JacobianKind;

/// The shortcut S of a residual block.
#[derive(Debug, Clone)]
pub enum Shortcut {
    Identity,
    /// He et al. (2016) option A: `x[:, :, ::2, ::2]` zero-padded with `pad`
    /// channels before and after. Linear, no parameters.
    OptionA {
        pad: usize,
    },
    /// torchvision `downsample`: `bn(conv1x1 with the block's stride (x))`;
    /// without the batch norm in pre-activation blocks.
    Projection {
        conv: Conv2d,
        norm: Option<BatchNorm>,
    },
}

impl Shortcut {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Shortcut::Projection { conv, norm } => {
                let y = conv.forward(x)?;
                norm.as_ref().map_or(Ok(y.clone()), |n| n.forward(&y))
            }
            _ => self.linear_part(x),
        }
    }

    /// The linear part J_S t.
    pub fn linear_part(&self, t: &Tensor) -> Result<Tensor> {
        match self {
            Shortcut::Identity => Ok(t.clone()),
            Shortcut::OptionA { pad } => {
                let (_, _, h, w) = t.dims4()?;
                let every_other = |len: usize| -> Result<Tensor> {
                    let idx: Vec<u32> = (0..len as u32).step_by(2).collect();
                    Ok(Tensor::from_vec(idx, len.div_ceil(2), &Device::Cpu)?)
                };
                let sub = t
                    .index_select(&every_other(h)?, 2)?
                    .index_select(&every_other(w)?, 3)?;
                Ok(sub.pad_with_zeros(1, *pad, *pad)?)
            }
            Shortcut::Projection { conv, norm } => {
                let y = conv.linear_part(t)?;
                norm.as_ref().map_or(Ok(y.clone()), |n| n.linear_part(&y))
            }
        }
    }

    /// Output positions along one axis that input position interval `iv` reaches.
    fn footprint(&self, iv: Interval, out_len: usize) -> Interval {
        match self {
            Shortcut::Identity => iv,
            Shortcut::OptionA { .. } => iv.through_window(1, 2, 0, out_len),
            Shortcut::Projection { conv, .. } => conv.footprint(iv, out_len),
        }
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(match self {
            Shortcut::Projection { conv, norm } => Shortcut::Projection {
                conv: conv.to_dtype(dtype)?,
                norm: norm.as_ref().map(|n| n.to_dtype(dtype)).transpose()?,
            },
            other => other.clone(),
        })
    }
}

/// Everything the linearisation of a block at x needs, recorded by
/// [`ResidualBlock::trace`] on a batch of one.
#[derive(Debug, Clone)]
pub struct BlockTrace {
    /// x, shape (1, C_in, H_in, W_in).
    pub input: Tensor,
    /// F(x) + S(x), the pre-activation of the output ReLU.
    pub pre_activation: Tensor,
    /// B(x).
    pub output: Tensor,
    /// Masks of the inner ReLUs.
    pub branch: BranchTrace,
    /// D_out as a 0/1 tensor shaped like the output (all ones without an
    /// output ReLU).
    pub out_mask: Tensor,
}

/// A residual block B(x) = relu(F(x) + S(x)), or F(x) + S(x) without the
/// output ReLU; S reads the block input (tap 0) or the output of the
/// branch's first `shortcut_tap` layers.
#[derive(Debug, Clone)]
pub struct ResidualBlock {
    /// State-dict name, e.g. `layer3.2`.
    pub name: String,
    pub branch: Branch,
    pub shortcut: Shortcut,
    /// How many of the branch's leading layers the shortcut reads through.
    pub shortcut_tap: usize,
    /// Whether a ReLU follows the sum (post-activation blocks).
    pub output_relu: bool,
}

impl ResidualBlock {
    /// A post-activation block relu(F(x) + S(x)) with S reading x.
    pub fn post_activation(name: String, branch: Branch, shortcut: Shortcut) -> Self {
        Self {
            name,
            branch,
            shortcut,
            shortcut_tap: 0,
            output_relu: true,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let tap = self.shortcut_tap;
        let u = self.branch.forward_range(0..tap, x)?;
        let f = self
            .branch
            .forward_range(tap..self.branch.layers.len(), &u)?;
        let pre = (f + self.shortcut.forward(&u)?)?;
        self.activate(pre)
    }

    fn activate(&self, pre: Tensor) -> Result<Tensor> {
        Ok(if self.output_relu { pre.relu()? } else { pre })
    }

    /// The forward pass at one point, recording masks for the linearisation.
    pub fn trace(&self, x: &Tensor) -> Result<BlockTrace> {
        let (f, tapped, branch) = self.branch.forward_traced(x, self.shortcut_tap)?;
        let pre_activation = (f + self.shortcut.forward(&tapped)?)?;
        let out_mask = if self.output_relu {
            relu_mask(&pre_activation)?
        } else {
            pre_activation.ones_like()?
        };
        Ok(BlockTrace {
            input: x.clone(),
            output: self.activate(pre_activation.clone())?,
            out_mask,
            pre_activation,
            branch,
        })
    }

    /// J t for a batch of tangents t (B, C_in, H_in, W_in) -> (B, C_out, H_out, W_out).
    pub fn jvp(&self, trace: &BlockTrace, kind: JacobianKind, tangents: &Tensor) -> Result<Tensor> {
        let (tap, end) = (self.shortcut_tap, self.branch.layers.len());
        let shared = self.branch.jvp_range(&trace.branch, 0..tap, tangents)?;
        let jf = self.branch.jvp_range(&trace.branch, tap..end, &shared)?;
        match kind {
            JacobianKind::Residual => Ok(jf),
            JacobianKind::Block => {
                let total = (jf + self.shortcut.linear_part(&shared)?)?;
                if self.output_relu {
                    Ok(total.broadcast_mul(&trace.out_mask)?)
                } else {
                    Ok(total)
                }
            }
        }
    }

    /// Output shape (C, H, W) for input shape (C, H, W).
    pub fn out_shape(&self, input: [usize; 3]) -> [usize; 3] {
        let channels = *self
            .branch
            .channels_after(input[0])
            .last()
            .unwrap_or(&input[0]);
        let h = *self.branch.lens_after(input[1]).last().unwrap_or(&input[1]);
        let w = *self.branch.lens_after(input[2]).last().unwrap_or(&input[2]);
        [channels, h, w]
    }

    /// Footprints along H and W of the map differentiated by `kind`.
    pub fn footprints(&self, kind: JacobianKind, input: [usize; 3]) -> [AxisFootprint; 2] {
        let hw = [input[1], input[2]];
        let branch = self.branch.footprints(0..self.branch.layers.len(), hw);
        if kind == JacobianKind::Residual {
            return branch;
        }
        let tapped = self.branch.footprints(0..self.shortcut_tap, hw);
        let mut out = branch;
        for (f, t) in out.iter_mut().zip(&tapped) {
            for (reach, &via) in f.reach.iter_mut().zip(&t.reach) {
                *reach = reach.hull(self.shortcut.footprint(via, f.out_len));
            }
        }
        out
    }

    /// Whether the block's input and output shapes agree (square Jacobian).
    pub fn is_square(&self, input: [usize; 3]) -> bool {
        self.out_shape(input) == input
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            name: self.name.clone(),
            branch: self.branch.to_dtype(dtype)?,
            shortcut: self.shortcut.to_dtype(dtype)?,
            ..*self
        })
    }
}

impl BlockTrace {
    /// The same trace in another dtype (masks are 0/1 and convert exactly).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            input: self.input.to_dtype(dtype)?,
            pre_activation: self.pre_activation.to_dtype(dtype)?,
            output: self.output.to_dtype(dtype)?,
            branch: BranchTrace {
                masks: self
                    .branch
                    .masks
                    .iter()
                    .map(|m| m.to_dtype(dtype))
                    .collect::<candle_core::Result<_>>()?,
            },
            out_mask: self.out_mask.to_dtype(dtype)?,
        })
    }
}
