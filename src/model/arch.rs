//! ResNet architectures and their inference from checkpoint tensor names and shapes.
//!
//! Five families (METHOD.md section 2; `docs/ARCHITECTURE.md`):
//! - torchvision ResNet18-152, ResNeXt (`resnext50_32x4d`, grouped 3x3
//!   convolutions) and wide ResNets (`wide_resnet50_2`): stem conv7x7/2,
//!   bn, relu, maxpool3x3/2; four stages of BasicBlocks or Bottlenecks
//!   (v1.5, stride on the 3x3), projection shortcuts `downsample.{0,1}`,
//!   head `fc`. timm's plain ResNets use the same names.
//! - CIFAR ResNets of depth 6n+2 (He et al. 2016): stem conv3x3/1 + bn + relu,
//!   three stages of BasicBlocks, option-A shortcuts (no parameters), head `linear`.
//! - `pytorch-cifar` ResNet18-152 (kuangliu): torchvision's blocks with a
//!   conv3x3/1 + bn + relu stem, no max pool, shortcuts `shortcut.{0,1}`,
//!   head `linear`.
//! - `pytorch-cifar` PreActResNet18/34: pre-activation blocks
//!   B(x) = F(x) + S(x), F = conv2(relu(bn2(conv1(relu(bn1(x)))))), the
//!   projection `shortcut.0` (no bn) reading relu(bn1(x)); stem conv1 alone.
//! - WideResNets (RobustBench `WideResNet`, WRN-D-K, D = 6n + 4): the same
//!   pre-activation blocks named `blockS.layer.i` with `convShortcut`, stem
//!   conv1 alone, and a final `bn1` + relu before the head `fc`.
//!
//! In all, the first block of every stage but the first has stride 2.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// Naming, stem, block and head conventions of a code base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Torchvision,
    Cifar,
    PytorchCifar,
    PreAct,
    Wrn,
}

impl Family {
    /// Pre-activation blocks: B = F + S (no output ReLU), every conv
    /// preceded by its bn and ReLU.
    pub fn preactivation(self) -> bool {
        matches!(self, Family::PreAct | Family::Wrn)
    }

    /// The state-dict name of block `i` (0-based) of stage `stage` (1-based).
    pub fn block_name(self, stage: usize, i: usize) -> String {
        match self {
            Family::Wrn => format!("block{stage}.layer.{i}"),
            _ => format!("layer{stage}.{i}"),
        }
    }

    /// The projection shortcut's conv and (optional) bn names in a block.
    fn projection_names(self) -> (&'static str, Option<&'static str>) {
        match self {
            Family::Torchvision | Family::Cifar => ("downsample.0", Some("downsample.1")),
            Family::PytorchCifar => ("shortcut.0", Some("shortcut.1")),
            Family::PreAct => ("shortcut.0", None),
            Family::Wrn => ("convShortcut", None),
        }
    }
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
    /// `downsample = bn(conv1x1(stride))` (conv only in pre-activation blocks).
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
    /// Groups of the Bottleneck's 3x3 convolution (ResNeXt; 1 otherwise).
    pub groups: usize,
    /// Bottleneck width per group at 64 planes: the 3x3 convolution has
    /// planes * base_width / 64 * groups channels (64 for ResNet, 128 for
    /// wide_resnet50_2, 4 for resnext50_32x4d).
    pub base_width: usize,
}

/// Names accepted by `--arch` (with `resnetD`, D = 6n + 2, `wrn-D-K`,
/// D = 6n + 4, and `resnextD_GxWd` for other depths and widths).
pub const PRESETS: &[&str] = &[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "cifar-resnet18",
    "cifar-resnet34",
    "cifar-resnet50",
    "cifar-resnet101",
    "cifar-resnet152",
    "preact-resnet18",
    "preact-resnet34",
    "wrn-16-4",
    "wrn-28-10",
    "wrn-34-10",
    "wrn-70-16",
];

