//! Publishing a trained model: the weights of a training run as safetensors
//! (float16 by default, half the size, the form shipped in `models/` and
//! `assets/`), scored again as written, with a JSON record of how they were
//! trained.
//!
//! `training.json` holds the `train` command line that starts the run (its
//! final configuration without `--resume`: a resumed run ends with the
//! weights of an uninterrupted one), that configuration, the per-epoch
//! history (loss, accuracy, seconds, images per second), the held-out
//! accuracy and loss of the run (float32) and of the exported file, the date
//! and the machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::DType;
use stiffness_checkpoint::safetensors::{save_safetensors, SaveDType};

use crate::error::{Error, Result};
use crate::model;
use crate::train::checkpoint::{self, TrainState};
use crate::train::{HeldOut, TrainConfig, MOMENTUM};

/// What [`export`] wrote and how the exported file scores.
#[derive(Debug, Clone)]
pub struct Exported {
    pub model_path: PathBuf,
    pub record_path: PathBuf,
    /// Held-out accuracy and mean cross-entropy of the run's last epoch (float32).
    pub run_accuracy: f64,
    /// The same for the exported file, as written.
    pub file_accuracy: f64,
    pub file_loss: f64,
    pub epochs: usize,
}

/// Export the weights of the last epoch of the training run in `run` into `out`
/// (`model.safetensors` and `training.json`), then evaluate the written file
/// on the run's held-out data, or on `eval_data` when given. A run last
/// saved part-way through an epoch is refused.
pub fn export(
    run: &Path,
    out: &Path,
    dtype: SaveDType,
    eval_data: Option<&Path>,
) -> Result<Exported> {
    let state = checkpoint::load_state(run)?;
    if let Some(partial) = state.partial {
        return Err(Error::Usage(format!(
            "{}: the run was last saved part-way through epoch {} (batch {}), so its latest \
             weights are not an epoch's; export it once that epoch has finished (`train ... \
             --resume`), or analyse one of its epoch-NNN.safetensors checkpoints directly",
            run.display(),
            state.epoch + 1,
            partial.batches
        )));
    }
    let weights = stiffness_checkpoint::load_state_dict(&checkpoint::path_in(run, &state.weights))?;
    let config = TrainConfig {
        eval_data: eval_data
            .map(Path::to_path_buf)
            .or(state.config.eval_data.clone()),
        resume: false,
        ..state.config.clone()
    };
    if dtype == SaveDType::F16 {
        check_fits_f16(&weights.state, run)?;
    }
    let held_out = HeldOut::open(&config)?;
    let [c, h, w] = held_out.shape;
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("arch".to_string(), config.arch.clone());
    meta.insert("dataset".to_string(), config.data.display().to_string());
    meta.insert(
        "input".to_string(),
        format!("{c}x{h}x{w}, ToTensor values in [0, 1], no normalisation"),
    );
    meta.insert("epochs".to_string(), state.epoch.to_string());
    std::fs::create_dir_all(out).map_err(|e| Error::io("cannot create", out, e))?;
    let model_path = out.join(checkpoint::MODEL_FILE);
    save_safetensors(&model_path, &weights.state, dtype, &meta)?;

    let loaded = model::load(&model_path, Some(&config.arch), DType::F32)?;
    let (file_loss, file_accuracy) = held_out.score(&loaded.model)?;
    let run_accuracy = state.history.last().map_or(f64::NAN, |h| h.test_acc);
    let record = record(&state, &config, dtype, [c, h, w], file_accuracy, file_loss);
    let record_path = out.join("training.json");
    stiffness_fsutil::write_json(&record_path, &record)
        .map_err(|e| Error::io("cannot write", &record_path, e))?;
    Ok(Exported {
        model_path,
        record_path,
        run_accuracy,
        file_accuracy,
        file_loss,
        epochs: state.epoch,
    })
}

fn record(
    state: &TrainState,
    config: &TrainConfig,
    dtype: SaveDType,
    [c, h, w]: [usize; 3],
    file_accuracy: f64,
    file_loss: f64,
) -> serde_json::Value {
    let held_out = config.eval_data.as_ref().map_or_else(
        || format!("the test split of {}", config.data.display()),
        |p| p.display().to_string(),
    );
    serde_json::json!({
        "arch": config.arch,
        "dataset": config.data.display().to_string(),
        "held_out": held_out,
        "input": format!("{c}x{h}x{w}, pixel values / 255 (ToTensor), no normalisation"),
        "command": TrainConfig { resume: false, ..state.config.clone() }.command_line(),
        "config": state.config,
        "momentum": MOMENTUM,
        "epochs": state.epoch,
        "steps": state.step,
        "history": state.history,
        "final_test_acc_float32": state.history.last().map(|r| r.test_acc),
        "final_test_acc_file": file_accuracy,
        "final_test_loss_file": file_loss,
        "weights_dtype": match dtype {
            SaveDType::F16 => "float16 (trained in float32)",
            SaveDType::F32 => "float32",
        },
        "date": stiffness_fsutil::now_rfc3339(),
        "machine": machine(),
    })
}

/// float16 holds magnitudes up to 65504; refuse weights that would overflow.
fn check_fits_f16(state: &stiffness_checkpoint::StateDict, run: &Path) -> Result<()> {
    for (name, t) in state.iter() {
        if let Some(v) = t.values.iter().find(|v| v.abs() > 65504.0) {
            return Err(Error::Usage(format!(
                "{}: {name} holds {v}, beyond float16's range; export with --dtype f32",
                run.display()
            )));
        }
    }
    Ok(())
}

/// The CPU model and the number of logical cores.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} logical cores")
}
