//! Training checkpoints in the output folder.
//!
//! * `epoch-NNN.safetensors`: the weights after epoch NNN (1-based), float32,
//!   with torchvision/CIFAR state-dict names (PyTorch's `load_state_dict`
//!   and every command of this tool read it);
//! * `model.safetensors`: the latest weights (a hard link to, or a copy of,
//!   the newest weights file);
//! * `optimizer.safetensors`: the SGD momentum buffers, one tensor per
//!   trainable tensor, same names, flattened to one dimension;
//! * `train_state.json`: [`TrainState`], written last, so it always names
//!   files that are complete (every file is written atomically).
//!
//! No RNG state is stored: data order and augmentation are pure functions of
//! (seed, epoch, index), see [`crate::train::rng`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stiffness_checkpoint::safetensors::{save_safetensors, SaveDType};
use stiffness_checkpoint::StateDict;

use crate::error::{Error, Result};
use crate::train::net::Network;
use crate::train::sgd::Sgd;
use crate::train::{EpochRecord, TrainConfig};

/// Name of the training-state file in the output folder.
pub const STATE_FILE: &str = "train_state.json";
/// Name of the latest-weights file in the output folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Everything besides the tensors that a resumed run needs, plus the history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// Weights after `epoch`, relative to the output folder.
    pub weights: String,
    /// Momentum buffers, relative to the output folder.
    pub optimizer: String,
    /// How randomness is derived (no generator state is needed).
    pub rng: String,
    pub config: TrainConfig,
    pub history: Vec<EpochRecord>,
    /// Set when saved part-way through epoch `epoch + 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

/// Progress through an unfinished epoch: a run resumed from it continues
/// at batch `batches` with these running sums, so its history is the same
/// as an uninterrupted run's.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartialEpoch {
    /// Batches of the epoch done.
    pub batches: usize,
    /// Sum of their losses.
    pub loss_sum: f64,
    /// Correct training predictions among them.
    pub correct: usize,
    /// Wall-clock seconds spent on them.
    pub seconds: f64,
}

/// The path of `name` in `out`.
pub fn path_in(out: &Path, name: &str) -> PathBuf {
    out.join(name)
}

/// The weights file of epoch `epoch` (1-based).
pub fn epoch_file(epoch: usize) -> String {
    format!("epoch-{epoch:03}.safetensors")
}

/// The weights file of a save part-way through an epoch, after `step` steps.
pub fn partial_file(step: usize) -> String {
    format!("partial-step{step:07}.safetensors")
}

/// The momentum-buffer file of the save after `step` steps.
pub fn optimizer_file(step: usize) -> String {
    format!("optimizer-step{step:07}.safetensors")
}

fn metadata(state: &TrainState) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".into(), "pt".into());
    m.insert("arch".into(), state.config.arch.clone());
    m.insert("epoch".into(), state.epoch.to_string());
    m.insert("step".into(), state.step.to_string());
    m.insert("producer".into(), "resnet-stiffness train".into());
    m
}

/// Write the weights named by `state`, the latest weights, the momentum
/// buffers and, last, the state file, each atomically; then remove the
/// mid-epoch and momentum files that the new state no longer names. A kill
/// at any moment leaves a state whose files are complete.
pub fn save(out: &Path, net: &Network, opt: &Sgd, state: &TrainState) -> Result<()> {
    let weights = net.state_dict()?;
    let meta = metadata(state);
    save_safetensors(
        &path_in(out, &state.weights),
        &weights,
        SaveDType::F32,
        &meta,
    )?;
    let latest = path_in(out, MODEL_FILE);
    stiffness_fsutil::link_atomic(&path_in(out, &state.weights), &latest)
        .map_err(|e| Error::io("cannot write", &latest, e))?;
    save_safetensors(
        &path_in(out, &state.optimizer),
        &buffers(opt)?,
        SaveDType::F32,
        &meta,
    )?;
    let path = path_in(out, STATE_FILE);
    stiffness_fsutil::write_json(&path, state).map_err(|e| Error::io("cannot write", &path, e))?;
    remove_stale(out, state);
    Ok(())
}

/// Remove `partial-*` and `optimizer*` safetensors files that `state` does
/// not name (best effort: a file left behind costs only disk space).
fn remove_stale(out: &Path, state: &TrainState) {
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with("partial-") || name.starts_with("optimizer"))
            && name.ends_with(".safetensors");
        if ours && name != state.weights && name != state.optimizer {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn buffers(opt: &Sgd) -> Result<StateDict> {
    let mut out = StateDict::new();
    for (name, v) in &opt.buffers {
        let t = stiffness_checkpoint::Tensor::new(vec![v.len()], v.clone())
            .map_err(|e| Error::Model(e.to_string()))?;
        out.insert(name.clone(), t);
    }
    Ok(out)
}

/// Read `train_state.json` of `out`.
pub fn load_state(out: &Path) -> Result<TrainState> {
    let path = path_in(out, STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::io(
            "cannot read the training state (was this folder written by `train`?)",
            &path,
            e,
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is not a valid training state: {e}",
            path.display()
        ))
    })
}

/// Load the weights and momentum buffers named by `state`.
pub fn load_tensors(
    out: &Path,
    state: &TrainState,
) -> Result<(StateDict, BTreeMap<String, Vec<f32>>)> {
    let weights = stiffness_checkpoint::load_state_dict(&path_in(out, &state.weights))?.state;
    let opt = stiffness_checkpoint::load_state_dict(&path_in(out, &state.optimizer))?.state;
    let buffers = opt
        .iter()
        .map(|(n, t)| (n.to_string(), t.values.clone()))
        .collect();
    Ok((weights, buffers))
}

#[cfg(test)]
mod tests {
    use crate::train::EpochRecord;

    /// The history read back on `--resume` equals the one written, to the
    /// bit: serde_json's default parser is off by one ulp on some values
    /// (this one, from a real run), hence its `float_roundtrip` feature.
    #[test]
    fn history_floats_round_trip_exactly() {
        let record = EpochRecord {
            epoch: 1,
            loss: 1.9179897010326385,
            train_acc: 0.1,
            test_acc: 0.2,
            test_loss: 2.0 / 3.0,
            lr: 0.1,
            seconds: 1e-300,
            images_per_sec: 123.456,
        };
        let text = serde_json::to_string(&record).unwrap();
        let back: EpochRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.loss.to_bits(), record.loss.to_bits());
        assert_eq!(back.test_loss.to_bits(), record.test_loss.to_bits());
        assert_eq!(back.seconds.to_bits(), record.seconds.to_bits());
    }
}
