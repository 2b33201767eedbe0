//! The layers a residual branch is made of, each with its forward pass and
//! its linearisation side by side.
//!
//! A branch is a chain of [`Layer`]s. The forward pass at a point `x`
//! records, for every ReLU, the mask `relu'(pre-activation)` (with
//! `relu'(0) = 0`, PyTorch's convention). The linearisation applies the same
//! chain to a batch of tangents with every affine map replaced by its linear
//! part: a convolution without bias, a batch norm reduced to its per-channel
//! scale, and a ReLU replaced by multiplication with its recorded mask.
//! Because both passes walk the same `Vec<Layer>`, they cannot drift apart.
//! The adjoint (vector-Jacobian products J^T q, for matrix-free solvers)
//! walks the same chain in reverse, each layer's `linear_adjoint` beside its
//! `linear_part`: a transposed convolution, the same per-channel scale, the
//! same mask.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::model::conv;
use crate::model::geometry::{AxisFootprint, Interval};

/// Batch-norm epsilon used by PyTorch's `BatchNorm2d` default (not stored in checkpoints).
pub const BN_EPS: f64 = 1e-5;

/// A 2-D convolution, NCHW, square kernel, symmetric zero padding; with
/// `groups` > 1 the channels split into that many independent groups
/// (ResNeXt).
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// Kernel, shape (C_out, C_in / groups, k, k).
    pub weight: Tensor,
    /// Optional bias, shape (C_out).
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl Conv2d {
    pub fn kernel_size(&self) -> usize {
        self.weight.dims()[3]
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// y = W * x + b.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.linear_part(x)?;
        match &self.bias {
            Some(b) => Ok(y.broadcast_add(&b.reshape((1, (), 1, 1))?)?),
            None => Ok(y),
        }
    }

    /// The linear part W * t (the bias drops out of the derivative): in
    /// float32 (the analysis) by [`conv::conv2d_grouped`], im2col and one
    /// GEMM over the whole batch of tangents; in float64 (the tests'
    /// references) by candle's `conv2d`.
    ///
    /// On a 1 x 1 map (a 32 x 32 image in a torchvision ResNet's last stage)
    /// only the kernel's centre tap ever meets a pixel, the rest meets
    /// padding: that case is the 1 x 1 convolution with the centre weights,
    /// k^2 times fewer flops than im2col over the padding.
    pub fn linear_part(&self, t: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = t.dims4()?;
        let (weight, padding, stride) = match self.centre_tap([h, w])? {
            Some(centre) => (centre, 0, 1),
            None => (self.weight.clone(), self.padding, self.stride),
        };
        Ok(match t.dtype() {
            DType::F32 => conv::conv2d_grouped(t, &weight, stride, padding, self.groups)?,
            _ => t.conv2d(&weight, padding, stride, 1, self.groups)?,
        })
    }

    /// The centre weights (C_out, C_in / groups, 1, 1) when the input is a
    /// 1 x 1 map whose output is 1 x 1: the only tap that meets a pixel
    /// ([`Self::linear_part`] and its adjoint use them as a 1 x 1 conv).
    fn centre_tap(&self, in_hw: [usize; 2]) -> Result<Option<Tensor>> {
        let p = self.padding;
        if in_hw != [1, 1] || p >= self.kernel_size() || self.out_len(1) != 1 {
            return Ok(None);
        }
        Ok(Some(
            self.weight.narrow(2, p, 1)?.narrow(3, p, 1)?.contiguous()?,
        ))
    }

    /// The adjoint W^T y of [`Self::linear_part`]: the transposed convolution
    /// with the same weights, mapping a batch (B, C_out, H_out, W_out) back to
    /// (B, C_in, H_in, W_in) with `in_hw = [H_in, W_in]` the size of the
    /// convolution's input. The input size must be given because PyTorch's
    /// floor rule maps several input lengths to one output length (for
    /// stride 2, 2m - 1 and 2m): a transposed convolution needs an output
    /// padding to reach it, and the trailing input positions that no window
    /// reads get zero.
    ///
    /// The forward pass is the GEMM Y = W cols(X) of im2col: W is the
    /// (C_out, C_in k^2) matrix of the kernel (per group), and cols(X) has
    /// one row per (input channel, tap (a, b)) and one column per output
    /// position (i, j), holding X[c, s i + a - p, s j + b - p] (0 in the
    /// padding). Its adjoint is X = cols^T(W^T Y): one GEMM with the
    /// transposed kernel (read in place, no copy), then col2im, which
    /// scatter-adds every entry of W^T Y onto the input pixel that entry of
    /// cols(X) was gathered from and drops the padding taps. Groups are g
    /// independent GEMMs (one batched call). A 1x1 stride-1 convolution
    /// needs no col2im: its adjoint is W^T Y itself.
    ///
    /// On a 1 x 1 map the forward pass's centre-tap case is mirrored: the
    /// adjoint is the 1 x 1 convolution with the transposed centre weights.
    ///
    /// Speed (batch 1, float32, 2 cores, ResNet sizes; `conv_adjoint_timings`
    /// in `tests/adjoint.rs`): 3-7x faster than candle's `conv_transpose2d`
    /// (a direct loop without groups), 2-15x faster than zero insertion
    /// (dilating Y by the stride) followed by `conv2d` with the flipped
    /// kernel, 1.1-2.7x faster than splitting that by output phase into
    /// stride-1 `conv2d` calls, 8-70x faster than candle's reverse mode, and
    /// as fast as or faster than the forward `conv2d` (which copies the
    /// kernel and im2cols on every call).
    pub fn linear_adjoint(&self, y: &Tensor, in_hw: [usize; 2]) -> Result<Tensor> {
        let (b, c_out, oh, ow) = y.dims4()?;
        let out_hw = [self.out_len(in_hw[0]), self.out_len(in_hw[1])];
        if c_out != self.out_channels() || [oh, ow] != out_hw {
            return Err(candle_core::Error::Msg(format!(
                "conv adjoint: cotangent ({b}, {c_out}, {oh}, {ow}) does not fit a conv with \
                 {} output channels and output size {out_hw:?} for input size {in_hw:?}",
                self.out_channels()
            ))
            .into());
        }
        if let Some(centre) = self.centre_tap(in_hw)? {
            return transposed_conv(&centre, [1, 1, 0], self.groups, y, in_hw);
        }
        let k = self.kernel_size();
        transposed_conv(
            &self.weight,
            [k, self.stride, self.padding],
            self.groups,
            y,
            in_hw,
        )
    }

    /// Values of the im2col buffer of [`Self::linear_part`] per image of
    /// spatial size `in_hw` (one row of C_in / groups x k^2 taps per output
    /// position; an upper bound on a 1 x 1 map, which uses the centre tap).
    pub fn im2col_len(&self, in_hw: [usize; 2]) -> usize {
        let k = self.kernel_size();
        self.out_len(in_hw[0]) * self.out_len(in_hw[1]) * self.weight.dims()[1] * k * k
    }

    /// Output spatial size for input size `len` (PyTorch floor rule).
    pub fn out_len(&self, len: usize) -> usize {
        (len + 2 * self.padding - self.kernel_size()) / self.stride + 1
    }

    /// Which output positions an input position influences, per spatial axis.
    pub fn footprint(&self, input: Interval, out_len: usize) -> Interval {
        input.through_window(self.kernel_size(), self.stride, self.padding, out_len)
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            weight: self.weight.to_dtype(dtype)?,
            bias: self.bias.as_ref().map(|b| b.to_dtype(dtype)).transpose()?,
            ..*self
        })
    }
}

