//! ResNets (torchvision and CIFAR) built from a state dict, evaluated with candle on the CPU.

pub mod arch;
pub mod block;
pub mod conv;
pub mod fuzzing;
pub mod geometry;
pub mod layers;
pub mod random;

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
pub use arch::{ArchSpec, BlockType, Family, LayerSpec, ShortcutSpec, ShortcutType, StemSpec};
pub use block::{BlockTrace, JacobianKind, ResidualBlock, Shortcut};
use layers::{BatchNorm, BatchNormParams, Branch, Conv2d, Layer, Linear};

/// Named f32 tensors, the model's view of a checkpoint.
pub trait WeightSource {
    /// Shape and row-major values of a tensor.
    fn tensor(&self, name: &str) -> Option<(&[usize], &[f32])>;
    /// Every tensor name with its shape.
    fn shapes(&self) -> BTreeMap<String, Vec<usize>>;
}

impl WeightSource for BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    fn tensor(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.get(name).map(|(s, v)| (s.as_slice(), v.as_slice()))
    }

    fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.iter()
            .map(|(k, (s, _))| (k.clone(), s.clone()))
            .collect()
    }
}

impl WeightSource for stiffness_checkpoint::StateDict {
    fn tensor(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.get(name)
            .map(|t| (t.shape.as_slice(), t.values.as_slice()))
    }

    fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.iter()
            .map(|(k, t)| (k.to_string(), t.shape.clone()))
            .collect()
    }
}

/// The stem: conv, then batch norm and ReLU (not before pre-activation
/// blocks), and for torchvision a 3x3/2 max pool (padding 1).
#[derive(Debug, Clone)]
pub struct Stem {
    pub conv: Conv2d,
    pub norm: Option<BatchNorm>,
    pub max_pool: bool,
}

impl Stem {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv.forward(x)?;
        let h = match &self.norm {
            Some(norm) => norm.forward(&h)?.relu()?,
            None => h,
        };
        if !self.max_pool {
            return Ok(h);
        }
        // After the ReLU every value is >= 0 and every window holds at least one
        // real element, so zero padding gives the same maximum as -inf padding.
        let padded = h.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
        Ok(padded.max_pool2d_with_stride(3, 2)?)
    }

    fn out_shape(&self, input: [usize; 3]) -> [usize; 3] {
        let conv = |len| self.conv.out_len(len);
        let pool = |len: usize| {
            if self.max_pool {
                (len + 2 - 3) / 2 + 1
            } else {
                len
            }
        };
        [
            self.conv.out_channels(),
            pool(conv(input[1])),
            pool(conv(input[2])),
        ]
    }
}

/// Shape information of one residual block for a given input size.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlockShape {
    pub name: String,
    pub input: [usize; 3],
    pub output: [usize; 3],
    /// n = C*H*W of the input.
    pub n: usize,
    pub square: bool,
}

/// A ResNet classifier in evaluation mode.
#[derive(Debug, Clone)]
pub struct ResNet {
    pub spec: ArchSpec,
    pub stem: Stem,
    pub blocks: Vec<ResidualBlock>,
    /// A batch norm and ReLU before the pooling (WideResNet's final `bn1`).
    pub final_norm: Option<BatchNorm>,
    pub head: Linear,
}

impl ResNet {
    /// Build from named tensors; the architecture is inferred unless `arch` names one.
    pub fn from_weights(
        weights: &dyn WeightSource,
        arch: Option<&str>,
        source: &str,
        dtype: DType,
    ) -> Result<Self> {
        let shapes = weights.shapes();
        let spec = match arch {
            None => arch::infer(&shapes, source)?,
            Some(name) => {
                let inferred_io = shapes
                    .get("conv1.weight")
                    .zip(
                        shapes
                            .get("fc.weight")
                            .or_else(|| shapes.get("linear.weight")),
                    )
                    .map(|(c, h)| {
                        (
                            c.get(1).copied().unwrap_or(3),
                            h.first().copied().unwrap_or(10),
                        )
                    })
                    .unwrap_or((3, 10));
                ArchSpec::preset(name, inferred_io.0, inferred_io.1)?
            }
        };
        Self::with_spec(spec, weights, source, dtype)
    }

