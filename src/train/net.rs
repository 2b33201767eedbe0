//! The trainable ResNet: the parameters of an [`ArchSpec`] as candle [`Var`]s,
//! a training-mode forward pass, and the batch-norm running statistics.
//!
//! Tensor names, shapes and the layer structure are those of
//! [`crate::model`] (METHOD.md section 2), so [`Network::state_dict`] loads
//! into [`ResNet::from_weights`] and into PyTorch's `load_state_dict`.
//!
//! # Batch norm in training mode (PyTorch `BatchNorm2d`, momentum 0.1)
//! With n = B*H*W values per channel c of the batch,
//! mu = (1/n) sum x, sigma2 = (1/n) sum (x - mu)^2 (biased), the output is
//! y = gamma (x - mu) / sqrt(sigma2 + eps) + beta, eps = 1e-5, differentiated
//! through mu and sigma2. After the forward pass the buffers become
//! running_mean = 0.9 running_mean + 0.1 mu,
//! running_var = 0.9 running_var + 0.1 sigma2 * n / (n - 1) (unbiased),
//! and `num_batches_tracked` grows by one.
//!
//! # Initialisation (PyTorch / torchvision defaults, seeded)
//! Convolutions: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
//! N(0, 2 / (C_out k k)). Batch norm: gamma = 1, beta = 0, running mean 0,
//! running var 1. Linear head (`nn.Linear` default): weight and bias
//! U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor, Var};
use stiffness_checkpoint::{SourceDType, StateDict};

use crate::error::{Error, Result};
use crate::model::arch::BlockSpec;
use crate::model::layers::BN_EPS;
use crate::model::{ArchSpec, LayerSpec, ResNet, Shortcut, ShortcutSpec, WeightSource};
use crate::train::ops;
use crate::train::rng::{stream, Purpose};

/// PyTorch's default batch-norm momentum.
pub const BN_MOMENTUM: f64 = 0.1;

/// Batch statistics of one batch-norm layer, recorded by the forward pass.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// The layer's prefix, e.g. `layer1.0.bn1`.
    pub name: String,
    /// Per-channel batch mean.
    pub mean: Vec<f32>,
    /// Per-channel biased batch variance (the one used to normalise).
    pub var: Vec<f32>,
    /// Values per channel, n = B*H*W.
    pub count: usize,
}

/// Running statistics of one batch-norm layer.
#[derive(Debug, Clone)]
struct Running {
    mean: Vec<f32>,
    var: Vec<f32>,
    batches: i64,
}

/// A ResNet whose parameters are trainable candle variables.
#[derive(Debug)]
pub struct Network {
    spec: ArchSpec,
    /// Trainable tensors in state-dict order.
    params: Vec<(String, Var)>,
    index: HashMap<String, usize>,
    /// Batch-norm buffers by layer prefix.
    running: BTreeMap<String, Running>,
}

fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

impl Network {
    /// A freshly initialised network (see the module docs) from `seed`.
    pub fn init(spec: ArchSpec, seed: u64) -> Result<Self> {
        let head = spec.head_name();
        let mut values = BTreeMap::new();
        for (i, (name, shape)) in spec.expected_tensors().into_iter().enumerate() {
            let mut rng = stream(seed, Purpose::Init, i as u64, 0);
            let numel: usize = shape.iter().product();
            let data: Vec<f32> = if name.starts_with(&format!("{head}.")) {
                let fan_in = spec.feature_width() as f64;
                let bound = 1.0 / fan_in.sqrt();
                (0..numel)
                    .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
                    .collect()
            } else if shape.len() == 4 {
                let std = (2.0 / (shape[0] * shape[2] * shape[3]) as f64).sqrt();
                (0..numel).map(|_| (rng.gaussian() * std) as f32).collect()
            } else if name.ends_with(".weight") || name.ends_with(".running_var") {
                vec![1.0; numel]
            } else {
                vec![0.0; numel]
            };
            values.insert(name, (shape, data));
        }
        Self::from_weights(spec, &values)
    }

