//! ResNet architectures and their inference from checkpoint tensor names and shapes.
//!
//! Two families are supported (METHOD.md section 2):
//! - torchvision ResNet18/34/50/101/152: stem conv7x7/2 + bn + relu + maxpool3x3/2,
//!   four stages of BasicBlocks or Bottlenecks (v1.5, stride on the 3x3),
//!   projection shortcuts `downsample.{0,1}`, head `fc`.
//! - CIFAR ResNets of depth 6n+2 (He et al. 2016): stem conv3x3/1 + bn + relu,
//!   three stages of BasicBlocks, option-A shortcuts (no parameters), head `linear`.
//!
//! In both, the first block of every stage but the first has stride 2.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// Stem and naming conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Torchvision,
    Cifar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockType {
    Basic,
    Bottleneck,
}

impl BlockType {
    /// Output channels per `planes`.
    pub fn expansion(self) -> usize {
        match self {
            BlockType::Basic => 1,
            BlockType::Bottleneck => 4,
        }
    }

    fn convs(self) -> usize {
        match self {
            BlockType::Basic => 2,
            BlockType::Bottleneck => 3,
        }
    }
}

/// What a shape-changing block uses as its shortcut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShortcutType {
    /// `downsample = bn(conv1x1(stride))`.
    Projection,
    /// Subsample and zero-pad channels (no parameters).
    OptionA,
}

/// A fully specified ResNet architecture.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArchSpec {
    pub family: Family,
    pub block: BlockType,
    /// Blocks in each stage.
    pub stage_blocks: Vec<usize>,
    /// `planes` of each stage (output channels = planes * expansion).
    pub stage_planes: Vec<usize>,
    pub stem_width: usize,
    pub in_channels: usize,
    pub num_classes: usize,
    pub shortcut: ShortcutType,
}

/// Names accepted by `--arch`.
pub const PRESETS: &[&str] = &[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
];

