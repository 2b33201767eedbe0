//! Evaluation: top-1 accuracy and mean cross-entropy loss, overall and per class.
//!
//! loss_i = -log softmax(z_i)\[y_i\], computed in float64 from the float32
//! logits (log-sum-exp with the maximum subtracted), as PyTorch's
//! `F.cross_entropy` does up to float32 rounding. The prediction is the
//! first index of the largest logit (`torch.argmax`).

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use stiffness_data::Dataset;
use stiffness_records::{ClassEval, EvalSummary};

use crate::error::{Error, Result};
use crate::model::ResNet;

/// Images per forward pass.
pub const BATCH_SIZE: usize = 128;

/// What the model did with one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Index in the data set.
    pub index: usize,
    pub label: usize,
    pub predicted: usize,
    /// Cross-entropy loss (nats).
    pub loss: f64,
}

impl Outcome {
    pub fn correct(&self) -> bool {
        self.label == self.predicted
    }

    /// Outcome of one row of logits.
    pub fn from_logits(index: usize, label: usize, logits: &[f32]) -> Self {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let predicted = logits.iter().position(|&z| z == max).unwrap_or(0);
        let lse = f64::from(max)
            + logits
                .iter()
                .map(|&z| (f64::from(z) - f64::from(max)).exp())
                .sum::<f64>()
                .ln();
        let loss = lse - logits.get(label).map_or(f64::NAN, |&z| f64::from(z));
        Self {
            index,
            label,
            predicted,
            loss,
        }
    }
}

/// Images `indices` of `data`, decoded in parallel, each passed through
/// `map(index, pixels)`: the pixels concatenated (B x C x H x W, row-major),
/// their labels and their common shape. Every image must have `shape`
/// (default: the first one's). The one batch loader of evaluation, the
/// analysis and training (which augments in `map`).
pub fn decode_batch(
    data: &Dataset,
    indices: &[usize],
    shape: Option<[usize; 3]>,
    map: &(dyn Fn(usize, Vec<f32>) -> Vec<f32> + Sync),
) -> Result<(Vec<f32>, Vec<usize>, [usize; 3])> {
    let samples = indices
        .par_iter()
        .map(|&i| data.get(i))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let shape = shape.unwrap_or_else(|| samples.first().map_or([0, 0, 0], |s| s.shape));
    if let Some(odd) = samples.iter().zip(indices).find(|(s, _)| s.shape != shape) {
        return Err(Error::Usage(format!(
            "{}: image shape {:?} differs from {:?}; use --resize/--crop to give all images one size",
            data.describe(*odd.1),
            odd.0.shape,
            shape
        )));
    }
    let labels = samples.iter().map(|s| s.label).collect();
    let pixels = samples
        .into_par_iter()
        .zip(indices)
        .flat_map_iter(|(s, &i)| map(i, s.image))
        .collect();
    Ok((pixels, labels, shape))
}

/// Images `indices` as one (B, C, H, W) f32 tensor, with their labels.
pub fn load_batch(data: &Dataset, indices: &[usize]) -> Result<(Tensor, Vec<usize>)> {
    let (pixels, labels, [c, h, w]) = decode_batch(data, indices, None, &|_, image| image)?;
    let batch = Tensor::from_vec(pixels, (indices.len(), c, h, w), &Device::Cpu)?;
    Ok((batch, labels))
}

/// Check that the data's images fit the model (channels, minimum size).
pub fn check_fit(model: &ResNet, data: &Dataset, source: &str) -> Result<[usize; 3]> {
    if data.is_empty() {
        return Err(Error::Usage(format!("{source}: the data set is empty")));
    }
    let shape = data.get(0)?.shape;
    if shape[0] != model.spec.in_channels {
        return Err(Error::Usage(format!(
            "{source}: images have {} channel(s) but the model expects {}; \
             use --channels {} to replicate a greyscale channel, or check the data",
            shape[0], model.spec.in_channels, model.spec.in_channels
        )));
    }
    let classes = data.class_names().len();
    if classes > model.spec.num_classes {
        return Err(Error::Usage(format!(
            "{source}: the data set has {classes} classes but the model predicts {}; labels \
             beyond the model's classes have no logit, so accuracy and loss would be \
             meaningless. Use the data the model was trained on, or --classes {} for its \
             first classes",
            model.spec.num_classes, model.spec.num_classes
        )));
    }
    model.block_shapes(shape)?;
    Ok(shape)
}

