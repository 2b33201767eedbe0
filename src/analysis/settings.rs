//! An analysis from its settings, in one call: what `analyze` does.
//!
//! [`analyze`] loads the model (float32 for the forward passes and JVPs,
//! float64 for the masks), opens the inputs, draws the samples (seeded,
//! then this shard's part), selects the blocks, writes nothing until
//! [`Job::prepare`] has checked everything it can, evaluates the whole data
//! set once into `eval.json`, then runs the [`Job`].

use std::path::{Path, PathBuf};

use candle_core::DType;
use sha2::{Digest, Sha256};
use stiffness_data::{DataOptions, Dataset};
use stiffness_records::{store, Manifest, Shard, SpectrumVariant, EVAL_JSON};

use crate::analysis::inputs::{read_input_tensors, select_blocks, BlockFilter, Inputs};
use crate::analysis::job::{thread_pool, Job, Progress};
use crate::analysis::memory::Budget;
use crate::analysis::plan::{self, Solver};
use crate::error::{Error, Result};
use crate::model::{self, JacobianKind, ResNet};
use crate::{eval, sampling};

/// What an analysis runs on.
#[derive(Debug, Clone)]
pub enum Source {
    /// A labelled data set, opened with `options`.
    Data { path: PathBuf, options: DataOptions },
    /// The input tensors of a `.npy` file (N, C, H, W), unlabelled.
    Tensors(PathBuf),
}

/// How the samples of a labelled data set are drawn (seeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// K per class ([`sampling::stratified`]).
    PerClass(usize),
    /// N uniformly without replacement ([`sampling::uniform`]).
    Uniform(usize),
}

/// Everything `analyze` is asked to do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The checkpoint file.
    pub model: PathBuf,
    /// Overrides the inferred architecture.
    pub arch: Option<String>,
    /// The model's display name in records and reports (default: from the
    /// file, see [`stiffness_records::display_name`]).
    pub name: Option<String>,
    pub source: Source,
    pub sampling: Sampling,
    pub seed: u64,
    pub blocks: BlockFilter,
    pub kinds: Vec<JacobianKind>,
    /// The spectrum variants, the first one recorded as the manifest's.
    pub variants: Vec<SpectrumVariant>,
    pub shard: Option<Shard>,
    /// Worker threads: (sample, block) units in parallel, idle ones helping the solves still running.
    pub threads: usize,
    pub save_eigenvalues: bool,
    /// Evaluate the whole data set into `eval.json` (by shard 0 only, and
    /// only once per directory).
    pub evaluate: bool,
    /// `--max-memory`, e.g. "12G" (default: what the machine has available).
    pub max_memory: Option<String>,
    /// `--solver`: dense, matrix-free (krylov), or auto per record.
    pub solver: Solver,
    /// `--dense-seconds`: the longest estimated dense solve `auto` accepts.
    pub dense_seconds: f64,
}