impl ArchSpec {
    /// A named architecture (`resnet18` ... `resnet152`, or `resnetD` with D = 6n + 2
    /// for the CIFAR family) with the given input channels and classes.
    pub fn preset(name: &str, in_channels: usize, num_classes: usize) -> Result<Self> {
        let (family, block, stage_blocks) = match name {
            "resnet18" => (Family::Torchvision, BlockType::Basic, vec![2, 2, 2, 2]),
            "resnet34" => (Family::Torchvision, BlockType::Basic, vec![3, 4, 6, 3]),
            "resnet50" => (Family::Torchvision, BlockType::Bottleneck, vec![3, 4, 6, 3]),
            "resnet101" => (
                Family::Torchvision,
                BlockType::Bottleneck,
                vec![3, 4, 23, 3],
            ),
            "resnet152" => (
                Family::Torchvision,
                BlockType::Bottleneck,
                vec![3, 8, 36, 3],
            ),
            other => {
                let depth: usize = other
                    .strip_prefix("resnet")
                    .and_then(|d| d.parse().ok())
                    .filter(|d| d % 6 == 2 && *d >= 8)
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "unknown architecture '{other}': expected one of {} or resnetD with D = 6n + 2",
                            PRESETS.join(", ")
                        ))
                    })?;
                let n = (depth - 2) / 6;
                (Family::Cifar, BlockType::Basic, vec![n, n, n])
            }
        };
        let (stem_width, stage_planes, shortcut) = match family {
            Family::Torchvision => (64, vec![64, 128, 256, 512], ShortcutType::Projection),
            Family::Cifar => (16, vec![16, 32, 64], ShortcutType::OptionA),
        };
        Ok(Self {
            family,
            block,
            stage_blocks,
            stage_planes,
            stem_width,
            in_channels,
            num_classes,
            shortcut,
        })
    }

    /// Number of weight layers (convolutions and the head), e.g. 18 for ResNet18.
    pub fn depth(&self) -> usize {
        self.block.convs() * self.stage_blocks.iter().sum::<usize>() + 2
    }

    /// `resnet<depth>`, the conventional name.
    pub fn name(&self) -> String {
        format!("resnet{}", self.depth())
    }

    pub fn head_name(&self) -> &'static str {
        match self.family {
            Family::Torchvision => "fc",
            Family::Cifar => "linear",
        }
    }

    /// How the stem is wired: conv1 (this stride), bn1, ReLU, and for
    /// torchvision a 3x3/2 max pool.
    pub fn stem(&self) -> StemSpec {
        let torchvision = self.family == Family::Torchvision;
        StemSpec {
            stride: if torchvision { 2 } else { 1 },
            max_pool: torchvision,
        }
    }

    pub fn stem_kernel(&self) -> usize {
        match self.family {
            Family::Torchvision => 7,
            Family::Cifar => 3,
        }
    }

    /// Channels leaving the last stage.
    pub fn feature_width(&self) -> usize {
        self.stage_planes.last().copied().unwrap_or(self.stem_width) * self.block.expansion()
    }

    /// Every block as (name, in_channels, planes, stride, has_projection).
    pub fn blocks(&self) -> Vec<BlockSpec> {
        let mut in_channels = self.stem_width;
        let mut out = Vec::new();
        for (stage, (&count, &planes)) in
            self.stage_blocks.iter().zip(&self.stage_planes).enumerate()
        {
            for i in 0..count {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let out_channels = planes * self.block.expansion();
                let changes_shape = stride != 1 || in_channels != out_channels;
                out.push(BlockSpec {
                    name: format!("layer{}.{}", stage + 1, i),
                    in_channels,
                    planes,
                    stride,
                    projection: changes_shape && self.shortcut == ShortcutType::Projection,
                });
                in_channels = out_channels;
            }
        }
        out
    }

    /// Every tensor the state dict must contain, with its shape.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let k = self.stem_kernel();
        out.push((
            "conv1.weight".into(),
            vec![self.stem_width, self.in_channels, k, k],
        ));
        push_bn(&mut out, "bn1", self.stem_width);
        for b in self.blocks() {
            for (conv, shape) in b.conv_shapes(self.block) {
                let channels = shape[0];
                out.push((format!("{}.conv{conv}.weight", b.name), shape));
                push_bn(&mut out, &format!("{}.bn{conv}", b.name), channels);
            }
            if b.projection {
                let out_channels = b.planes * self.block.expansion();
                out.push((
                    format!("{}.downsample.0.weight", b.name),
                    vec![out_channels, b.in_channels, 1, 1],
                ));
                push_bn(&mut out, &format!("{}.downsample.1", b.name), out_channels);
            }
        }
        let head = self.head_name();
        out.push((
            format!("{head}.weight"),
            vec![self.num_classes, self.feature_width()],
        ));
        out.push((format!("{head}.bias"), vec![self.num_classes]));
        out
    }
}

impl fmt::Display for ArchSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:?} family, {:?} blocks {:?}, widths {:?}, {} input channels, {} classes, {:?} shortcuts)",
            self.name(),
            self.family,
            self.block,
            self.stage_blocks,
            self.stage_planes,
            self.in_channels,
            self.num_classes,
            self.shortcut
        )
    }
}

/// One residual block of an [`ArchSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    pub name: String,
    pub in_channels: usize,
    pub planes: usize,
    pub stride: usize,
    pub projection: bool,
}

/// The stem after conv1: its stride, and whether a 3x3/2 max pool follows
/// the ReLU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StemSpec {
    pub stride: usize,
    pub max_pool: bool,
}

/// One layer of a residual branch F, in forward order; convolutions and
/// batch norms are named by their state-dict prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSpec {
    /// A bias-free convolution with "same" padding k / 2.
    Conv {
        prefix: String,
        stride: usize,
    },
    /// A batch norm.
    Norm {
        prefix: String,
    },
    Relu,
}

/// A block's shortcut S.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShortcutSpec {
    Identity,
    /// Subsample by 2 and zero-pad `pad` channels on each side (no parameters).
    OptionA {
        pad: usize,
    },
    /// A 1x1 convolution with `stride`, then a batch norm.
    Projection {
        conv: String,
        norm: String,
        stride: usize,
    },
}