    /// A network holding the given weights (e.g. a checkpoint to resume).
    /// `num_batches_tracked` counters are read when present, else 0.
    pub fn from_weights(spec: ArchSpec, weights: &dyn WeightSource) -> Result<Self> {
        crate::model::arch::validate(&spec, &weights.shapes(), "weights to train")?;
        let mut params = Vec::new();
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        for (name, shape) in spec.expected_tensors() {
            let (_, values) = weights
                .tensor(&name)
                .ok_or_else(|| Error::Model(format!("missing tensor {name}")))?;
            if let Some(prefix) = name.strip_suffix(".running_mean") {
                let batches = weights
                    .tensor(&format!("{prefix}.num_batches_tracked"))
                    .and_then(|(_, v)| v.first())
                    .map_or(0, |&v| v as i64);
                let var = weights
                    .tensor(&format!("{prefix}.running_var"))
                    .map(|(_, v)| v.to_vec())
                    .unwrap_or_default();
                running.insert(
                    prefix.to_string(),
                    Running {
                        mean: values.to_vec(),
                        var,
                        batches,
                    },
                );
            } else if !is_buffer(&name) {
                let t = Tensor::from_slice(values, shape.as_slice(), &Device::Cpu)?;
                params.push((name, Var::from_tensor(&t)?));
            }
        }
        let index = params
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        Ok(Self {
            spec,
            params,
            index,
            running,
        })
    }

    pub fn spec(&self) -> &ArchSpec {
        &self.spec
    }

    /// The trainable tensors (name, variable) in state-dict order.
    pub fn parameters(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The variable called `name`.
    pub fn parameter(&self, name: &str) -> Result<&Var> {
        self.index
            .get(name)
            .map(|&i| &self.params[i].1)
            .ok_or_else(|| Error::Usage(format!("no trainable tensor named {name}")))
    }

    fn var(&self, name: &str) -> Result<Tensor> {
        Ok(self.parameter(name)?.as_tensor().clone())
    }

    /// Training-mode forward pass: logits (B, classes) and every batch-norm
    /// layer's batch statistics (in forward order). Buffers are not changed;
    /// apply the statistics with [`Network::update_running`].
    pub fn forward_train(&self, x: &Tensor) -> Result<(Tensor, Vec<BatchStats>)> {
        let mut stats = Vec::new();
        let stem = self.spec.stem();
        let mut h = self.conv("conv1", x, stem.stride, 1)?;
        if let Some(norm) = stem.norm {
            h = ops::relu(&self.batch_norm(norm, &h, &mut stats)?)?;
        }
        if stem.max_pool {
            h = ops::max_pool_3x3_s2(&h)?;
        }
        for block in self.spec.blocks() {
            h = self.block(&block, &h, &mut stats)?;
        }
        if let Some(norm) = self.spec.final_norm() {
            h = ops::relu(&self.batch_norm(norm, &h, &mut stats)?)?;
        }
        let pooled = h.mean((2, 3))?;
        let head = self.spec.head_name();
        let w = self.var(&format!("{head}.weight"))?;
        let b = self.var(&format!("{head}.bias"))?;
        let logits = pooled.matmul(&w.t()?)?.broadcast_add(&b)?;
        Ok((logits, stats))
    }

    /// One residual block, relu(F(x) + S(x)) or F(x) + S(x) (METHOD.md
    /// section 2), wired as the analysed model is ([`BlockSpec::branch`],
    /// `shortcut`, `shortcut_tap`, `output_relu`).
    fn block(&self, b: &BlockSpec, x: &Tensor, stats: &mut Vec<BatchStats>) -> Result<Tensor> {
        let mut h = x.clone();
        let mut tapped = x.clone();
        for (i, layer) in b.branch().into_iter().enumerate() {
            if i == b.shortcut_tap() {
                tapped = h.clone();
            }
            h = match layer {
                LayerSpec::Conv {
                    prefix,
                    stride,
                    groups,
                    ..
                } => self.conv(&prefix, &h, stride, groups)?,
                LayerSpec::Norm { prefix, .. } => self.batch_norm(&prefix, &h, stats)?,
                LayerSpec::Relu => ops::relu(&h)?,
            };
        }
        let shortcut = match b.shortcut()? {
            ShortcutSpec::Identity => tapped,
            ShortcutSpec::OptionA { pad } => Shortcut::OptionA { pad }.forward(&tapped)?,
            ShortcutSpec::Projection { conv, norm, stride } => {
                let s = self.conv(&conv, &tapped, stride, 1)?;
                match norm {
                    Some(norm) => self.batch_norm(&norm, &s, stats)?,
                    None => s,
                }
            }
        };
        if b.output_relu() {
            Ok(ops::add_relu(&h, &shortcut)?)
        } else {
            Ok((h + shortcut)?)
        }
    }

    /// A bias-free convolution with "same" padding k / 2 in `groups` groups.
    fn conv(&self, prefix: &str, x: &Tensor, stride: usize, groups: usize) -> Result<Tensor> {
        let w = self.var(&format!("{prefix}.weight"))?;
        let k = w.dims()[3];
        Ok(ops::conv2d_grouped(x, &w, stride, k / 2, groups)?)
    }

    /// Training-mode batch norm (module docs), recording the batch statistics.
    fn batch_norm(&self, prefix: &str, x: &Tensor, stats: &mut Vec<BatchStats>) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let gamma = self.var(&format!("{prefix}.weight"))?;
        let beta = self.var(&format!("{prefix}.bias"))?;
        let (y, mean, var) = ops::batch_norm_train(x, &gamma, &beta, BN_EPS)?;
        stats.push(BatchStats {
            name: prefix.to_string(),
            mean,
            var,
            count: b * h * w,
        });
        Ok(y)
    }