/// Evaluate `indices` of `data`, calling `progress(done)` after every batch.
pub fn evaluate(
    model: &ResNet,
    data: &Dataset,
    indices: &[usize],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(indices.len());
    let mut shape = None;
    for chunk in indices.chunks(BATCH_SIZE) {
        let (pixels, labels, [c, h, w]) = decode_batch(data, chunk, shape, &|_, image| image)?;
        shape = Some([c, h, w]);
        let batch = Tensor::from_vec(pixels, (chunk.len(), c, h, w), &Device::Cpu)?;
        let logits = model
            .forward(&batch)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        for ((row, &label), &index) in logits.iter().zip(&labels).zip(chunk) {
            if row.iter().any(|z| !z.is_finite()) {
                return Err(Error::NonFinite(format!(
                    "{}: the model's logits are not finite (its forward pass overflows float32 \
                     on this image), so no accuracy or loss can be reported; check the weights \
                     and the normalisation (analyze --no-eval records such samples with the reason)",
                    data.describe(index)
                )));
            }
            outcomes.push(Outcome::from_logits(index, label, row));
        }
        progress(outcomes.len());
    }
    Ok(outcomes)
}

/// Overall and per-class accuracy and mean loss (classes with no image are listed with count 0).
pub fn summarize(outcomes: &[Outcome], class_names: &[String]) -> EvalSummary {
    let classes = class_names
        .len()
        .max(outcomes.iter().map(|o| o.label + 1).max().unwrap_or(0));
    let per_class = (0..classes)
        .map(|label| {
            let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.label == label).collect();
            let (accuracy, loss) = means(&mine);
            ClassEval {
                label,
                name: class_names
                    .get(label)
                    .cloned()
                    .unwrap_or_else(|| label.to_string()),
                accuracy,
                loss,
                count: mine.len(),
            }
        })
        .collect();
    let all: Vec<&Outcome> = outcomes.iter().collect();
    let (accuracy, loss) = means(&all);
    EvalSummary {
        accuracy,
        loss,
        count: outcomes.len(),
        per_class,
    }
}

/// (accuracy, mean loss); NaN for no outcomes.
fn means(outcomes: &[&Outcome]) -> (f64, f64) {
    let n = outcomes.len() as f64;
    let correct = outcomes.iter().filter(|o| o.correct()).count() as f64;
    let loss = outcomes.iter().map(|o| o.loss).sum::<f64>();
    (correct / n, loss / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_hand_computation() {
        // logits (1, 2, 3), label 0: loss = log(e + e^2 + e^3) - 1.
        let o = Outcome::from_logits(0, 0, &[1.0, 2.0, 3.0]);
        let want = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 1.0;
        assert!((o.loss - want).abs() < 1e-12);
        assert_eq!(o.predicted, 2);
        assert!(!o.correct());
    }

    #[test]
    fn ties_predict_the_first_maximum_like_torch_argmax() {
        assert_eq!(Outcome::from_logits(0, 1, &[0.5, 2.0, 2.0]).predicted, 1);
    }

    #[test]
    fn summary_is_per_class() {
        let outcomes = [
            Outcome::from_logits(0, 0, &[2.0, 0.0]),
            Outcome::from_logits(1, 0, &[0.0, 2.0]),
            Outcome::from_logits(2, 1, &[0.0, 2.0]),
        ];
        let s = summarize(&outcomes, &["a".into(), "b".into(), "c".into()]);
        assert_eq!(s.count, 3);
        assert!((s.accuracy - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(s.per_class[0].count, 2);
        assert!((s.per_class[0].accuracy - 0.5).abs() < 1e-15);
        assert_eq!(s.per_class[1].accuracy, 1.0);
        assert_eq!(s.per_class[2].count, 0);
    }
}