/// W^T y for the kernel `w` (C_out, C_in / g, k, k) of a convolution with
/// `[k, stride, padding]` and `groups` on inputs of size `in_hw`, as
/// col2im(W^T Y) (see [`Conv2d::linear_adjoint`]).
fn transposed_conv(
    w: &Tensor,
    [k, s, p]: [usize; 3],
    groups: usize,
    y: &Tensor,
    in_hw: [usize; 2],
) -> Result<Tensor> {
    let (b, c_out, oh, ow) = y.dims4()?;
    let (c_out_g, c_in_g) = (c_out / groups, w.dims()[1]);
    let c_in = c_in_g * groups;
    // Per group, W^T is (C_in/g k^2, C_out/g), a transposed view that the GEMM reads column-major.
    let wt = w
        .reshape((groups, c_out_g, c_in_g * k * k))?
        .transpose(1, 2)?;
    // Per group, Y is (C_out/g, B H_out W_out) (a copy only for B > 1).
    let ym = y
        .reshape((b, groups, c_out_g, oh * ow))?
        .permute((1, 2, 0, 3))?
        .contiguous()?
        .reshape((groups, c_out_g, b * oh * ow))?;
    // (g, C_in/g k^2, B H_out W_out), row (c, a, b) of channel c = g C_in/g + i.
    let cols = wt.matmul(&ym)?;
    if k == 1 && s == 1 && p == 0 {
        return Ok(cols
            .reshape((c_in, b, oh, ow))?
            .transpose(0, 1)?
            .contiguous()?);
    }
    let geometry = conv::Im2Col::new(
        [b, c_in, in_hw[0], in_hw[1]],
        conv::Window {
            kernel: k,
            stride: s,
            padding: p,
        },
    );
    debug_assert_eq!(geometry.out_hw, [oh, ow]);
    match cols.dtype() {
        DType::F32 => col2im::<f32>(&cols, geometry),
        DType::F64 => col2im::<f64>(&cols, geometry),
        // Other float types are exact in f64.
        other => Ok(col2im::<f64>(&cols.to_dtype(DType::F64)?, geometry)?.to_dtype(other)?),
    }
}

