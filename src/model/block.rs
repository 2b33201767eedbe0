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
//!
//! The adjoints (vector-Jacobian products), with J_F' the branch after the
//! tap (J_F = J_F' P) and r = D_out q:
//! - whole block: J_B^T q = P^T (J_F'^T r + J_S^T r)
//! - residual branch: J_F^T q

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

    /// The adjoint J_S^T y of [`Self::linear_part`], for a batch y shaped
    /// like the shortcut's output; `in_shape` = (C, H, W) is the shape of the
    /// shortcut's input, which the result has (B, C, H, W).
    /// - identity: y;
    /// - option A (J_S = zero-pad channels o subsample): drop the `pad`
    ///   channels on either side and scatter the rest onto the even
    ///   positions (2i, 2j) of a zero (C, H, W) map;
    /// - projection (J_S = diag(scale) o W): the conv's transposed
    ///   convolution of scale * y ([`Conv2d::linear_adjoint`]).
    pub fn linear_adjoint(&self, y: &Tensor, in_shape: [usize; 3]) -> Result<Tensor> {
        let [c, h, w] = in_shape;
        match self {
            Shortcut::Identity => Ok(y.clone()),
            Shortcut::OptionA { pad } => {
                let kept = y.narrow(1, *pad, c)?;
                let (_, _, oh, ow) = kept.dims4()?;
                if [oh, ow] != [h.div_ceil(2), w.div_ceil(2)] {
                    return Err(candle_core::Error::Msg(format!(
                        "option-A adjoint: cotangent {:?} does not fit input {in_shape:?}",
                        y.dims()
                    ))
                    .into());
                }
                scatter_even(&kept, [h, w])
            }
            Shortcut::Projection { conv, norm } => {
                let y = match norm {
                    Some(n) => n.linear_adjoint(y)?,
                    None => y.clone(),
                };
                conv.linear_adjoint(&y, [h, w])
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

/// The adjoint of `x[:, :, ::2, ::2]` for x of spatial size `hw`: `t`
/// (B, C, ceil(H/2), ceil(W/2)) placed on the even positions of a zero
/// (B, C, H, W) tensor (a zero after every element along W, then after
/// every row along H, cut to H x W).
fn scatter_even(t: &Tensor, [h, w]: [usize; 2]) -> Result<Tensor> {
    let (b, c, oh, ow) = t.dims4()?;
    let rows = Tensor::stack(&[t, &t.zeros_like()?], 4)?.reshape((b, c, oh, 2 * ow))?;
    let x = Tensor::stack(&[&rows, &rows.zeros_like()?], 3)?.reshape((b, c, 2 * oh, 2 * ow))?;
    Ok(x.narrow(2, 0, h)?.narrow(3, 0, w)?)
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

    /// J^T q for a batch of cotangents q (B, C_out, H_out, W_out) -> (B,
    /// C_in, H_in, W_in), the adjoint of [`Self::jvp`] at the same trace:
    /// J_B^T q = P^T (J_F'^T r + J_S^T r) with r = D_out q, or J_F^T q for
    /// the residual kind. `in_shape` = (C_in, H_in, W_in) is the block's
    /// input shape (it must be the trace's); the spatial sizes inside follow
    /// from it, as stride-2 layers need them to invert PyTorch's floor rule.
    pub fn vjp(
        &self,
        trace: &BlockTrace,
        kind: JacobianKind,
        cotangents: &Tensor,
        in_shape: [usize; 3],
    ) -> Result<Tensor> {
        let traced = trace.input.dims();
        if traced[1..] != in_shape {
            return Err(candle_core::Error::Msg(format!(
                "block {} adjoint: input shape {in_shape:?} is not the traced input's {traced:?}",
                self.name
            ))
            .into());
        }
        let (tap, end) = (self.shortcut_tap, self.branch.layers.len());
        let hw = [in_shape[1], in_shape[2]];
        match kind {
            JacobianKind::Residual => self.branch.vjp(&trace.branch, cotangents, hw),
            JacobianKind::Block => {
                let r = if self.output_relu {
                    cotangents.broadcast_mul(&trace.out_mask)?
                } else {
                    cotangents.clone()
                };
                let tapped_shape = self.tapped_shape(in_shape);
                let via_branch = self.branch.vjp_range(&trace.branch, tap..end, &r, hw)?;
                let via_shortcut = self.shortcut.linear_adjoint(&r, tapped_shape)?;
                let sum = (via_branch + via_shortcut)?;
                self.branch.vjp_range(&trace.branch, 0..tap, &sum, hw)
            }
        }
    }

    /// Shape (C, H, W) of what the shortcut reads (after the first
    /// `shortcut_tap` branch layers) for block input shape `input`.
    fn tapped_shape(&self, input: [usize; 3]) -> [usize; 3] {
        match self.shortcut_tap {
            0 => input,
            tap => self.branch.shape_after(input, tap - 1),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::random::{
        basic, bottleneck, grouped_bottleneck, preact, projection, Masks, Rng,
    };

    fn dot(a: &Tensor, b: &Tensor) -> f64 {
        (a * b).unwrap().sum_all().unwrap().to_scalar().unwrap()
    }

    fn norm(a: &Tensor) -> f64 {
        dot(a, a).sqrt()
    }

    /// (block, input shape): every family and shortcut, on odd inputs with
    /// stride 2 (7x7 and 5x5: the output padding of the transposed
    /// convolutions differs from 6x6), non-square ones, and 1 x 1 maps
    /// (the centre-tap case).
    fn blocks(rng: &mut Rng, masks: Masks) -> Vec<(ResidualBlock, [usize; 3])> {
        let option_a = Shortcut::OptionA { pad: 2 };
        let mut out = Vec::new();
        for hw in [[7, 7], [5, 5], [6, 6], [7, 6], [1, 1]] {
            let [h, w] = hw;
            let proj = projection(rng, 6, 3, 2);
            let proj_bottleneck = projection(rng, 8, 4, 2);
            let proj_grouped = projection(rng, 16, 8, 2);
            out.extend([
                (basic(rng, 3, 3, 1, Shortcut::Identity, masks), [3, h, w]),
                (basic(rng, 2, 6, 2, option_a.clone(), masks), [2, h, w]),
                (basic(rng, 3, 6, 2, proj, masks), [3, h, w]),
                (
                    bottleneck(rng, 8, 2, 1, Shortcut::Identity, masks),
                    [8, h, w],
                ),
                (bottleneck(rng, 4, 2, 2, proj_bottleneck, masks), [4, h, w]),
                (
                    grouped_bottleneck(rng, 8, 4, 2, 2, proj_grouped, masks),
                    [8, h, w],
                ),
                (preact(rng, 3, 5, 2, true, masks), [3, h, w]),
                (preact(rng, 4, 4, 1, false, masks), [4, h, w]),
            ]);
        }
        out
    }

    /// <q, J p> = <J^T q, p> to 1e-12 (relative to |q| |J p|) in float64,
    /// both kinds, random masks and all units on.
    #[test]
    fn block_vjp_is_the_adjoint_of_the_jvp() {
        let mut rng = Rng(5);
        for masks in [Masks::Random, Masks::AllOn] {
            for (block, shape) in blocks(&mut rng, masks) {
                let x = rng.tensor(&[1, shape[0], shape[1], shape[2]], 1.0);
                let trace = block.trace(&x).unwrap();
                let p = rng.tensor(x.dims(), 1.0);
                let out = block.out_shape(shape);
                let q = rng.tensor(&[1, out[0], out[1], out[2]], 1.0);
                for kind in [JacobianKind::Block, JacobianKind::Residual] {
                    let jp = block.jvp(&trace, kind, &p).unwrap();
                    let jtq = block.vjp(&trace, kind, &q, shape).unwrap();
                    assert_eq!(jtq.dims(), x.dims(), "{} {shape:?}", block.name);
                    let (lhs, rhs) = (dot(&q, &jp), dot(&jtq, &p));
                    assert!(
                        (lhs - rhs).abs() <= 1e-12 * norm(&q) * norm(&jp),
                        "{} {shape:?} {kind:?}: {lhs} vs {rhs}",
                        block.name
                    );
                }
            }
        }
    }

    /// A batch of three cotangents gives the three single products.
    #[test]
    fn block_vjp_of_a_batch_is_the_batch_of_vjps() {
        let mut rng = Rng(9);
        for (block, shape) in blocks(&mut rng, Masks::Random) {
            let x = rng.tensor(&[1, shape[0], shape[1], shape[2]], 1.0);
            let trace = block.trace(&x).unwrap();
            let out = block.out_shape(shape);
            let q = rng.tensor(&[3, out[0], out[1], out[2]], 1.0);
            for kind in [JacobianKind::Block, JacobianKind::Residual] {
                let batch = block.vjp(&trace, kind, &q, shape).unwrap();
                assert_eq!(batch.dims(), &[3, shape[0], shape[1], shape[2]]);
                for i in 0..3 {
                    let single = block
                        .vjp(&trace, kind, &q.narrow(0, i, 1).unwrap(), shape)
                        .unwrap();
                    let diff = (batch.narrow(0, i, 1).unwrap() - &single).unwrap();
                    assert!(
                        norm(&diff) <= 1e-14 * norm(&single).max(1e-300),
                        "{} {shape:?} {kind:?} item {i}",
                        block.name
                    );
                }
            }
        }
    }

    /// The input shape must be the traced input's.
    #[test]
    fn block_vjp_refuses_another_input_shape() {
        let mut rng = Rng(2);
        let proj = projection(&mut rng, 6, 3, 2);
        let block = basic(&mut rng, 3, 6, 2, proj, Masks::Random);
        let x = rng.tensor(&[1, 3, 7, 7], 1.0);
        let trace = block.trace(&x).unwrap();
        let q = rng.tensor(&[1, 6, 4, 4], 1.0);
        assert!(block
            .vjp(&trace, JacobianKind::Block, &q, [3, 7, 7])
            .is_ok());
        assert!(block
            .vjp(&trace, JacobianKind::Block, &q, [3, 8, 8])
            .is_err());
    }
}
