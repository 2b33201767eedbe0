//! What an analysis runs on: the inputs (a labelled data set, or given
//! tensors) and the blocks selected with `--blocks`.

use std::path::Path;

use candle_core::Tensor;
use stiffness_data::Dataset;

use crate::error::{Error, Result};
use crate::model::ResNet;

/// Where the analysed inputs come from.
pub enum Inputs<'a> {
    /// A labelled data set; `indices` are the samples to analyse.
    Data {
        data: &'a Dataset,
        indices: Vec<usize>,
    },
    /// Given input tensors (N, C, H, W), unlabelled: the label is taken to be the prediction.
    Tensors(Tensor),
}

impl Inputs<'_> {
    /// The ids of the samples to analyse: data set indices, or tensor rows.
    pub fn sample_ids(&self) -> Result<Vec<usize>> {
        Ok(match self {
            Inputs::Data { indices, .. } => indices.clone(),
            Inputs::Tensors(t) => (0..t.dims4()?.0).collect(),
        })
    }

    /// Sample `id` as a (1, C, H, W) float32 tensor, with its label when the
    /// inputs are labelled.
    pub fn sample(&self, id: usize) -> Result<(Tensor, Option<usize>)> {
        Ok(match self {
            Inputs::Data { data, .. } => {
                let (x, labels) = crate::eval::load_batch(data, &[id])?;
                (x, Some(labels[0]))
            }
            Inputs::Tensors(t) => (t.narrow(0, id, 1)?.to_dtype(candle_core::DType::F32)?, None),
        })
    }

    /// Sample `id`'s (C, H, W) shape and a name for messages.
    pub fn describe(&self, id: usize) -> Result<(String, [usize; 3])> {
        Ok(match self {
            Inputs::Data { data, .. } => (data.describe(id), data.get(id)?.shape),
            Inputs::Tensors(t) => {
                let (_, c, h, w) = t.dims4()?;
                (format!("input tensor {id}"), [c, h, w])
            }
        })
    }
}

/// Which blocks to analyse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockFilter {
    All,
    Square,
    Named(Vec<String>),
}

impl std::str::FromStr for BlockFilter {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "all" => BlockFilter::All,
            "square" => BlockFilter::Square,
            names => BlockFilter::Named(names.split(',').map(|n| n.trim().to_string()).collect()),
        })
    }
}

impl std::fmt::Display for BlockFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockFilter::All => f.write_str("all"),
            BlockFilter::Square => f.write_str("square"),
            BlockFilter::Named(names) => f.write_str(&names.join(",")),
        }
    }
}

/// Resolve `--blocks` against the model's blocks for input shape `input`.
pub fn select_blocks(
    model: &ResNet,
    input: [usize; 3],
    filter: &BlockFilter,
) -> Result<Vec<usize>> {
    let shapes = model.block_shapes(input)?;
    let selected = match filter {
        BlockFilter::All => (0..shapes.len()).collect(),
        BlockFilter::Square => (0..shapes.len()).filter(|&i| shapes[i].square).collect(),
        BlockFilter::Named(names) => names
            .iter()
            .map(|name| {
                shapes.iter().position(|s| &s.name == name).ok_or_else(|| {
                    let known: Vec<&str> = shapes.iter().map(|s| s.name.as_str()).collect();
                    Error::Usage(format!(
                        "--blocks: no block named '{name}'; the model has {}",
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<usize>>>()?,
    };
    if selected.is_empty() {
        return Err(Error::Usage(format!(
            "--blocks {filter}: selects no block of {} at input {}x{}x{}; choose --blocks all or names",
            model.spec.name(),
            input[0],
            input[1],
            input[2]
        )));
    }
    Ok(selected)
}

/// Input tensors from a .npy file: (N, C, H, W), or (C, H, W) for one input.
/// Refused with an error naming the file: another rank, a zero-length axis
/// (no images, or empty images) and any NaN or infinite value (naming the
/// image).
pub fn read_input_tensors(path: &Path) -> Result<Tensor> {
    let arr = stiffness_checkpoint::npy::read_npy(path)?;
    let shape = match arr.shape[..] {
        [n, c, h, w] => [n, c, h, w],
        [c, h, w] => [1, c, h, w],
        _ => {
            return Err(Error::Usage(format!(
                "{}: expected shape (N, C, H, W) or (C, H, W), found {:?}",
                path.display(),
                arr.shape
            )))
        }
    };
    if shape.contains(&0) {
        let what = if shape[0] == 0 {
            "holds no images"
        } else {
            "has a zero-length axis"
        };
        return Err(Error::Usage(format!(
            "{}: {what} (shape {:?}); give at least one (C, H, W) image with C, H, W > 0",
            path.display(),
            arr.shape
        )));
    }
    let values = arr
        .data
        .into_f32()
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let per_image = shape[1..].iter().product::<usize>();
    for (i, image) in values.chunks(per_image).enumerate() {
        stiffness_data::check_finite(image, || format!("{} image {i}", path.display()))?;
    }
    Ok(Tensor::from_vec(values, &shape, &candle_core::Device::Cpu)?)
}