    /// Build architecture `spec` from named tensors, after checking that
    /// they fit it (names, shapes, finite values).
    pub fn with_spec(
        spec: ArchSpec,
        weights: &dyn WeightSource,
        source: &str,
        dtype: DType,
    ) -> Result<Self> {
        arch::validate(&spec, &weights.shapes(), source)?;
        check_values(&spec, weights, source)?;
        Builder { weights, dtype }.build(spec)
    }

    /// Logits for a batch (B, C, H, W).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_visiting(x, |_, _| Ok(()))
    }

    /// Logits, calling `visit(block_index, block_input)` before every block.
    pub fn forward_visiting(
        &self,
        x: &Tensor,
        mut visit: impl FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let mut h = self.stem.forward(x)?;
        for (i, block) in self.blocks.iter().enumerate() {
            visit(i, &h)?;
            h = block.forward(&h)?;
        }
        if let Some(norm) = &self.final_norm {
            h = norm.forward(&h)?.relu()?;
        }
        let pooled = h.mean((2, 3))?;
        self.head.forward(&pooled)
    }

    /// Number of trainable parameters (running statistics excluded).
    pub fn parameter_count(&self) -> usize {
        self.spec
            .expected_tensors()
            .iter()
            .filter(|(n, _)| !n.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Every block's shapes for an input of shape (C, H, W).
    pub fn block_shapes(&self, input: [usize; 3]) -> Result<Vec<BlockShape>> {
        if input.contains(&0) {
            return Err(Error::Usage(format!(
                "input shape {}x{}x{} has a zero-length axis: there is nothing to analyse",
                input[0], input[1], input[2]
            )));
        }
        if input[0] != self.spec.in_channels {
            return Err(Error::Usage(format!(
                "input has {} channels but the model expects {}",
                input[0], self.spec.in_channels
            )));
        }
        let mut shape = self.stem.out_shape(input);
        let mut out = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            if shape[1] == 0 || shape[2] == 0 {
                return Err(Error::Usage(format!(
                    "input size {}x{} is too small for {}: block {} would get an empty map",
                    input[1],
                    input[2],
                    self.spec.name(),
                    block.name
                )));
            }
            let output = block.out_shape(shape);
            out.push(BlockShape {
                name: block.name.clone(),
                input: shape,
                output,
                n: shape.iter().product(),
                square: output == shape,
            });
            shape = output;
        }
        Ok(out)
    }
}

/// Refuse weights that would silently become numbers: every value of every
/// tensor the architecture uses must be finite, and batch-norm running
/// variances non-negative (`var + eps` is under a square root). Checked once,
/// on the float32 values, before anything is built.
fn check_values(spec: &ArchSpec, weights: &dyn WeightSource, source: &str) -> Result<()> {
    for (name, _) in spec.expected_tensors() {
        let Some((_, values)) = weights.tensor(&name) else {
            continue;
        };
        let bad = |what: &str, fix: &str, test: &dyn Fn(f32) -> bool| {
            let count = values.iter().filter(|v| test(**v)).count();
            let first = values.iter().position(|v| test(*v));
            match first {
                None => Ok(()),
                Some(i) => Err(Error::Model(format!(
                    "{source}: tensor {name} has {count} {what} value(s) of {} (first at flat \
                     index {i}: {}); {fix}",
                    values.len(),
                    values[i]
                ))),
            }
        };
        bad(
            "non-finite",
            "the checkpoint is corrupt or diverged in training",
            &|v| !v.is_finite(),
        )?;
        if name.ends_with("running_var") {
            bad(
                "negative",
                "a variance cannot be negative: the checkpoint is corrupt",
                &|v| v < 0.0,
            )?;
        }
    }
    Ok(())
}

struct Builder<'a> {
    weights: &'a dyn WeightSource,
    dtype: DType,
}

