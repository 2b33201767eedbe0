//! The probe: one forward pass of a sample that records every block's input
//! and the sample's outcome (label, prediction, loss).

use candle_core::{DType, Tensor};

use crate::analysis::inputs::Inputs;
use crate::error::Result;
use crate::eval::Outcome;
use crate::model::ResNet;

/// A sample to analyse: its outcome and every block's input (1, C, H, W).
pub struct Probe {
    pub outcome: Outcome,
    pub block_inputs: Vec<Tensor>,
    /// Why the sample cannot be analysed: the forward pass produced a
    /// non-finite value (its outcome and block inputs are then meaningless).
    pub overflow: Option<String>,
}

/// Run sample `id` of `inputs` through `model`. Unlabelled inputs take the
/// prediction as their label.
pub fn probe(model: &ResNet, inputs: &Inputs<'_>, id: usize) -> Result<Probe> {
    let (x, label) = inputs.sample(id)?;
    let mut block_inputs = Vec::new();
    let logits = model.forward_visiting(&x, |_, h| {
        block_inputs.push(h.clone());
        Ok(())
    })?;
    let logits = logits
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let guess = Outcome::from_logits(id, 0, &logits).predicted;
    let outcome = Outcome::from_logits(id, label.unwrap_or(guess), &logits);
    let mut overflow = None;
    for (b, h) in block_inputs.iter().enumerate() {
        if !all_finite(h)? {
            let name = &model.blocks[b].name;
            overflow = Some(format!(
                "the forward pass overflowed: the input of {name} is not finite"
            ));
            break;
        }
    }
    if overflow.is_none() && logits.iter().any(|z| !z.is_finite()) {
        overflow = Some("the forward pass overflowed: the logits are not finite".into());
    }
    Ok(Probe {
        outcome,
        block_inputs,
        overflow,
    })
}

/// Whether every value of `t` is finite.
fn all_finite(t: &Tensor) -> Result<bool> {
    let values = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(values.iter().all(|v| v.is_finite()))
}