/// [`conv::col2im`] of the contiguous CPU tensor `cols` ((C k^2) x (B H_out W_out)).
fn col2im<T: candle_core::WithDType>(cols: &Tensor, geometry: conv::Im2Col) -> Result<Tensor> {
    let (storage, layout) = cols.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return Err(candle_core::Error::Msg("conv adjoint: CPU tensors only".into()).into());
    };
    if !layout.is_contiguous() {
        return Err(candle_core::Error::Msg("col2im: strided columns".into()).into());
    }
    let out = conv::col2im(&cpu.as_slice::<T>()?[layout.start_offset()..], geometry);
    drop(storage);
    let [b, c, h, w] = geometry.input;
    Ok(Tensor::from_vec(out, (b, c, h, w), cols.device())?)
}

/// Eval-mode batch norm as the per-channel affine map y = scale * x + shift,
/// scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale
/// (computed in f64 from the stored parameters, then rounded to the model dtype).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// Per-channel scale, shape (1, C, 1, 1).
    pub scale: Tensor,
    /// Per-channel shift, shape (1, C, 1, 1).
    pub shift: Tensor,
    /// The stored parameters in f64, kept so that a copy in another dtype is exact.
    params: BatchNormParams,
}

/// The four stored batch-norm vectors (gamma, beta, running mean, running variance).
#[derive(Debug, Clone)]
pub struct BatchNormParams {
    pub gamma: Vec<f64>,
    pub beta: Vec<f64>,
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
}

impl BatchNorm {
    pub fn new(params: BatchNormParams, dtype: DType) -> Result<Self> {
        let c = params.gamma.len();
        let scale: Vec<f64> = params
            .gamma
            .iter()
            .zip(&params.var)
            .map(|(g, v)| g / (v + BN_EPS).sqrt())
            .collect();
        let shift: Vec<f64> = (0..c)
            .map(|i| params.beta[i] - params.mean[i] * scale[i])
            .collect();
        let as_channel = |v: Vec<f64>| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, (1, c, 1, 1), &Device::Cpu)?.to_dtype(dtype)?)
        };
        Ok(Self {
            scale: as_channel(scale)?,
            shift: as_channel(shift)?,
            params,
        })
    }

    pub fn params(&self) -> &BatchNormParams {
        &self.params
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)?)
    }

    /// The linear part scale * t.
    pub fn linear_part(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.broadcast_mul(&self.scale)?)
    }

    /// The adjoint of [`Self::linear_part`]: the map is diagonal, so it is
    /// itself, scale * y.
    pub fn linear_adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.linear_part(y)
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Self::new(self.params.clone(), dtype)
    }
}