/// Blocks per stage of the ImageNet-style depths (torchvision, pytorch-cifar).
fn imagenet_stages(depth: usize) -> Option<(BlockType, Vec<usize>)> {
    Some(match depth {
        18 => (BlockType::Basic, vec![2, 2, 2, 2]),
        34 => (BlockType::Basic, vec![3, 4, 6, 3]),
        50 => (BlockType::Bottleneck, vec![3, 4, 6, 3]),
        101 => (BlockType::Bottleneck, vec![3, 4, 23, 3]),
        152 => (BlockType::Bottleneck, vec![3, 8, 36, 3]),
        _ => return None,
    })
}

impl ArchSpec {
    /// A named architecture (see [`PRESETS`]) with the given input channels
    /// and classes.
    pub fn preset(name: &str, in_channels: usize, num_classes: usize) -> Result<Self> {
        let unknown = || {
            Error::Usage(format!(
                "unknown architecture '{name}': expected one of {}, resnetD with D = 6n + 2, \
                 wrn-D-K with D = 6n + 4, or resnextD_GxWd",
                PRESETS.join(", ")
            ))
        };
        let number = |s: &str| s.parse::<usize>().ok().filter(|&v| v > 0);
        let imagenet = |depth: &str, family| {
            let (block, stages) = number(depth)
                .and_then(imagenet_stages)
                .ok_or_else(unknown)?;
            let base = Self::base(family, block, stages, [64, 128, 256, 512].to_vec(), 64);
            Ok::<_, Error>(base)
        };
        let mut spec = if let Some(rest) = name.strip_prefix("cifar-resnet") {
            imagenet(rest, Family::PytorchCifar)?
        } else if let Some(rest) = name.strip_prefix("preact-resnet") {
            let spec = imagenet(rest, Family::PreAct)?;
            if spec.block == BlockType::Bottleneck {
                return Err(Error::Usage(format!(
                    "{name}: pre-activation Bottleneck ResNets are not supported; use preact-resnet18 or preact-resnet34"
                )));
            }
            spec
        } else if let Some(rest) = name.strip_prefix("wrn-") {
            let (d, k) = rest.split_once('-').ok_or_else(unknown)?;
            let (d, k) = (
                number(d).ok_or_else(unknown)?,
                number(k).ok_or_else(unknown)?,
            );
            if d % 6 != 4 || d < 10 {
                return Err(unknown());
            }
            let n = (d - 4) / 6;
            Self::base(
                Family::Wrn,
                BlockType::Basic,
                vec![n; 3],
                vec![16 * k, 32 * k, 64 * k],
                16,
            )
        } else if let Some(rest) = name.strip_prefix("wide_resnet") {
            let (d, k) = rest.split_once('_').ok_or_else(unknown)?;
            let mut spec = imagenet(d, Family::Torchvision)?;
            spec.base_width = 64 * number(k).ok_or_else(unknown)?;
            spec
        } else if let Some(rest) = name.strip_prefix("resnext") {
            let (d, gw) = rest.split_once('_').ok_or_else(unknown)?;
            let (g, w) = gw
                .strip_suffix('d')
                .and_then(|gw| gw.split_once('x'))
                .ok_or_else(unknown)?;
            let mut spec = imagenet(d, Family::Torchvision)?;
            spec.groups = number(g).ok_or_else(unknown)?;
            spec.base_width = number(w).ok_or_else(unknown)?;
            spec
        } else {
            let depth = name.strip_prefix("resnet").ok_or_else(unknown)?;
            match number(depth).and_then(imagenet_stages) {
                Some(_) => imagenet(depth, Family::Torchvision)?,
                None => {
                    let d = number(depth)
                        .filter(|d| d % 6 == 2 && *d >= 8)
                        .ok_or_else(unknown)?;
                    let n = (d - 2) / 6;
                    Self::base(
                        Family::Cifar,
                        BlockType::Basic,
                        vec![n; 3],
                        vec![16, 32, 64],
                        16,
                    )
                }
            }
        };
        if spec.block == BlockType::Basic && (spec.groups != 1 || spec.base_width != 64) {
            return Err(Error::Usage(format!(
                "{name}: grouped or widened blocks need Bottleneck depths (50, 101, 152)"
            )));
        }
        spec.in_channels = in_channels;
        spec.num_classes = num_classes;
        Ok(spec)
    }