impl BlockSpec {
    /// The branch F: conv, norm, then ReLU, conv, norm for every further
    /// convolution. The stride sits on the first 3x3 convolution: conv1 in a
    /// BasicBlock, conv2 in a Bottleneck (torchvision v1.5). The one wiring
    /// of a block, shared by the model and the trainer.
    pub fn branch(&self, block: BlockType) -> Vec<LayerSpec> {
        let strided = match block {
            BlockType::Basic => 1,
            BlockType::Bottleneck => 2,
        };
        let mut layers = Vec::new();
        for (i, (index, _)) in self.conv_shapes(block).iter().enumerate() {
            if i > 0 {
                layers.push(LayerSpec::Relu);
            }
            layers.push(LayerSpec::Conv {
                prefix: format!("{}.conv{index}", self.name),
                stride: if *index == strided { self.stride } else { 1 },
            });
            layers.push(LayerSpec::Norm {
                prefix: format!("{}.bn{index}", self.name),
            });
        }
        layers
    }

    /// The shortcut: the checkpoint's projection `downsample.{0,1}` when it
    /// has one, else option A when the shape changes (which needs stride 2
    /// and an even channel increase), else the identity.
    pub fn shortcut(&self, block: BlockType) -> Result<ShortcutSpec> {
        let out_channels = self.planes * block.expansion();
        if self.projection {
            return Ok(ShortcutSpec::Projection {
                conv: format!("{}.downsample.0", self.name),
                norm: format!("{}.downsample.1", self.name),
                stride: self.stride,
            });
        }
        if self.stride == 1 && self.in_channels == out_channels {
            return Ok(ShortcutSpec::Identity);
        }
        let grow = out_channels
            .checked_sub(self.in_channels)
            .filter(|g| g % 2 == 0);
        match grow {
            Some(g) if self.stride == 2 => Ok(ShortcutSpec::OptionA { pad: g / 2 }),
            _ => Err(Error::Model(format!(
                "block {}: shape changes ({} -> {} channels, stride {}) but there is no downsample \
                 projection and option A cannot express it",
                self.name, self.in_channels, out_channels, self.stride
            ))),
        }
    }

    /// (index, weight shape) of conv1, conv2[, conv3].
    pub fn conv_shapes(&self, block: BlockType) -> Vec<(usize, Vec<usize>)> {
        let (p, c) = (self.planes, self.in_channels);
        match block {
            BlockType::Basic => vec![(1, vec![p, c, 3, 3]), (2, vec![p, p, 3, 3])],
            BlockType::Bottleneck => vec![
                (1, vec![p, c, 1, 1]),
                (2, vec![p, p, 3, 3]),
                (3, vec![4 * p, p, 1, 1]),
            ],
        }
    }
}

fn push_bn(out: &mut Vec<(String, Vec<usize>)>, prefix: &str, channels: usize) {
    for field in ["weight", "bias", "running_mean", "running_var"] {
        out.push((format!("{prefix}.{field}"), vec![channels]));
    }
}

/// Infer the architecture from tensor names and shapes, then check that the
/// state dict holds exactly the tensors it needs (batch-norm
/// `num_batches_tracked` counters are ignored).
pub fn infer(shapes: &BTreeMap<String, Vec<usize>>, source: &str) -> Result<ArchSpec> {
    let spec = guess(shapes).map_err(|why| {
        Error::Model(format!(
            "{source}: not a recognised ResNet state dict: {why}. Expected torchvision ResNet18-152 \
             or CIFAR ResNet (6n+2) tensor names such as conv1.weight, layer1.0.conv1.weight, fc.weight"
        ))
    })?;
    validate(&spec, shapes, source)?;
    Ok(spec)
}