/// One layer of a residual branch.
#[derive(Debug, Clone)]
pub enum Layer {
    Conv(Conv2d),
    Norm(BatchNorm),
    Relu,
}

/// What the forward pass of a branch records for its linearisation:
/// one mask relu'(pre-activation) per ReLU, shape (1, C, H, W), in the model dtype.
#[derive(Debug, Clone)]
pub struct BranchTrace {
    pub masks: Vec<Tensor>,
}

/// A residual branch F: a chain of layers.
#[derive(Debug, Clone)]
pub struct Branch {
    pub layers: Vec<Layer>,
}

/// relu'(x) with relu'(0) = 0, as a tensor of 0/1 in the dtype of `x`.
pub fn relu_mask(x: &Tensor) -> Result<Tensor> {
    Ok(x.gt(0.0)?.to_dtype(x.dtype())?)
}

impl Branch {
    /// F(x) without recording anything.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_range(0..self.layers.len(), x)
    }

    /// Layers `range` applied to `x`, recording nothing.
    pub fn forward_range(&self, range: std::ops::Range<usize>, x: &Tensor) -> Result<Tensor> {
        self.layers[range]
            .iter()
            .try_fold(x.clone(), |h, layer| match layer {
                Layer::Conv(c) => c.forward(&h),
                Layer::Norm(n) => n.forward(&h),
                Layer::Relu => Ok(h.relu()?),
            })
    }

    /// F(x), the value after the first `tap` layers (what a pre-activation
    /// block's shortcut reads), and the ReLU masks at x (batch size 1).
    pub fn forward_traced(&self, x: &Tensor, tap: usize) -> Result<(Tensor, Tensor, BranchTrace)> {
        let mut masks = Vec::new();
        let mut h = x.clone();
        let mut tapped = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if i == tap {
                tapped = h.clone();
            }
            h = match layer {
                Layer::Conv(c) => c.forward(&h)?,
                Layer::Norm(n) => n.forward(&h)?,
                Layer::Relu => {
                    masks.push(relu_mask(&h)?);
                    h.relu()?
                }
            };
        }
        if tap >= self.layers.len() {
            tapped = h.clone();
        }
        Ok((h, tapped, BranchTrace { masks }))
    }

    /// Apply the linearisation of layers `range` to a batch of tangents.
    /// `first_mask` is the index in `trace.masks` of the first ReLU in `range`.
    pub fn jvp_range(
        &self,
        trace: &BranchTrace,
        range: std::ops::Range<usize>,
        tangents: &Tensor,
    ) -> Result<Tensor> {
        let mut mask_index = self.relus_before(range.start);
        let mut t = tangents.clone();
        for layer in &self.layers[range] {
            t = match layer {
                Layer::Conv(c) => c.linear_part(&t)?,
                Layer::Norm(n) => n.linear_part(&t)?,
                Layer::Relu => {
                    mask_index += 1;
                    t.broadcast_mul(&trace.masks[mask_index - 1])?
                }
            };
        }
        Ok(t)
    }

    /// The adjoint of [`Self::jvp_range`]: (J_{range})^T applied to a batch
    /// of cotangents shaped like the output of layer `range.end - 1`, giving
    /// a batch shaped like the input of layer `range.start`. It walks
    /// `layers[range]` in reverse with each layer's adjoint: a convolution's
    /// transposed convolution ([`Conv2d::linear_adjoint`], which needs the
    /// spatial size before that layer), a batch norm's scale, a ReLU's mask
    /// (diagonal maps are their own adjoints). `in_hw` is the spatial size of
    /// the branch input (before layer 0, as in [`Self::footprints`]), not of
    /// layer `range.start`.
    pub fn vjp_range(
        &self,
        trace: &BranchTrace,
        range: std::ops::Range<usize>,
        cotangents: &Tensor,
        in_hw: [usize; 2],
    ) -> Result<Tensor> {
        let lens = [self.lens_after(in_hw[0]), self.lens_after(in_hw[1])];
        let hw_before = |i: usize| {
            if i == 0 {
                in_hw
            } else {
                [lens[0][i - 1], lens[1][i - 1]]
            }
        };
        let mut mask_index = self.relus_before(range.end);
        let mut q = cotangents.clone();
        for i in range.rev() {
            q = match &self.layers[i] {
                Layer::Conv(c) => c.linear_adjoint(&q, hw_before(i))?,
                Layer::Norm(n) => n.linear_adjoint(&q)?,
                Layer::Relu => {
                    mask_index -= 1;
                    q.broadcast_mul(&trace.masks[mask_index])?
                }
            };
        }
        Ok(q)
    }

    /// J_F t for a batch of tangents t.
    pub fn jvp(&self, trace: &BranchTrace, tangents: &Tensor) -> Result<Tensor> {
        self.jvp_range(trace, 0..self.layers.len(), tangents)
    }

    /// J_F^T q for a batch of cotangents q; `in_hw` is the branch input's spatial size.
    pub fn vjp(
        &self,
        trace: &BranchTrace,
        cotangents: &Tensor,
        in_hw: [usize; 2],
    ) -> Result<Tensor> {
        self.vjp_range(trace, 0..self.layers.len(), cotangents, in_hw)
    }

    /// Number of ReLU layers strictly before layer index `end`.
    pub fn relus_before(&self, end: usize) -> usize {
        self.layers[..end]
            .iter()
            .filter(|l| matches!(l, Layer::Relu))
            .count()
    }

    /// Layer indices of the inner ReLUs, in order.
    pub fn relu_positions(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| matches!(self.layers[i], Layer::Relu))
            .collect()
    }

    /// Spatial footprint of layers `range` on one axis: input position interval
    /// -> the output positions it can influence. `lens[i]` is the spatial length
    /// after layer i of the whole branch; `input_len` the length before layer 0.
    pub fn footprint_range(
        &self,
        range: std::ops::Range<usize>,
        lens: &[usize],
        input: Interval,
    ) -> Interval {
        range.fold(input, |iv, i| match &self.layers[i] {
            Layer::Conv(c) => c.footprint(iv, lens[i]),
            Layer::Norm(_) | Layer::Relu => iv,
        })
    }

    /// Footprints along H and W of layers `range`, for a branch input of
    /// spatial size `hw`: for every position entering the range, the
    /// positions after it that it can reach.
    pub fn footprints(&self, range: std::ops::Range<usize>, hw: [usize; 2]) -> [AxisFootprint; 2] {
        [0, 1].map(|axis| {
            let lens = self.lens_after(hw[axis]);
            let len_before = |i: usize| if i == 0 { hw[axis] } else { lens[i - 1] };
            let reach = (0..len_before(range.start))
                .map(|p| self.footprint_range(range.clone(), &lens, Interval::point(p)))
                .collect();
            AxisFootprint::new(reach, len_before(range.end))
        })
    }

    /// Shape (C, H, W) after layer `layer` for a branch input of shape `input`.
    pub fn shape_after(&self, input: [usize; 3], layer: usize) -> [usize; 3] {
        [
            self.channels_after(input[0])[layer],
            self.lens_after(input[1])[layer],
            self.lens_after(input[2])[layer],
        ]
    }

    /// Spatial length after every layer, for an input of spatial length `len`.
    pub fn lens_after(&self, len: usize) -> Vec<usize> {
        let mut cur = len;
        self.layers
            .iter()
            .map(|l| {
                if let Layer::Conv(c) = l {
                    cur = c.out_len(cur);
                }
                cur
            })
            .collect()
    }

    /// Channels after every layer, for `channels` input channels.
    pub fn channels_after(&self, channels: usize) -> Vec<usize> {
        let mut cur = channels;
        self.layers
            .iter()
            .map(|l| {
                if let Layer::Conv(c) = l {
                    cur = c.out_channels();
                }
                cur
            })
            .collect()
    }

    /// The dtype of the branch's weights (f32 when it has none).
    pub fn dtype(&self) -> DType {
        self.layers
            .iter()
            .find_map(|l| match l {
                Layer::Conv(c) => Some(c.weight.dtype()),
                _ => None,
            })
            .unwrap_or(DType::F32)
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(match l {
                    Layer::Conv(c) => Layer::Conv(c.to_dtype(dtype)?),
                    Layer::Norm(n) => Layer::Norm(n.to_dtype(dtype)?),
                    Layer::Relu => Layer::Relu,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }
}

/// The classifier head: y = W x + b on globally average-pooled features.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Shape (classes, features).
    pub weight: Tensor,
    /// Shape (classes).
    pub bias: Tensor,
}

