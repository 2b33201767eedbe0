//! The analysis job: choose samples, probe the model, measure every selected
//! block, and append one record per (sample, block, kind, spectrum variant).
//!
//! Crash safety: records are appended to `records.jsonl`, one (sample, block)
//! unit per `write` followed by `fsync`. `--resume` truncates a partial last
//! line, skips every record already present (by key), and computes only the
//! missing ones, so a run killed at any moment and resumed ends with exactly
//! the same set of records. Manifest, `records.csv` and `eval.json` are
//! written atomically (temporary file + rename).

pub mod measure;
pub mod memory;
pub mod sampling;

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Tensor};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use stiffness_data::Dataset;
use stiffness_report::fsutil::atomic_write;
use stiffness_report::record::{
    records_csv, Manifest, Record, Shard, SpectrumVariant, EVAL_JSON, MANIFEST_JSON, RECORDS_CSV,
    RECORDS_JSONL,
};

use crate::error::{Error, Result};
use crate::eval::{self, Outcome};
use crate::linearize::Linearization;
use crate::model::{JacobianKind, ResNet};

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

/// Everything an analysis run needs besides its inputs.
pub struct Job<'a> {
    pub model: &'a ResNet,
    /// The same model in float64 (masks of the linearisation).
    pub model64: &'a ResNet,
    pub manifest: Manifest,
    pub blocks: Vec<usize>,
    pub kinds: Vec<JacobianKind>,
    pub variants: Vec<SpectrumVariant>,
    pub save_eigenvalues: bool,
    pub class_names: Vec<String>,
    /// The memory the run may use (checked before it starts); `None`: unchecked.
    pub budget: Option<memory::Budget>,
}

/// Progress reports from the job (implemented by the CLI's progress bar).
pub trait Progress: Sync {
    /// `total` units (sample x block) will run, `skipped` were already done.
    fn start(&self, total: usize, skipped: usize);
    /// One unit finished.
    fn unit_done(&self, block: &str, seconds: f64);
}

/// A progress sink that reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: usize, _: usize) {}
    fn unit_done(&self, _: &str, _: f64) {}
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
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

/// The record file of an output directory, opened for appending, with the
/// keys already present. Without `resume`, existing records are an error.
struct RecordLog {
    file: Mutex<File>,
    done: BTreeSet<(usize, String, JacobianKind, SpectrumVariant)>,
}

impl RecordLog {
    fn open(dir: &Path, resume: bool) -> Result<Self> {
        let path = dir.join(RECORDS_JSONL);
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        if !existing.is_empty() && !resume {
            return Err(Error::Usage(format!(
                "{} already holds records: pass --resume to continue that run, or choose another --out",
                path.display()
            )));
        }
        // A kill can leave a partial last line: cut it off.
        let complete = existing.rfind('\n').map_or(0, |i| i + 1);
        let done = stiffness_report::record::parse_jsonl(&path, &existing[..complete])?
            .records
            .iter()
            .map(|r| (r.sample, r.block.clone(), r.kind, r.spectrum))
            .collect();
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("cannot open", &path, e))?;
        file.set_len(complete as u64)
            .map_err(|e| Error::io("cannot truncate", &path, e))?;
        let mut file = file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
            .map_err(|e| Error::io("cannot seek", &path, e))?;
        Ok(Self {
            file: Mutex::new(file),
            done,
        })
    }

    fn has(
        &self,
        sample: usize,
        block: &str,
        kind: JacobianKind,
        variant: SpectrumVariant,
    ) -> bool {
        self.done
            .contains(&(sample, block.to_string(), kind, variant))
    }

    /// Append complete lines in one write, then fsync.
    fn append(&self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for r in records {
            text.push_str(&r.to_json_line());
            text.push('\n');
        }
        let mut file = self
            .file
            .lock()
            .map_err(|_| Error::Numerical("record writer poisoned".into()))?;
        let io = |e| Error::Io {
            context: "cannot append records".into(),
            source: e,
        };
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)
    }
}

/// A sample to analyse: its outcome and every block's input (1, C, H, W).
struct Probe {
    outcome: Outcome,
    block_inputs: Vec<Tensor>,
    /// Why the sample cannot be analysed: the forward pass produced a
    /// non-finite value (its outcome and block inputs are then meaningless).
    overflow: Option<String>,
}