/// Run the analysis of `settings` into the record directory `out`
/// (continuing an earlier run there with `resume`); returns the number of
/// records written now.
pub fn analyze(
    settings: &Settings,
    out: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<usize> {
    with_job(settings, |job, inputs| {
        let prepared = job.prepare(inputs)?;
        let first_shard = settings.shard.is_none_or(|s| s.index == 0);
        if let (Inputs::Data { data, .. }, true) = (inputs, settings.evaluate && first_shard) {
            job.pool.install(|| {
                evaluate_once(out, job.model, data, &|done| {
                    progress.evaluated(done, data.len())
                })
            })?;
        }
        job.run(out, inputs, &prepared, resume, progress)
    })
}

/// The plan of the analysis of `settings` (`analyze --dry-run`): loads the
/// model and lists the inputs, computes nothing and writes nothing.
pub fn plan(settings: &Settings) -> Result<Vec<plan::Row>> {
    with_job(settings, |job, inputs| job.plan(inputs.sample_ids()?.len()))
}

/// Load the model (float32 and float64), open the inputs, draw this shard's
/// samples and select the blocks; then `f` with the job and its inputs.
fn with_job<R>(
    settings: &Settings,
    f: impl FnOnce(&Job<'_>, &Inputs<'_>) -> Result<R>,
) -> Result<R> {
    let loaded = model::load(&settings.model, settings.arch.as_deref(), DType::F32)?;
    let net64 = model::load(&settings.model, settings.arch.as_deref(), DType::F64)?.model;
    let net = &loaded.model;
    let mut dataset = None;
    let (inputs, input_shape) = match &settings.source {
        Source::Data { path, options } => {
            let data: &Dataset = dataset.insert(options.open(path)?);
            let shape = eval::check_fit(net, data, &path.display().to_string())?;
            let chosen = match settings.sampling {
                Sampling::Uniform(n) => sampling::uniform(data.len(), n, settings.seed),
                Sampling::PerClass(k) => sampling::stratified(&data.labels(), k, settings.seed),
            };
            let indices = sampling::shard(&chosen, settings.shard);
            (Inputs::Data { data, indices }, shape)
        }
        Source::Tensors(npy) => {
            let t = read_input_tensors(npy)?;
            let (_, c, h, w) = t.dims4()?;
            (Inputs::Tensors(t), [c, h, w])
        }
    };
    let class_names = match &inputs {
        Inputs::Data { data, .. } => data.class_names().to_vec(),
        Inputs::Tensors(_) => Vec::new(),
    };
    let blocks = select_blocks(net, input_shape, &settings.blocks)?;
    let job = Job {
        model: net,
        model64: &net64,
        manifest: manifest(settings, net, &blocks, input_shape, &class_names)?,
        blocks,
        kinds: settings.kinds.clone(),
        variants: settings.variants.clone(),
        save_eigenvalues: settings.save_eigenvalues,
        class_names,
        budget: Budget::new(settings.max_memory.as_deref())?,
        solver: settings.solver,
        dense_seconds: settings.dense_seconds,
        pool: thread_pool(settings.threads)?,
    };
    f(&job, &inputs)
}

/// The manifest of the run: everything needed to reproduce it, with the
/// data options as the user wrote them.
fn manifest(
    settings: &Settings,
    net: &ResNet,
    blocks: &[usize],
    input_shape: [usize; 3],
    class_names: &[String],
) -> Result<Manifest> {
    let (data_path, data_format, options) = match &settings.source {
        Source::Data { path, options } => (path, options.format.clone(), options.clone()),
        Source::Tensors(path) => (path, "npy-tensors".to_string(), DataOptions::default()),
    };
    let (per_class, samples) = match settings.sampling {
        Sampling::PerClass(k) => (Some(k), None),
        Sampling::Uniform(n) => (None, Some(n)),
    };
    Ok(Manifest {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        model_path: settings.model.display().to_string(),
        name: settings.name.clone(),
        model_sha256: sha256_file(&settings.model)?,
        arch: net.spec.name(),
        data_path: data_path.display().to_string(),
        data_format,
        normalize: options.normalize.clone(),
        input_shape,
        class_names: class_names.to_vec(),
        per_class,
        samples,
        seed: settings.seed,
        blocks: blocks.iter().map(|&b| net.blocks[b].name.clone()).collect(),
        kinds: settings.kinds.clone(),
        spectrum: settings.variants[0],
        tolerance: "1e-6 * max(1, rho)".into(),
        shard: settings.shard,
        created: stiffness_fsutil::now_rfc3339(),
        extra: [
            ("spectra", serde_json::json!(settings.variants)),
            ("split", serde_json::json!(options.split)),
            ("resize", serde_json::json!(options.resize)),
            ("crop", serde_json::json!(options.crop)),
            ("channels", serde_json::json!(options.channels)),
            ("classes", serde_json::json!(options.classes)),
            ("solver", serde_json::json!(settings.solver.to_string())),
            ("dense_seconds", serde_json::json!(settings.dense_seconds)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    })
}

/// Evaluate the whole data set into `dir/eval.json` unless it is already there.
fn evaluate_once(
    dir: &Path,
    net: &ResNet,
    data: &Dataset,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<()> {
    if dir.join(EVAL_JSON).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let indices: Vec<usize> = (0..data.len()).collect();
    let outcomes = eval::evaluate(net, data, &indices, progress)?;
    Ok(store::write_eval(
        dir,
        &eval::summarize(&outcomes, data.class_names()),
    )?)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// `--shard I/N` (0 <= I < N).
pub fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    let bad = || format!("--shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let index: usize = i.trim().parse().map_err(|_| bad())?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}