impl Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::random::Rng;

    fn dot(a: &Tensor, b: &Tensor) -> f64 {
        (a * b).unwrap().sum_all().unwrap().to_scalar().unwrap()
    }

    fn norm(a: &Tensor) -> f64 {
        dot(a, a).sqrt()
    }

    /// <y, W x> = <W^T y, x> to 1e-12 for every kernel, stride, padding,
    /// groups and input size the architectures use (odd, even, non-square,
    /// 1 x 1, and shorter than the stride on one axis), and the stem's 7x7/2.
    #[test]
    fn conv_adjoint_passes_the_dot_product_test() {
        let mut rng = Rng(11);
        let configs = [
            // (c_in, c_out, k, stride, padding, groups)
            (4, 6, 3, 1, 1, 1),
            (4, 6, 3, 2, 1, 1),
            (4, 6, 1, 1, 0, 1),
            (4, 6, 1, 2, 0, 1),
            (3, 4, 7, 2, 3, 1),
            (8, 8, 3, 2, 1, 4),
            (8, 12, 3, 1, 1, 4),
            (4, 4, 3, 1, 0, 1),
            (4, 4, 5, 3, 2, 2),
        ];
        let sizes = [
            [7, 7],
            [5, 5],
            [6, 6],
            [7, 6],
            [1, 1],
            [1, 5],
            [2, 3],
            [8, 9],
        ];
        for (c_in, c_out, k, stride, padding, groups) in configs {
            let conv = Conv2d {
                weight: rng.tensor(&[c_out, c_in / groups, k, k], 1.0),
                bias: None,
                stride,
                padding,
                groups,
            };
            for hw in sizes {
                if hw[0] + 2 * padding < k || hw[1] + 2 * padding < k {
                    continue;
                }
                let x = rng.tensor(&[1, c_in, hw[0], hw[1]], 1.0);
                let wx = conv.linear_part(&x).unwrap();
                let y = rng.tensor(wx.dims(), 1.0);
                let wty = conv.linear_adjoint(&y, hw).unwrap();
                assert_eq!(wty.dims(), x.dims(), "{conv:?} {hw:?}");
                let (lhs, rhs) = (dot(&y, &wx), dot(&wty, &x));
                assert!(
                    (lhs - rhs).abs() <= 1e-12 * norm(&y) * norm(&wx),
                    "k{k} s{stride} p{padding} g{groups} {hw:?}: {lhs} vs {rhs}"
                );
            }
        }
    }

    /// A cotangent that does not fit the conv and input size is an error.
    #[test]
    fn conv_adjoint_refuses_a_wrong_shape() {
        let mut rng = Rng(3);
        let conv = Conv2d {
            weight: rng.tensor(&[4, 2, 3, 3], 1.0),
            bias: None,
            stride: 2,
            padding: 1,
            groups: 1,
        };
        let y = rng.tensor(&[1, 4, 4, 4], 1.0);
        assert!(conv.linear_adjoint(&y, [7, 7]).is_ok());
        assert!(conv.linear_adjoint(&y, [8, 8]).is_ok());
        assert!(conv.linear_adjoint(&y, [9, 9]).is_err());
        assert!(conv
            .linear_adjoint(&y.narrow(1, 0, 3).unwrap(), [7, 7])
            .is_err());
    }
}