/// Whether every value of `t` is finite.
fn all_finite(t: &Tensor) -> Result<bool> {
    let values = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(values.iter().all(|v| v.is_finite()))
}

/// The samples of a run that passed [`Job::prepare`]'s checks; only
/// `prepare` makes one, so [`Job::run`] cannot start unchecked.
pub struct Prepared {
    samples: Vec<usize>,
}

impl Job<'_> {
    /// Run the job, prepared on `inputs`, into `dir`; returns the number of
    /// records written now.
    pub fn run(
        &self,
        dir: &Path,
        inputs: &Inputs<'_>,
        prepared: &Prepared,
        resume: bool,
        progress: &dyn Progress,
    ) -> Result<usize> {
        let samples = &prepared.samples;
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        self.check_or_write_manifest(dir, resume)?;
        let log = RecordLog::open(dir, resume)?;
        let todo: Vec<usize> = samples
            .iter()
            .copied()
            .filter(|&s| !self.sample_done(&log, s))
            .collect();
        // Cores that the samples cannot occupy go into the eigen-solves.
        let workers = rayon::current_num_threads();
        crate::spectrum::set_solver_threads(workers / todo.len().clamp(1, workers));
        progress.start(
            todo.len() * self.blocks.len(),
            (samples.len() - todo.len()) * self.blocks.len(),
        );
        let written = todo
            .par_iter()
            .map(|&s| self.analyse_sample(dir, &log, inputs, s, progress))
            .collect::<Result<Vec<usize>>>()?
            .iter()
            .sum();
        self.write_csv(dir)?;
        Ok(written)
    }

    /// The samples to analyse, after every check that needs no output: at
    /// least one sample, every chosen image decodable and finite, square
    /// inputs for the paper-compatible variant, memory within the budget.
    /// Call it before other work (such as the evaluation), then hand its
    /// result to [`Job::run`].
    pub fn prepare(&self, inputs: &Inputs<'_>) -> Result<Prepared> {
        let samples = self.sample_ids(inputs)?;
        if samples.is_empty() {
            return Err(Error::Usage(match self.manifest.shard {
                Some(s) => format!(
                    "shard {}/{} gets no sample: there are fewer samples than shards; use fewer shards",
                    s.index, s.count
                ),
                None => "no samples to analyse: --per-class and --samples must be at least 1, \
                         and the data must hold images"
                    .into(),
            }));
        }
        if let Inputs::Data { data, .. } = inputs {
            // Decode every chosen image now: an undecodable or non-finite
            // one is refused before any record is written.
            samples
                .par_iter()
                .try_for_each(|&i| data.get(i).map(drop))?;
        }
        self.check_square_for_paper_compat(inputs, &samples)?;
        self.check_memory(samples.len())?;
        Ok(Prepared { samples })
    }

    /// Refuse the run when a record would need more memory than the budget
    /// (see [`memory`]): every selected (block, kind, variant), with as many
    /// samples in flight as there are worker threads, plus both copies of
    /// the weights (float32 and float64).
    fn check_memory(&self, samples: usize) -> Result<()> {
        let Some(budget) = self.budget else {
            return Ok(());
        };
        let shapes = self.model.block_shapes(self.manifest.input_shape)?;
        let parallel = rayon::current_num_threads().clamp(1, samples.max(1)) as u64;
        let weights = 12 * self.model.parameter_count() as u64;
        for &b in &self.blocks {
            let (block, input) = (&self.model.blocks[b], shapes[b].input);
            for &kind in &self.kinds {
                for &variant in &self.variants {
                    let peak = memory::record_peak(block, kind, variant, input);
                    budget.check(weights + parallel * peak, || {
                        let at_once = if parallel > 1 {
                            format!(" with {parallel} samples in parallel (--threads 1 analyses one at a time)")
                        } else {
                            String::new()
                        };
                        format!(
                            "block {} ({kind} Jacobian, {variant} spectrum, input {}x{}x{}){at_once}",
                            block.name, input[0], input[1], input[2]
                        )
                    })?;
                }
            }
        }
        Ok(())
    }

    fn sample_ids(&self, inputs: &Inputs<'_>) -> Result<Vec<usize>> {
        Ok(match inputs {
            Inputs::Data { indices, .. } => indices.clone(),
            Inputs::Tensors(t) => (0..t.dims4()?.0).collect(),
        })
    }

    /// The paper-compatible variant cuts the Jacobian into H_in x W_in slices
    /// and needs square block inputs, which square images give (every block
    /// strides both axes alike): refuse non-square ones before anything is
    /// written, instead of failing part-way.
    fn check_square_for_paper_compat(&self, inputs: &Inputs<'_>, samples: &[usize]) -> Result<()> {
        if !self.variants.contains(&SpectrumVariant::PaperCompat) {
            return Ok(());
        }
        let Some(&first) = samples.first() else {
            return Ok(());
        };
        let (what, [c, h, w]) = match inputs {
            Inputs::Data { data, .. } => (data.describe(first), data.get(first)?.shape),
            Inputs::Tensors(t) => {
                let (_, c, h, w) = t.dims4()?;
                (format!("input tensor {first}"), [c, h, w])
            }
        };
        if h == w {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "{what}: the image is {c}x{h}x{w}, but --spectrum paper-compat needs square inputs \
             (H_in x W_in slices with H_in = W_in); use --spectrum exact, or --resize/--crop to a \
             square size"
        )))
    }

    fn sample_done(&self, log: &RecordLog, sample: usize) -> bool {
        self.blocks.iter().all(|&b| {
            self.missing(log, sample, &self.model.blocks[b].name)
                .is_empty()
        })
    }

    /// The (kind, variant) records of one (sample, block) not yet in the log.
    fn missing(
        &self,
        log: &RecordLog,
        sample: usize,
        block: &str,
    ) -> Vec<(JacobianKind, SpectrumVariant)> {
        self.kinds
            .iter()
            .flat_map(|&k| self.variants.iter().map(move |&v| (k, v)))
            .filter(|&(k, v)| !log.has(sample, block, k, v))
            .collect()
    }

    fn probe(&self, inputs: &Inputs<'_>, sample: usize) -> Result<Probe> {
        let (x, label) = match inputs {
            Inputs::Data { data, .. } => {
                let (x, labels) = eval::load_batch(data, &[sample])?;
                (x, Some(labels[0]))
            }
            Inputs::Tensors(t) => (t.narrow(0, sample, 1)?.to_dtype(DType::F32)?, None),
        };
        let mut block_inputs = Vec::new();
        let logits = self.model.forward_visiting(&x, |_, h| {
            block_inputs.push(h.clone());
            Ok(())
        })?;
        let logits = logits
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let guess = Outcome::from_logits(sample, 0, &logits).predicted;
        let outcome = Outcome::from_logits(sample, label.unwrap_or(guess), &logits);
        let mut overflow = None;
        for (b, h) in block_inputs.iter().enumerate() {
            if !all_finite(h)? {
                let name = &self.model.blocks[b].name;
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

    fn analyse_sample(
        &self,
        dir: &Path,
        log: &RecordLog,
        inputs: &Inputs<'_>,
        sample: usize,
        progress: &dyn Progress,
    ) -> Result<usize> {
        let probe = self.probe(inputs, sample)?;
        let mut written = 0;
        for &b in &self.blocks {
            let start = std::time::Instant::now();
            let block = &self.model.blocks[b];
            let missing = self.missing(log, sample, &block.name);
            if !missing.is_empty() {
                let lin =
                    Linearization::new(block, &self.model64.blocks[b], &probe.block_inputs[b])?;
                let records = missing
                    .iter()
                    .map(|&(k, v)| match &probe.overflow {
                        Some(reason) => {
                            let m = measure::Measurement::failed(&lin, reason.clone());
                            Ok(self.record_of(m, &lin, &probe, b, k, v))
                        }
                        None => self.record(dir, &lin, &probe, b, k, v),
                    })
                    .collect::<Result<Vec<_>>>()?;
                log.append(&records)?;
                written += records.len();
            }
            progress.unit_done(&block.name, start.elapsed().as_secs_f64());
        }
        Ok(written)
    }

    fn record(
        &self,
        dir: &Path,
        lin: &Linearization<'_>,
        probe: &Probe,
        block_index: usize,
        kind: JacobianKind,
        variant: SpectrumVariant,
    ) -> Result<Record> {
        let mut m = measure::measure(lin, kind, variant)?;
        let block = &self.model.blocks[block_index].name;
        let sample = probe.outcome.index;
        let eigenvalues_file = match (self.save_eigenvalues, m.eigenvalues.take()) {
            (true, Some(values)) => Some(save_eigenvalues(dir, sample, block, kind, &values)?),
            _ => None,
        };
        let mut record = self.record_of(m, lin, probe, block_index, kind, variant);
        record.eigenvalues_file = eigenvalues_file;
        Ok(record)
    }

    /// The record of measurement `m`, with the sample's and model's identity.
    fn record_of(
        &self,
        m: measure::Measurement,
        lin: &Linearization<'_>,
        probe: &Probe,
        block_index: usize,
        kind: JacobianKind,
        variant: SpectrumVariant,
    ) -> Record {
        let o = &probe.outcome;
        let block = &self.model.blocks[block_index].name;
        let mut record = Record {
            model: self.manifest_model_name(),
            model_sha256: self.manifest.model_sha256.clone(),
            sample: o.index,
            label: o.label,
            label_name: self
                .class_names
                .get(o.label)
                .cloned()
                .unwrap_or_else(|| o.label.to_string()),
            predicted: o.predicted,
            loss: o.loss,
            correct: o.correct(),
            block: block.clone(),
            block_index,
            kind,
            spectrum: variant,
            square: lin.is_square(),
            ..Record::default()
        };
        m.fill(&mut record);
        record
    }

    fn manifest_model_name(&self) -> String {
        Path::new(&self.manifest.model_path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn check_or_write_manifest(&self, dir: &Path, resume: bool) -> Result<()> {
        let path = dir.join(MANIFEST_JSON);
        if resume && path.exists() {
            let old = stiffness_report::record::read_manifest(dir)?;
            return check_compatible(&old, &self.manifest, &path);
        }
        write_json(&path, &self.manifest)
    }

    /// records.csv, sorted by (sample, block, kind, variant), from records.jsonl.
    fn write_csv(&self, dir: &Path) -> Result<()> {
        let mut records = stiffness_report::record::read_records(dir)?;
        sort_records(&mut records);
        let csv = records_csv(&records).map_err(Error::Numerical)?;
        Ok(atomic_write(&dir.join(RECORDS_CSV), &csv)?)
    }
}

/// The canonical record order: by sample, block depth, kind, spectrum variant.
pub fn sort_records(records: &mut [Record]) {
    records.sort_by_key(|r| (r.sample, r.block_index, r.kind, r.spectrum));
}

/// Refuse to resume or merge runs whose options differ.
pub fn check_compatible(old: &Manifest, new: &Manifest, path: &Path) -> Result<()> {
    let strip = |m: &Manifest| {
        let mut m = m.clone();
        m.created = String::new();
        m.tool_version = String::new();
        m.shard = None;
        m
    };
    if strip(old) != strip(new) {
        let a = serde_json::to_value(strip(old)).unwrap_or_default();
        let b = serde_json::to_value(strip(new)).unwrap_or_default();
        let diff: Vec<String> = a
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| b.get(k.as_str()) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k}: {v} vs {}",
                    b.get(k.as_str()).cloned().unwrap_or_default()
                )
            })
            .collect();
        return Err(Error::Usage(format!(
            "{}: incompatible run ({}); use the same options, or another --out",
            path.display(),
            diff.join("; ")
        )));
    }
    Ok(())
}

/// Write a serialisable value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Numerical(e.to_string()))?;
    Ok(atomic_write(path, format!("{text}\n").as_bytes())?)
}

/// Write `eval.json` into a record directory.
pub fn write_eval(dir: &Path, summary: &stiffness_report::record::EvalSummary) -> Result<()> {
    write_json(&dir.join(EVAL_JSON), summary)
}

/// `eigenvalues/s{sample}_{block}_{kind}.npy` (complex128), path relative to `dir`.
fn save_eigenvalues(
    dir: &Path,
    sample: usize,
    block: &str,
    kind: JacobianKind,
    values: &[num_complex::Complex64],
) -> Result<String> {
    let rel = PathBuf::from("eigenvalues").join(format!("s{sample}_{block}_{kind}.npy"));
    let path = dir.join(&rel);
    std::fs::create_dir_all(dir.join("eigenvalues"))
        .map_err(|e| Error::io("cannot create", dir, e))?;
    let pairs: Vec<[f64; 2]> = values.iter().map(|z| [z.re, z.im]).collect();
    stiffness_checkpoint::npy::write_npy_c128(&path, &[pairs.len()], &pairs)?;
    Ok(rel.to_string_lossy().into_owned())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
