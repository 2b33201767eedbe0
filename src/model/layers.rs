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

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
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

    /// The linear part W * t (the bias drops out of the derivative).
    ///
    /// On a 1 x 1 map (a 32 x 32 image in a torchvision ResNet's last stage)
    /// only the kernel's centre tap ever meets a pixel, the rest meets
    /// padding: that case is the 1 x 1 convolution with the centre weights,
    /// k^2 times fewer flops than im2col over the padding.
    pub fn linear_part(&self, t: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = t.dims4()?;
        let k = self.kernel_size();
        if h == 1 && w == 1 && self.padding < k && self.out_len(1) == 1 {
            let centre = self
                .weight
                .narrow(2, self.padding, 1)?
                .narrow(3, self.padding, 1)?
                .contiguous()?;
            return Ok(t.conv2d(&centre, 0, 1, 1, self.groups)?);
        }
        Ok(t.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?)
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

    /// J_F t for a batch of tangents t.
    pub fn jvp(&self, trace: &BranchTrace, tangents: &Tensor) -> Result<Tensor> {
        self.jvp_range(trace, 0..self.layers.len(), tangents)
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