    /// running = (1 - 0.1) running + 0.1 batch, with the unbiased batch
    /// variance sigma2 * n / (n - 1); `num_batches_tracked` += 1.
    pub fn update_running(&mut self, stats: &[BatchStats]) -> Result<()> {
        let m = BN_MOMENTUM;
        for s in stats {
            let run = self
                .running
                .get_mut(&s.name)
                .ok_or_else(|| Error::Model(format!("no batch norm {}", s.name)))?;
            let bessel = s.count as f64 / (s.count.max(2) - 1) as f64;
            for (r, &b) in run.mean.iter_mut().zip(&s.mean) {
                *r = ((1.0 - m) * f64::from(*r) + m * f64::from(b)) as f32;
            }
            for (r, &b) in run.var.iter_mut().zip(&s.var) {
                *r = ((1.0 - m) * f64::from(*r) + m * f64::from(b) * bessel) as f32;
            }
            run.batches += 1;
        }
        Ok(())
    }

    /// The state dict with torchvision/CIFAR names: parameters, running
    /// statistics (float32) and `num_batches_tracked` (int64 scalars).
    pub fn state_dict(&self) -> Result<StateDict> {
        let mut out = StateDict::new();
        for (name, shape) in self.spec.expected_tensors() {
            let values = if let Some(prefix) = name.strip_suffix(".running_mean") {
                self.running_of(prefix)?.mean.clone()
            } else if let Some(prefix) = name.strip_suffix(".running_var") {
                let run = self.running_of(prefix)?;
                let mut counter =
                    stiffness_checkpoint::Tensor::new(vec![], vec![run.batches as f32])
                        .map_err(|e| Error::Model(e.to_string()))?;
                counter.source_dtype = SourceDType::I64;
                out.insert(name.clone(), tensor(shape, run.var.clone())?);
                out.insert(format!("{prefix}.num_batches_tracked"), counter);
                continue;
            } else {
                self.parameter(&name)?.flatten_all()?.to_vec1::<f32>()?
            };
            out.insert(name, tensor(shape, values)?);
        }
        Ok(out)
    }

    fn running_of(&self, prefix: &str) -> Result<&Running> {
        self.running
            .get(prefix)
            .ok_or_else(|| Error::Model(format!("no batch norm {prefix}")))
    }

    /// The evaluation-mode model of [`crate::model`] built from [`Network::state_dict`].
    pub fn eval_model(&self) -> Result<ResNet> {
        let state = self.state_dict()?;
        ResNet::with_spec(self.spec.clone(), &state, "trained network", DType::F32)
    }
}

fn tensor(shape: Vec<usize>, values: Vec<f32>) -> Result<stiffness_checkpoint::Tensor> {
    stiffness_checkpoint::Tensor::new(shape, values).map_err(|e| Error::Model(e.to_string()))
}