impl Builder<'_> {
    fn build(&self, spec: ArchSpec) -> Result<ResNet> {
        let stem = spec.stem();
        let stem = Stem {
            conv: self.conv("conv1", stem.stride, 1)?,
            norm: stem.norm.map(|n| self.norm(n)).transpose()?,
            max_pool: stem.max_pool,
        };
        let blocks = spec
            .blocks()
            .iter()
            .map(|b| self.block(b))
            .collect::<Result<_>>()?;
        let final_norm = spec.final_norm().map(|n| self.norm(n)).transpose()?;
        let head = spec.head_name();
        let head = Linear {
            weight: self.tensor(&format!("{head}.weight"))?,
            bias: self.tensor(&format!("{head}.bias"))?,
        };
        Ok(ResNet {
            spec,
            stem,
            blocks,
            final_norm,
            head,
        })
    }

    /// The block as [`arch::BlockSpec`] wires it.
    fn block(&self, b: &arch::BlockSpec) -> Result<ResidualBlock> {
        let layers = b
            .branch()
            .iter()
            .map(|layer| {
                Ok(match layer {
                    LayerSpec::Conv {
                        prefix,
                        stride,
                        groups,
                        ..
                    } => Layer::Conv(self.conv(prefix, *stride, *groups)?),
                    LayerSpec::Norm { prefix, .. } => Layer::Norm(self.norm(prefix)?),
                    LayerSpec::Relu => Layer::Relu,
                })
            })
            .collect::<Result<_>>()?;
        let shortcut = match b.shortcut()? {
            ShortcutSpec::Identity => Shortcut::Identity,
            ShortcutSpec::OptionA { pad } => Shortcut::OptionA { pad },
            ShortcutSpec::Projection { conv, norm, stride } => Shortcut::Projection {
                conv: self.conv(&conv, stride, 1)?,
                norm: norm.map(|n| self.norm(&n)).transpose()?,
            },
        };
        Ok(ResidualBlock {
            name: b.name.clone(),
            branch: Branch { layers },
            shortcut,
            shortcut_tap: b.shortcut_tap(),
            output_relu: b.output_relu(),
        })
    }

    fn tensor(&self, name: &str) -> Result<Tensor> {
        let (shape, values) = self
            .weights
            .tensor(name)
            .ok_or_else(|| Error::Model(format!("missing tensor {name}")))?;
        Ok(Tensor::from_slice(values, shape, &Device::Cpu)?.to_dtype(self.dtype)?)
    }

    fn vector(&self, name: &str) -> Result<Vec<f64>> {
        let (_, values) = self
            .weights
            .tensor(name)
            .ok_or_else(|| Error::Model(format!("missing tensor {name}")))?;
        Ok(values.iter().map(|&v| f64::from(v)).collect())
    }

    /// A conv whose padding keeps "same" geometry: k / 2.
    fn conv(&self, prefix: &str, stride: usize, groups: usize) -> Result<Conv2d> {
        let weight = self.tensor(&format!("{prefix}.weight"))?;
        let k = weight.dims()[3];
        Ok(Conv2d {
            weight,
            bias: None,
            stride,
            padding: k / 2,
            groups,
        })
    }

    fn norm(&self, prefix: &str) -> Result<BatchNorm> {
        let params = BatchNormParams {
            gamma: self.vector(&format!("{prefix}.weight"))?,
            beta: self.vector(&format!("{prefix}.bias"))?,
            mean: self.vector(&format!("{prefix}.running_mean"))?,
            var: self.vector(&format!("{prefix}.running_var"))?,
        };
        BatchNorm::new(params, self.dtype)
    }
}

/// A model loaded from a checkpoint file, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub model: ResNet,
    pub path: std::path::PathBuf,
    pub format: stiffness_checkpoint::Format,
}

/// Load a checkpoint (safetensors, PyTorch zip or legacy) and build the ResNet
/// in `dtype`; the architecture is inferred unless `arch` names one.
pub fn load(path: &std::path::Path, arch: Option<&str>, dtype: DType) -> Result<LoadedModel> {
    let checkpoint = stiffness_checkpoint::load_state_dict(path)?;
    let model = ResNet::from_weights(&checkpoint.state, arch, &path.display().to_string(), dtype)?;
    Ok(LoadedModel {
        model,
        path: path.to_path_buf(),
        format: checkpoint.format,
    })
}