/// Check a state dict against a given architecture; the error lists missing,
/// unexpected and mis-shaped tensors.
pub fn validate(
    spec: &ArchSpec,
    shapes: &BTreeMap<String, Vec<usize>>,
    source: &str,
) -> Result<()> {
    let expected: BTreeMap<String, Vec<usize>> = spec.expected_tensors().into_iter().collect();
    if let Some((name, shape)) = expected.iter().find(|(_, s)| s.contains(&0)) {
        return Err(Error::Model(format!(
            "{source}: {name} would have shape {shape:?}: a zero-length axis (no channels, \
             input channels or classes) makes no network; the checkpoint is corrupt or not a ResNet"
        )));
    }
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !shapes.contains_key(*k))
        .collect();
    let unexpected: Vec<&String> = shapes
        .keys()
        .filter(|k| !expected.contains_key(*k) && !k.ends_with("num_batches_tracked"))
        .collect();
    let misshaped: Vec<String> = expected
        .iter()
        .filter_map(|(k, want)| {
            let got = shapes.get(k)?;
            (got != want).then(|| format!("{k}: expected {want:?}, found {got:?}"))
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() {
        return Ok(());
    }
    let list = |v: Vec<String>| -> String {
        if v.is_empty() {
            "none".into()
        } else if v.len() > 12 {
            format!("{} (and {} more)", v[..12].join(", "), v.len() - 12)
        } else {
            v.join(", ")
        }
    };
    Err(Error::Model(format!(
        "{source}: the checkpoint does not fit {}.\n  missing: {}\n  unexpected: {}\n  mis-shaped: {}\n\
         Check --arch, or that the file is a ResNet state dict.",
        spec.name(),
        list(missing.into_iter().cloned().collect()),
        list(unexpected.into_iter().cloned().collect()),
        list(misshaped),
    )))
}

fn guess(shapes: &BTreeMap<String, Vec<usize>>) -> std::result::Result<ArchSpec, String> {
    let stem = shapes.get("conv1.weight").ok_or("no conv1.weight")?;
    let [stem_width, in_channels, k, _] = stem[..] else {
        return Err(format!(
            "conv1.weight has shape {stem:?}, expected 4 dimensions"
        ));
    };
    let family = match k {
        7 => Family::Torchvision,
        3 => Family::Cifar,
        _ => {
            return Err(format!(
                "conv1 kernel {k}x{k} is neither 7x7 (torchvision) nor 3x3 (CIFAR)"
            ))
        }
    };
    let block = if shapes.contains_key("layer1.0.conv3.weight") {
        BlockType::Bottleneck
    } else {
        BlockType::Basic
    };
    let stage_blocks: Vec<usize> = (1..)
        .map(|stage| {
            (0..)
                .take_while(|i| shapes.contains_key(&format!("layer{stage}.{i}.conv1.weight")))
                .count()
        })
        .take_while(|&n| n > 0)
        .collect();
    if stage_blocks.is_empty() {
        return Err("no residual blocks (layer1.0.conv1.weight is missing)".into());
    }
    let stage_planes = (1..=stage_blocks.len())
        .map(|stage| leading_dim(shapes, &format!("layer{stage}.0.conv1.weight")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let head = ["fc.weight", "linear.weight"]
        .into_iter()
        .find(|n| shapes.contains_key(*n))
        .ok_or("no classifier head (fc.weight or linear.weight)")?;
    let has_projection = shapes.keys().any(|k| k.contains(".downsample."));
    Ok(ArchSpec {
        family,
        block,
        stage_blocks,
        stage_planes,
        stem_width,
        in_channels,
        num_classes: leading_dim(shapes, head)?,
        shortcut: if has_projection || family == Family::Torchvision {
            ShortcutType::Projection
        } else {
            ShortcutType::OptionA
        },
    })
}

/// The first dimension of tensor `name`, which must exist and have rank >= 1.
fn leading_dim(
    shapes: &BTreeMap<String, Vec<usize>>,
    name: &str,
) -> std::result::Result<usize, String> {
    let shape = shapes.get(name).ok_or(format!("no {name}"))?;
    shape.first().copied().ok_or(format!(
        "{name} is a scalar (shape []), expected a weight matrix or kernel"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes_of(spec: &ArchSpec) -> BTreeMap<String, Vec<usize>> {
        spec.expected_tensors().into_iter().collect()
    }

    fn conv(prefix: &str, stride: usize) -> LayerSpec {
        LayerSpec::Conv {
            prefix: prefix.into(),
            stride,
        }
    }

    fn norm(prefix: &str) -> LayerSpec {
        LayerSpec::Norm {
            prefix: prefix.into(),
        }
    }

    /// The stride sits on conv1 of a BasicBlock and on conv2 (the 3x3) of a
    /// Bottleneck, with a ReLU between every (conv, norm) pair.
    #[test]
    fn branch_places_the_stride_on_the_first_3x3_conv() {
        let r18 = ArchSpec::preset("resnet18", 3, 10).unwrap().blocks();
        let b = &r18[2]; // layer2.0
        assert_eq!(
            b.branch(BlockType::Basic),
            [
                conv("layer2.0.conv1", 2),
                norm("layer2.0.bn1"),
                LayerSpec::Relu,
                conv("layer2.0.conv2", 1),
                norm("layer2.0.bn2"),
            ]
        );
        let r50 = ArchSpec::preset("resnet50", 3, 10).unwrap().blocks();
        let strides: Vec<usize> = r50[3]
            .branch(BlockType::Bottleneck)
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv { stride, .. } => Some(*stride),
                _ => None,
            })
            .collect();
        assert_eq!(r50[3].name, "layer2.0");
        assert_eq!(strides, [1, 2, 1]);
    }

    /// Identity when the shape is kept, the checkpoint's projection when it
    /// has one, option A (pad (out - in) / 2 channels per side) otherwise,
    /// and an error where option A cannot express the change.
    #[test]
    fn shortcut_follows_the_shape_change_and_the_checkpoint() {
        let r18 = ArchSpec::preset("resnet18", 3, 10).unwrap().blocks();
        assert_eq!(
            r18[0].shortcut(BlockType::Basic).unwrap(),
            ShortcutSpec::Identity
        );
        assert_eq!(
            r18[2].shortcut(BlockType::Basic).unwrap(),
            ShortcutSpec::Projection {
                conv: "layer2.0.downsample.0".into(),
                norm: "layer2.0.downsample.1".into(),
                stride: 2,
            }
        );
        let r20 = ArchSpec::preset("resnet20", 3, 10).unwrap().blocks();
        assert_eq!(r20[3].name, "layer2.0");
        assert_eq!(
            r20[3].shortcut(BlockType::Basic).unwrap(),
            ShortcutSpec::OptionA { pad: 8 }
        );
        let odd = BlockSpec {
            stride: 1,
            ..r20[3].clone()
        };
        let err = odd.shortcut(BlockType::Basic).unwrap_err().to_string();
        assert!(err.contains("option A cannot express it"), "{err}");
    }

    #[test]
    fn every_preset_is_inferred_back_from_its_own_tensors() {
        for name in PRESETS {
            let spec = ArchSpec::preset(name, 3, 10).unwrap();
            assert_eq!(spec.name(), *name);
            assert_eq!(infer(&shapes_of(&spec), "test").unwrap(), spec);
        }
    }

    #[test]
    fn resnet18_has_torchvision_parameter_count() {
        let spec = ArchSpec::preset("resnet18", 3, 1000).unwrap();
        let params: usize = spec
            .expected_tensors()
            .iter()
            .filter(|(n, _)| !n.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(params, 11_689_512);
        let spec = ArchSpec::preset("resnet50", 3, 1000).unwrap();
        let params: usize = spec
            .expected_tensors()
            .iter()
            .filter(|(n, _)| !n.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(params, 25_557_032);
    }

    #[test]
    fn mismatches_are_listed() {
        let spec = ArchSpec::preset("resnet20", 3, 10).unwrap();
        let mut shapes = shapes_of(&spec);
        shapes.remove("layer2.1.bn1.weight");
        shapes.insert("extra.weight".into(), vec![1]);
        shapes.insert("layer1.0.conv1.weight".into(), vec![16, 16, 5, 5]);
        let err = validate(&spec, &shapes, "x.th").unwrap_err().to_string();
        assert!(err.contains("missing: layer2.1.bn1.weight"), "{err}");
        assert!(err.contains("unexpected: extra.weight"), "{err}");
        assert!(
            err.contains("layer1.0.conv1.weight: expected [16, 16, 3, 3], found [16, 16, 5, 5]"),
            "{err}"
        );
    }

    #[test]
    fn non_resnet_is_refused_with_reason() {
        let mut shapes = BTreeMap::new();
        shapes.insert("encoder.weight".to_string(), vec![3, 3]);
        let err = infer(&shapes, "bert.pt").unwrap_err().to_string();
        assert!(
            err.contains("bert.pt") && err.contains("no conv1.weight"),
            "{err}"
        );
    }
}