    /// The family's architecture with these stages and plain widths.
    fn base(
        family: Family,
        block: BlockType,
        stage_blocks: Vec<usize>,
        stage_planes: Vec<usize>,
        stem_width: usize,
    ) -> Self {
        Self {
            family,
            block,
            stage_blocks,
            stage_planes,
            stem_width,
            in_channels: 3,
            num_classes: 10,
            shortcut: match family {
                Family::Cifar => ShortcutType::OptionA,
                _ => ShortcutType::Projection,
            },
            groups: 1,
            base_width: 64,
        }
    }

    /// Number of weight layers (convolutions and the head), e.g. 18 for ResNet18.
    pub fn depth(&self) -> usize {
        self.block.convs() * self.stage_blocks.iter().sum::<usize>() + 2
    }

    /// The conventional name: `resnet50`, `resnext50_32x4d`,
    /// `wide_resnet50_2`, `resnet20`, `cifar-resnet18`, `preact-resnet18`,
    /// `wrn-28-10`.
    pub fn name(&self) -> String {
        let depth = self.depth();
        match self.family {
            Family::Wrn => format!(
                "wrn-{}-{}",
                6 * self.stage_blocks.first().copied().unwrap_or(0) + 4,
                self.stage_planes.first().copied().unwrap_or(0) / 16
            ),
            Family::PreAct => format!("preact-resnet{depth}"),
            Family::PytorchCifar => format!("cifar-resnet{depth}"),
            _ if self.groups > 1 => {
                format!("resnext{depth}_{}x{}d", self.groups, self.base_width)
            }
            _ if self.base_width != 64 => format!("wide_resnet{depth}_{}", self.base_width / 64),
            _ => format!("resnet{depth}"),
        }
    }

    pub fn head_name(&self) -> &'static str {
        match self.family {
            Family::Torchvision | Family::Wrn => "fc",
            _ => "linear",
        }
    }

    /// How the stem is wired: conv1 (this stride), then bn1 and ReLU unless
    /// the blocks are pre-activation, and for torchvision a 3x3/2 max pool.
    pub fn stem(&self) -> StemSpec {
        let torchvision = self.family == Family::Torchvision;
        StemSpec {
            stride: if torchvision { 2 } else { 1 },
            norm: (!self.family.preactivation()).then_some("bn1"),
            max_pool: torchvision,
        }
    }

    /// The batch norm (followed by a ReLU) between the last block and the
    /// pooling: WideResNet's final `bn1`.
    pub fn final_norm(&self) -> Option<&'static str> {
        (self.family == Family::Wrn).then_some("bn1")
    }

    pub fn stem_kernel(&self) -> usize {
        match self.family {
            Family::Torchvision => 7,
            _ => 3,
        }
    }

    /// Channels leaving the last stage.
    pub fn feature_width(&self) -> usize {
        self.stage_planes.last().copied().unwrap_or(self.stem_width) * self.block.expansion()
    }

    /// Channels of the Bottleneck's inner convolutions for `planes`.
    fn inner_width(&self, planes: usize) -> usize {
        match self.block {
            BlockType::Basic => planes,
            BlockType::Bottleneck => planes * self.base_width / 64 * self.groups,
        }
    }

    /// Every block with its channels, stride and shortcut.
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
                    name: self.family.block_name(stage + 1, i),
                    family: self.family,
                    block: self.block,
                    in_channels,
                    planes,
                    width: self.inner_width(planes),
                    groups: self.groups,
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
        if let Some(norm) = self.stem().norm {
            push_bn(&mut out, norm, self.stem_width);
        }
        for b in self.blocks() {
            for layer in b.branch() {
                match layer {
                    LayerSpec::Conv { prefix, shape, .. } => {
                        out.push((format!("{prefix}.weight"), shape));
                    }
                    LayerSpec::Norm { prefix, channels } => push_bn(&mut out, &prefix, channels),
                    LayerSpec::Relu => {}
                }
            }
            if let Ok(ShortcutSpec::Projection { conv, norm, .. }) = b.shortcut() {
                let out_channels = b.out_channels();
                out.push((
                    format!("{conv}.weight"),
                    vec![out_channels, b.in_channels, 1, 1],
                ));
                if let Some(norm) = norm {
                    push_bn(&mut out, &norm, out_channels);
                }
            }
        }
        if let Some(norm) = self.final_norm() {
            push_bn(&mut out, norm, self.feature_width());
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
            "{} ({:?} family, {:?} blocks {:?}, widths {:?}, {} input channels, {} classes, {:?} shortcuts",
            self.name(),
            self.family,
            self.block,
            self.stage_blocks,
            self.stage_planes,
            self.in_channels,
            self.num_classes,
            self.shortcut
        )?;
        if self.groups > 1 || self.base_width != 64 {
            write!(
                f,
                ", {} groups of base width {}",
                self.groups, self.base_width
            )?;
        }
        f.write_str(")")
    }
}

