//! Synthetic residual blocks and networks with seeded random weights, for
//! property tests and benchmarks (deterministic, no extra dependency).
//!
//! Convolution weights ~ N(0, 1/fan_in) (approximately: a sum of four
//! uniforms); batch norm gamma ~ U(0.5, 1.5), beta ~ 0.1 N(0,1) + shift,
//! running mean ~ 0.1 N(0,1), running var ~ U(0.5, 1.5). A large shift forces
//! every ReLU on (+100) or off (-100).

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use crate::model::layers::{BatchNorm, BatchNormParams, Branch, Conv2d, Layer};
use crate::model::{ArchSpec, ResidualBlock, Shortcut};

/// SplitMix64's increment, 2^64 / phi.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Shuffle `items` in place (Fisher-Yates, from the last item down).
pub fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// SplitMix64: a small, well-mixed, reproducible generator, with bounded,
/// uniform and normal draws.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// Uniform in 0..bound (bound > 0), by rejection (no modulo bias).
    pub fn below(&mut self, bound: usize) -> usize {
        let bound = bound as u64;
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % bound) as usize;
            }
        }
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal by the Box-Muller transform (exact in distribution).
    pub fn gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Sum of 4 uniforms, centred and scaled to unit variance (roughly normal, cheap).
    pub fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.uniform()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }

    /// A float64 tensor of N(0, scale^2)-like entries.
    pub fn tensor(&mut self, shape: &[usize], scale: f64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| self.normal() * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

/// Where the ReLUs sit: random, or forced all on / all off by a large BN shift.
#[derive(Clone, Copy, Debug)]
pub enum Masks {
    Random,
    AllOn,
    AllOff,
}

/// A k x k convolution with padding k / 2.
pub fn conv(rng: &mut Rng, c_out: usize, c_in: usize, k: usize, stride: usize) -> Conv2d {
    let scale = 1.0 / ((c_in * k * k) as f64).sqrt();
    Conv2d {
        weight: rng.tensor(&[c_out, c_in, k, k], scale),
        bias: None,
        stride,
        padding: k / 2,
        groups: 1,
    }
}

/// An eval-mode batch norm whose beta is offset by `shift`.
pub fn norm(rng: &mut Rng, c: usize, shift: f64) -> BatchNorm {
    let mut draw = |f: &mut dyn FnMut(&mut Rng) -> f64| (0..c).map(|_| f(rng)).collect::<Vec<_>>();
    let params = BatchNormParams {
        gamma: draw(&mut |r| 0.5 + r.uniform()),
        beta: draw(&mut |r| 0.1 * r.normal() + shift),
        mean: draw(&mut |r| 0.1 * r.normal()),
        var: draw(&mut |r| 0.5 + r.uniform()),
    };
    BatchNorm::new(params, DType::F64).unwrap()
}

fn shift(masks: Masks) -> f64 {
    match masks {
        Masks::Random => 0.0,
        Masks::AllOn => 100.0,
        Masks::AllOff => -100.0,
    }
}

/// A BasicBlock c_in -> planes with the given stride and shortcut.
pub fn basic(
    rng: &mut Rng,
    c_in: usize,
    planes: usize,
    stride: usize,
    shortcut: Shortcut,
    masks: Masks,
) -> ResidualBlock {
    let s = shift(masks);
    let layers = vec![
        Layer::Conv(conv(rng, planes, c_in, 3, stride)),
        Layer::Norm(norm(rng, planes, s)),
        Layer::Relu,
        Layer::Conv(conv(rng, planes, planes, 3, 1)),
        Layer::Norm(norm(rng, planes, s)),
    ];
    ResidualBlock::post_activation("basic".into(), Branch { layers }, shortcut)
}

/// A Bottleneck c_in -> 4 * width (stride on the 3x3).
pub fn bottleneck(
    rng: &mut Rng,
    c_in: usize,
    width: usize,
    stride: usize,
    shortcut: Shortcut,
    masks: Masks,
) -> ResidualBlock {
    grouped_bottleneck(rng, c_in, width, 1, stride, shortcut, masks)
}

/// A ResNeXt Bottleneck c_in -> 4 * width whose 3x3 convolution (with the
/// stride) has `groups` groups.
pub fn grouped_bottleneck(
    rng: &mut Rng,
    c_in: usize,
    width: usize,
    groups: usize,
    stride: usize,
    shortcut: Shortcut,
    masks: Masks,
) -> ResidualBlock {
    let s = shift(masks);
    let grouped = Conv2d {
        groups,
        ..conv(rng, width, width / groups, 3, stride)
    };
    let layers = vec![
        Layer::Conv(conv(rng, width, c_in, 1, 1)),
        Layer::Norm(norm(rng, width, s)),
        Layer::Relu,
        Layer::Conv(grouped),
        Layer::Norm(norm(rng, width, s)),
        Layer::Relu,
        Layer::Conv(conv(rng, 4 * width, width, 1, 1)),
        Layer::Norm(norm(rng, 4 * width, s)),
    ];
    ResidualBlock::post_activation("bottleneck".into(), Branch { layers }, shortcut)
}

/// A pre-activation BasicBlock c_in -> planes: B(x) = F(x) + S(x) with
/// F = conv2(relu(bn2(conv1(relu(bn1(x)))))); with `project`, S is a 1x1
/// convolution of relu(bn1(x)) (PreActResNet, WideResNet), else the
/// identity (then c_in = planes and stride 1).
pub fn preact(
    rng: &mut Rng,
    c_in: usize,
    planes: usize,
    stride: usize,
    project: bool,
    masks: Masks,
) -> ResidualBlock {
    let s = shift(masks);
    let layers = vec![
        Layer::Norm(norm(rng, c_in, s)),
        Layer::Relu,
        Layer::Conv(conv(rng, planes, c_in, 3, stride)),
        Layer::Norm(norm(rng, planes, s)),
        Layer::Relu,
        Layer::Conv(conv(rng, planes, planes, 3, 1)),
    ];
    let (shortcut, shortcut_tap) = if project {
        let conv = conv(rng, planes, c_in, 1, stride);
        (Shortcut::Projection { conv, norm: None }, 2)
    } else {
        (Shortcut::Identity, 0)
    };
    ResidualBlock {
        name: "preact".into(),
        branch: Branch { layers },
        shortcut,
        shortcut_tap,
        output_relu: false,
    }
}

/// A torchvision projection shortcut (1x1 conv + batch norm).
pub fn projection(rng: &mut Rng, c_out: usize, c_in: usize, stride: usize) -> Shortcut {
    Shortcut::Projection {
        conv: conv(rng, c_out, c_in, 1, stride),
        norm: Some(norm(rng, c_out, 0.0)),
    }
}

/// Every tensor of `spec` with random values (batch-norm statistics in their
/// usual ranges), as a [`crate::model::WeightSource`].
pub fn weights(spec: &ArchSpec, seed: u64) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut rng = Rng(seed);
    spec.expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            let values = (0..n)
                .map(|_| {
                    let v = if name.ends_with("running_var")
                        || (shape.len() == 1 && name.ends_with(".weight"))
                    {
                        0.5 + rng.uniform()
                    } else if shape.len() == 1 {
                        0.1 * rng.normal()
                    } else {
                        rng.normal() / (fan_in as f64).sqrt()
                    };
                    v as f32
                })
                .collect();
            (name, (shape, values))
        })
        .collect()
}
