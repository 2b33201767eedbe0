//! Arbitrary state dicts from bytes, for the fuzz target
//! `fuzz/fuzz_targets/model_from_state.rs` and its regression corpus
//! (`tests/fuzz_regressions.rs`): every step between a parsed checkpoint and
//! a model that runs (architecture inference, shape and value validation,
//! construction, a forward pass and one block's Jacobian) on state dicts
//! with arbitrary names, ranks, shapes and values, never a panic.
//!
//! Byte format (read until the bytes end, at most [`MAX_TENSORS`] tensors):
//! one byte selecting `--arch` (0: infer; k: `PRESETS[(k - 1) % len]`), one
//! byte for the input side (1 + b % 40), then per tensor: a prefix byte and
//! a suffix byte (see [`tensor_name`]), a rank byte (b % 5), one byte per
//! dimension (b % 9), a fill byte and a special-value byte (see
//! [`tensor_values`]).

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use super::arch::PRESETS;
use super::{JacobianKind, ResNet};
use crate::analysis::linearize::Linearization;

/// At most this many tensors are read from one input.
pub const MAX_TENSORS: usize = 192;

const PARTS: [&str; 8] = [
    "conv1",
    "bn1",
    "conv2",
    "bn2",
    "conv3",
    "bn3",
    "downsample.0",
    "downsample.1",
];
const SUFFIXES: [&str; 5] = [
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "num_batches_tracked",
];

/// Prefixes: `conv1`, `bn1`, `fc`, `linear`, then `layer{1-4}.{0-2}.{part}`.
pub fn prefix_count() -> usize {
    4 + 4 * 3 * PARTS.len()
}

/// The tensor name of (prefix byte, suffix byte).
pub fn tensor_name(prefix: u8, suffix: u8) -> String {
    let p = usize::from(prefix) % prefix_count();
    let head = match p {
        0 => "conv1".to_string(),
        1 => "bn1".to_string(),
        2 => "fc".to_string(),
        3 => "linear".to_string(),
        k => {
            let k = k - 4;
            let (stage, rest) = (k / 24 + 1, k % 24);
            format!("layer{stage}.{}.{}", rest / 8, PARTS[rest % 8])
        }
    };
    format!("{head}.{}", SUFFIXES[usize::from(suffix) % SUFFIXES.len()])
}

/// The (prefix, suffix) bytes of a name made by [`tensor_name`].
pub fn name_bytes(name: &str) -> Option<(u8, u8)> {
    (0..prefix_count() as u8)
        .flat_map(|p| (0..SUFFIXES.len() as u8).map(move |s| (p, s)))
        .find(|&(p, s)| tensor_name(p, s) == name)
}

/// `count` values: a smooth pattern scaled by the fill byte
/// ((fill - 128) / 64), with one special value at index 0 when `special` is
/// below 8: NaN, +inf, -inf, 1e30, -1e30, -1, 0, 3e38.
pub fn tensor_values(count: usize, fill: u8, special: u8) -> Vec<f32> {
    let scale = (f32::from(fill) - 128.0) / 64.0;
    let mut values: Vec<f32> = (0..count)
        .map(|i| scale * (0.5 + 0.5 * ((i as f32) * 0.618).sin()))
        .collect();
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e30,
        -1e30,
        -1.0,
        0.0,
        3e38,
    ];
    if let (Some(v), Some(&s)) = (values.first_mut(), specials.get(usize::from(special))) {
        *v = s;
    }
    values
}

/// A decoded fuzz input.
pub struct Case {
    pub arch: Option<&'static str>,
    pub side: usize,
    pub weights: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Decode bytes (see the module documentation).
pub fn decode(data: &[u8]) -> Case {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next();
    let arch = match next().unwrap_or(0) {
        0 => None,
        k => Some(PRESETS[(usize::from(k) - 1) % PRESETS.len()]),
    };
    let side = 1 + usize::from(next().unwrap_or(0)) % 40;
    let mut weights = BTreeMap::new();
    while weights.len() < MAX_TENSORS {
        let (Some(prefix), Some(suffix), Some(rank)) = (next(), next(), next()) else {
            break;
        };
        let shape: Vec<usize> = (0..rank % 5)
            .map(|_| usize::from(next().unwrap_or(1)) % 9)
            .collect();
        let (fill, special) = (next().unwrap_or(160), next().unwrap_or(255));
        let values = tensor_values(shape.iter().product(), fill, special);
        weights.insert(tensor_name(prefix, suffix), (shape, values));
    }
    Case {
        arch,
        side,
        weights,
    }
}

/// The bytes that [`decode`] reads back as the names and shapes of
/// `shapes` (values are the fill pattern), inferring the architecture, at
/// input side `side` (1..=40); `None` when a name is not in the vocabulary
/// or a dimension exceeds 8. Seeds of the fuzzing corpus.
pub fn encode(shapes: &BTreeMap<String, Vec<usize>>, side: usize) -> Option<Vec<u8>> {
    let mut out = vec![0, u8::try_from(side.checked_sub(1)? % 40).ok()?];
    for (name, shape) in shapes {
        let (prefix, suffix) = name_bytes(name)?;
        out.extend([prefix, suffix, u8::try_from(shape.len()).ok()?]);
        for &d in shape {
            out.push(u8::try_from(d).ok().filter(|&d| d <= 8)?);
        }
        out.extend([160, 255]);
    }
    Some(out)
}

/// Build, forward and linearise the model of `data`; errors are fine,
/// panics are bugs. Returns whether a model was built.
pub fn exercise(data: &[u8]) -> bool {
    let case = decode(data);
    let Ok(net) = ResNet::from_weights(&case.weights, case.arch, "fuzz", DType::F32) else {
        return false;
    };
    let input = [net.spec.in_channels, case.side, case.side];
    if net.block_shapes(input).is_err() {
        return true;
    }
    let numel = input.iter().product::<usize>();
    let values: Vec<f32> = (0..numel).map(|i| (i as f32 * 0.37).sin()).collect();
    let Ok(x) = Tensor::from_vec(values, (1, input[0], input[1], input[2]), &Device::Cpu) else {
        return true;
    };
    let mut last_input = None;
    let forward = net.forward_visiting(&x, |_, h| {
        last_input = Some(h.clone());
        Ok(())
    });
    let (Ok(_), Some(h)) = (forward, last_input) else {
        return true;
    };
    let net64 = ResNet::from_weights(&case.weights, case.arch, "fuzz", DType::F64);
    let (Some(block), Ok(net64)) = (net.blocks.last(), net64) else {
        return true;
    };
    let block64 = &net64.blocks[net64.blocks.len() - 1];
    if let Ok(lin) = Linearization::new(block, block64, &h) {
        let _ = lin.jacobian(JacobianKind::Residual);
    }
    true
}