/// One residual block of an [`ArchSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    pub name: String,
    pub family: Family,
    pub block: BlockType,
    pub in_channels: usize,
    pub planes: usize,
    /// Channels of the inner convolutions (planes, or a Bottleneck's width).
    pub width: usize,
    /// Groups of the Bottleneck's 3x3 convolution.
    pub groups: usize,
    pub stride: usize,
    pub projection: bool,
}

/// The stem: conv1 with its stride, the bn (then a ReLU) that follows it
/// unless the blocks are pre-activation, and whether a 3x3/2 max pool
/// follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StemSpec {
    pub stride: usize,
    pub norm: Option<&'static str>,
    pub max_pool: bool,
}

/// One layer of a residual branch F, in forward order; convolutions and
/// batch norms are named by their state-dict prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSpec {
    /// A bias-free convolution with "same" padding k / 2, weight `shape`
    /// (C_out, C_in / groups, k, k).
    Conv {
        prefix: String,
        shape: Vec<usize>,
        stride: usize,
        groups: usize,
    },
    /// A batch norm over `channels`.
    Norm {
        prefix: String,
        channels: usize,
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
    /// A 1x1 convolution with `stride`, then a batch norm (none in
    /// pre-activation blocks).
    Projection {
        conv: String,
        norm: Option<String>,
        stride: usize,
    },
}

impl BlockSpec {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.planes * self.block.expansion()
    }

    /// The branch F, the one wiring of a block shared by the model and the
    /// trainer. Post-activation: conv, norm, then ReLU, conv, norm for every
    /// further convolution. Pre-activation: norm, ReLU, conv for every
    /// convolution. The stride sits on the first 3x3 convolution: conv1 in a
    /// BasicBlock, conv2 in a Bottleneck (torchvision v1.5), which is also
    /// the grouped one.
    pub fn branch(&self) -> Vec<LayerSpec> {
        let strided = match self.block {
            BlockType::Basic => 1,
            BlockType::Bottleneck => 2,
        };
        let pre = self.family.preactivation();
        let mut layers = Vec::new();
        for (i, (index, shape)) in self.conv_shapes().into_iter().enumerate() {
            let norm = |channels| LayerSpec::Norm {
                prefix: format!("{}.bn{index}", self.name),
                channels,
            };
            if pre {
                layers.push(norm(
                    shape[1] * if index == strided { self.groups } else { 1 },
                ));
                layers.push(LayerSpec::Relu);
            } else if i > 0 {
                layers.push(LayerSpec::Relu);
            }
            let out = shape[0];
            layers.push(LayerSpec::Conv {
                prefix: format!("{}.conv{index}", self.name),
                stride: if index == strided { self.stride } else { 1 },
                groups: if index == strided { self.groups } else { 1 },
                shape,
            });
            if !pre {
                layers.push(norm(out));
            }
        }
        layers
    }

    /// How many leading branch layers the shortcut reads through: a
    /// pre-activation projection reads relu(bn1(x)) (2 layers), everything
    /// else the block input.
    pub fn shortcut_tap(&self) -> usize {
        if self.family.preactivation() && self.projection {
            2
        } else {
            0
        }
    }

    /// Whether a ReLU follows the sum F + S (post-activation blocks).
    pub fn output_relu(&self) -> bool {
        !self.family.preactivation()
    }

    /// The shortcut: the checkpoint's projection when it has one, else
    /// option A when the shape changes (which needs stride 2 and an even
    /// channel increase), else the identity.
    pub fn shortcut(&self) -> Result<ShortcutSpec> {
        let out_channels = self.out_channels();
        if self.projection {
            let (conv, norm) = self.family.projection_names();
            return Ok(ShortcutSpec::Projection {
                conv: format!("{}.{conv}", self.name),
                norm: norm.map(|n| format!("{}.{n}", self.name)),
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
    pub fn conv_shapes(&self) -> Vec<(usize, Vec<usize>)> {
        let (p, c, w, g) = (self.planes, self.in_channels, self.width, self.groups);
        match self.block {
            BlockType::Basic => vec![(1, vec![p, c, 3, 3]), (2, vec![p, p, 3, 3])],
            BlockType::Bottleneck => vec![
                (1, vec![w, c, 1, 1]),
                (2, vec![w, w / g, 3, 3]),
                (3, vec![4 * p, w, 1, 1]),
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
            "{source}: not a recognised ResNet state dict: {why}. Expected the tensor names of a \
             torchvision ResNet/ResNeXt/wide ResNet, a CIFAR ResNet (6n+2), a pytorch-cifar ResNet \
             or PreActResNet, or a WideResNet, such as conv1.weight, layer1.0.conv1.weight \
             (block1.layer.0.conv1.weight), fc.weight or linear.weight"
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
    let has = |name: &str| shapes.contains_key(name);
    let family = if has("block1.layer.0.conv1.weight") {
        Family::Wrn
    } else {
        match k {
            7 => Family::Torchvision,
            3 if !has("bn1.weight") => Family::PreAct,
            3 if shapes.keys().any(|k| k.contains(".shortcut.")) => Family::PytorchCifar,
            3 => Family::Cifar,
            _ => {
                return Err(format!(
                    "conv1 kernel {k}x{k} is neither 7x7 (torchvision) nor 3x3 (CIFAR)"
                ))
            }
        }
    };
    let first = family.block_name(1, 0);
    let block = if has(&format!("{first}.conv3.weight")) {
        BlockType::Bottleneck
    } else {
        BlockType::Basic
    };
    let stage_blocks: Vec<usize> = (1..)
        .map(|stage| {
            (0..)
                .take_while(|&i| has(&format!("{}.conv1.weight", family.block_name(stage, i))))
                .count()
        })
        .take_while(|&n| n > 0)
        .collect();
    if stage_blocks.is_empty() {
        return Err(format!(
            "no residual blocks ({first}.conv1.weight is missing)"
        ));
    }
    // planes: a BasicBlock's output channels, a Bottleneck's output / 4.
    let (last_conv, expansion) = match block {
        BlockType::Basic => ("conv1", 1),
        BlockType::Bottleneck => ("conv3", 4),
    };
    let stage_planes = (1..=stage_blocks.len())
        .map(|stage| {
            let name = format!("{}.{last_conv}.weight", family.block_name(stage, 0));
            Ok(leading_dim(shapes, &name)? / expansion)
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let (groups, base_width) = match block {
        BlockType::Basic => (1, 64),
        BlockType::Bottleneck => bottleneck_width(shapes, &first, stage_planes[0])?,
    };
    let head = ["fc.weight", "linear.weight"]
        .into_iter()
        .find(|n| has(n))
        .ok_or("no classifier head (fc.weight or linear.weight)")?;
    let has_projection = shapes.keys().any(|k| k.contains(".downsample."));
    Ok(ArchSpec {
        in_channels,
        num_classes: leading_dim(shapes, head)?,
        shortcut: if has_projection || family != Family::Cifar {
            ShortcutType::Projection
        } else {
            ShortcutType::OptionA
        },
        groups,
        base_width,
        ..ArchSpec::base(family, block, stage_blocks, stage_planes, stem_width)
    })
}

/// (groups, base width) of a Bottleneck from its first block: the 3x3
/// convolution's weight is (width, width / groups, 3, 3) with width =
/// planes * base_width / 64 * groups.
fn bottleneck_width(
    shapes: &BTreeMap<String, Vec<usize>>,
    block: &str,
    planes: usize,
) -> std::result::Result<(usize, usize), String> {
    let name = format!("{block}.conv2.weight");
    let shape = shapes.get(&name).ok_or(format!("no {name}"))?;
    let (width, per_group) = match shape[..] {
        [w, g, _, _] if w > 0 && g > 0 && w % g == 0 => (w, g),
        _ => {
            return Err(format!(
                "{name} has shape {shape:?}, expected (width, width / groups, 3, 3)"
            ))
        }
    };
    let groups = width / per_group;
    let base_width = (width / groups * 64).checked_div(planes).unwrap_or(0);
    if base_width == 0 || base_width * planes != width / groups * 64 {
        return Err(format!(
            "{name}: width {width} in {groups} groups does not fit {planes} planes"
        ));
    }
    Ok((groups, base_width))
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

    fn conv(prefix: &str, shape: [usize; 4], stride: usize) -> LayerSpec {
        LayerSpec::Conv {
            prefix: prefix.into(),
            shape: shape.to_vec(),
            stride,
            groups: 1,
        }
    }

    fn norm(prefix: &str, channels: usize) -> LayerSpec {
        LayerSpec::Norm {
            prefix: prefix.into(),
            channels,
        }
    }

    fn strides(b: &BlockSpec) -> Vec<(usize, usize)> {
        b.branch()
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv { stride, groups, .. } => Some((*stride, *groups)),
                _ => None,
            })
            .collect()
    }

    /// The stride sits on conv1 of a BasicBlock and on conv2 (the 3x3, the
    /// grouped one in ResNeXt) of a Bottleneck, with a ReLU between every
    /// (conv, norm) pair; pre-activation blocks put bn and ReLU before
    /// every conv, bn1 over the block's input channels.
    #[test]
    fn branch_places_the_stride_on_the_first_3x3_conv() {
        let r18 = ArchSpec::preset("resnet18", 3, 10).unwrap().blocks();
        assert_eq!(
            r18[2].branch(), // layer2.0
            [
                conv("layer2.0.conv1", [128, 64, 3, 3], 2),
                norm("layer2.0.bn1", 128),
                LayerSpec::Relu,
                conv("layer2.0.conv2", [128, 128, 3, 3], 1),
                norm("layer2.0.bn2", 128),
            ]
        );
        let r50 = ArchSpec::preset("resnet50", 3, 10).unwrap().blocks();
        assert_eq!(r50[3].name, "layer2.0");
        assert_eq!(strides(&r50[3]), [(1, 1), (2, 1), (1, 1)]);
        let x50 = ArchSpec::preset("resnext50_32x4d", 3, 10).unwrap().blocks();
        assert_eq!(strides(&x50[3]), [(1, 1), (2, 32), (1, 1)]);
        // Inner width 2 * planes = 256, 8 channels per group.
        assert_eq!(x50[3].conv_shapes()[1].1, [256, 8, 3, 3]);
        let pre = ArchSpec::preset("preact-resnet18", 3, 10).unwrap().blocks();
        assert_eq!(
            pre[2].branch(),
            [
                norm("layer2.0.bn1", 64),
                LayerSpec::Relu,
                conv("layer2.0.conv1", [128, 64, 3, 3], 2),
                norm("layer2.0.bn2", 128),
                LayerSpec::Relu,
                conv("layer2.0.conv2", [128, 128, 3, 3], 1),
            ]
        );
        assert_eq!((pre[2].shortcut_tap(), pre[2].output_relu()), (2, false));
        assert_eq!((pre[1].shortcut_tap(), r18[2].shortcut_tap()), (0, 0));
    }

    /// Identity when the shape is kept, the checkpoint's projection (named
    /// as each code base names it) when it has one, option A (pad (out - in)
    /// / 2 channels per side) otherwise, and an error where option A cannot
    /// express the change.
    #[test]
    fn shortcut_follows_the_shape_change_and_the_checkpoint() {
        let r18 = ArchSpec::preset("resnet18", 3, 10).unwrap().blocks();
        assert_eq!(r18[0].shortcut().unwrap(), ShortcutSpec::Identity);
        assert_eq!(
            r18[2].shortcut().unwrap(),
            ShortcutSpec::Projection {
                conv: "layer2.0.downsample.0".into(),
                norm: Some("layer2.0.downsample.1".into()),
                stride: 2,
            }
        );
        let projection = |arch: &str, i: usize| {
            let blocks = ArchSpec::preset(arch, 3, 10).unwrap().blocks();
            match blocks[i].shortcut().unwrap() {
                ShortcutSpec::Projection { conv, norm, .. } => (conv, norm),
                other => panic!("{arch} block {i}: {other:?}"),
            }
        };
        assert_eq!(
            projection("cifar-resnet18", 2),
            (
                "layer2.0.shortcut.0".into(),
                Some("layer2.0.shortcut.1".into())
            )
        );
        assert_eq!(
            projection("preact-resnet18", 2),
            ("layer2.0.shortcut.0".into(), None)
        );
        // WRN: block1.layer.0 keeps the stride but widens 16 -> 64 channels.
        assert_eq!(
            projection("wrn-16-4", 0),
            ("block1.layer.0.convShortcut".into(), None)
        );
        let r20 = ArchSpec::preset("resnet20", 3, 10).unwrap().blocks();
        assert_eq!(r20[3].name, "layer2.0");
        assert_eq!(r20[3].shortcut().unwrap(), ShortcutSpec::OptionA { pad: 8 });
        let odd = BlockSpec {
            stride: 1,
            ..r20[3].clone()
        };
        let err = odd.shortcut().unwrap_err().to_string();
        assert!(err.contains("option A cannot express it"), "{err}");
    }

    /// Parameter counts of the reference implementations (torchvision's
    /// documentation; pytorch-cifar and RobustBench models with 10 classes).
    #[test]
    fn parameter_counts_match_the_reference_implementations() {
        let count = |arch: &str, classes: usize| -> usize {
            ArchSpec::preset(arch, 3, classes)
                .unwrap()
                .expected_tensors()
                .iter()
                .filter(|(n, _)| !n.contains("running_"))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum()
        };
        assert_eq!(count("resnext50_32x4d", 1000), 25_028_904);
        assert_eq!(count("wide_resnet50_2", 1000), 68_883_240);
        assert_eq!(count("cifar-resnet18", 10), 11_173_962);
        assert_eq!(count("preact-resnet18", 10), 11_171_146);
        assert_eq!(count("wrn-28-10", 10), 36_479_194);
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
