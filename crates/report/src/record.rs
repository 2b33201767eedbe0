//! The record schema written by the analysis job and read by the report:
//! one [`Record`] per (sample, block, Jacobian kind, spectrum variant) in
//! `records.jsonl` (and the same columns in `records.csv`), a [`Manifest`]
//! in `manifest.json`, and optionally the evaluation summary `eval.json`.

use crate::error::{Error, Result};
use crate::fsutil::atomic_write;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use stiffness_spectrum::nonfinite;

/// File name of the JSON-lines records in a record directory.
pub const RECORDS_JSONL: &str = "records.jsonl";
/// File name of the CSV records in a record directory.
pub const RECORDS_CSV: &str = "records.csv";
/// File name of the manifest in a record directory.
pub const MANIFEST_JSON: &str = "manifest.json";
/// File name of the evaluation summary in a record directory.
pub const EVAL_JSON: &str = "eval.json";

/// Which Jacobian a record describes ("block" or "residual"): the one
/// definition shared with the spectrum crate and the analysis job.
pub use stiffness_spectrum::JacobianKind as Kind;

/// Which spectrum a record's eigenvalue metrics come from.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum SpectrumVariant {
    /// Eigenvalues of the flattened n x n Jacobian.
    #[default]
    Exact,
    /// Eigenvalues of the H_in x W_in slices of the unflattened Jacobian
    /// (what `torch.linalg.eigvals` returns on the raw `jacrev` output).
    PaperCompat,
}

impl SpectrumVariant {
    /// The serialised name, "exact" or "paper-compat".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::PaperCompat => "paper-compat",
        }
    }
}

impl fmt::Display for SpectrumVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One analysed (sample, block, Jacobian kind, spectrum variant). Field
/// order is the column order of `records.csv`. Metrics that do not apply are
/// `None` (null in JSON, an empty cell in CSV); non-finite metric values are
/// written as "inf", "-inf", "nan". For [`SpectrumVariant::PaperCompat`]
/// records, `n` is the number of slice eigenvalues, `max_re`/`min_re` are
/// taken over them, `stiffness_index = max_re / min_re`, `neg_share` is the
/// fraction with Re < 0 and `n_zero` the number with Re exactly 0; the other
/// metrics are `None`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// Model file stem.
    pub model: String,
    /// SHA-256 of the model file (hex).
    pub model_sha256: String,
    /// Index of the sample in the data set.
    pub sample: usize,
    /// True label.
    pub label: usize,
    /// Name of the true label.
    pub label_name: String,
    /// Predicted label (arg-max of the logits).
    pub predicted: usize,
    /// Per-sample cross-entropy loss ("nan" when the logits were not finite).
    #[serde(with = "nonfinite")]
    pub loss: f64,
    /// Whether `predicted == label`.
    pub correct: bool,
    /// Block name, e.g. "layer3.2".
    pub block: String,
    /// 0-based depth of the block.
    pub block_index: usize,
    /// Which Jacobian.
    pub kind: Kind,
    /// Which spectrum.
    pub spectrum: SpectrumVariant,
    /// Whether input and output shapes agree.
    pub square: bool,
    /// C*H*W of the input (paper-compat: the number of slice eigenvalues).
    pub n: usize,
    /// C*H*W of the output.
    pub n_out: usize,
    /// Number of active outputs (D_out != 0), when known.
    pub n_active: Option<usize>,
    /// Size of the dense eigenproblem actually solved, when known.
    pub solved_size: Option<usize>,
    /// Largest Re(lambda).
    #[serde(with = "nonfinite::option")]
    pub max_re: Option<f64>,
    /// Smallest Re(lambda).
    #[serde(with = "nonfinite::option")]
    pub min_re: Option<f64>,
    /// max_re / min_re (signed).
    #[serde(with = "nonfinite::option")]
    pub stiffness_index: Option<f64>,
    /// max |Re| / min |Re| over eigenvalues with Re < -tol.
    #[serde(with = "nonfinite::option")]
    pub stiffness_ratio: Option<f64>,
    /// Fraction of eigenvalues with Re < -tol.
    #[serde(with = "nonfinite::option")]
    pub neg_share: Option<f64>,
    /// Number of exactly zero eigenvalues.
    pub n_zero: Option<usize>,
    /// max |lambda|.
    #[serde(with = "nonfinite::option")]
    pub spectral_radius: Option<f64>,
    /// (mu_max + mu_min) / 2 of the symmetric part.
    #[serde(with = "nonfinite::option")]
    pub soderlind: Option<f64>,
    /// Fraction of eigenvalues outside the forward-Euler disk |1 + z| <= 1.
    #[serde(with = "nonfinite::option")]
    pub euler_unstable_share: Option<f64>,
    /// ||x_{k+1} - x_k|| / ||x_k||.
    #[serde(with = "nonfinite::option")]
    pub relative_step: Option<f64>,
    /// Largest singular value.
    #[serde(with = "nonfinite::option")]
    pub sigma_max: Option<f64>,
    /// Smallest singular value.
    #[serde(with = "nonfinite::option")]
    pub sigma_min: Option<f64>,
    /// sigma_max / sigma_min.
    #[serde(with = "nonfinite::option")]
    pub sigma_ratio: Option<f64>,
    /// Complex128 .npy with the eigenvalues, relative to the record directory.
    pub eigenvalues_file: Option<String>,
    /// Wall-clock seconds spent on this record.
    pub seconds: f64,
    /// Why the metrics are missing, when the record could not be computed
    /// honestly (e.g. the forward pass or a JVP overflowed to a non-finite
    /// value); every metric is then null. `None` for a computed record.
    #[serde(default)]
    pub failure: Option<String>,
}

/// The identity of a record: records with equal keys are duplicates (for
/// example the same work done by two shards).
pub type RecordKey = (String, usize, String, Kind, SpectrumVariant);

impl Record {
    /// (model_sha256, sample, block, kind, spectrum).
    pub fn key(&self) -> RecordKey {
        (
            self.model_sha256.clone(),
            self.sample,
            self.block.clone(),
            self.kind,
            self.spectrum,
        )
    }

    /// The record as one JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a Record always serialises")
    }
}

/// A shard of the analysis job: work item i goes to shard `i % count == index`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard index.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

/// `manifest.json`: everything needed to reproduce a record directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Version of the tool that wrote the records.
    pub tool_version: String,
    /// Path of the model file.
    pub model_path: String,
    /// SHA-256 of the model file (hex).
    pub model_sha256: String,
    /// Architecture, e.g. "resnet56-cifar".
    pub arch: String,
    /// Path of the data set.
    pub data_path: String,
    /// Data set format, e.g. "cifar10-bin".
    pub data_format: String,
    /// Normalisation applied, e.g. "mean=(...), std=(...)".
    pub normalize: String,
    /// Model input shape (C, H, W).
    pub input_shape: [usize; 3],
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    /// Samples drawn per class, when sampling per class.
    pub per_class: Option<usize>,
    /// Total samples drawn, when sampling overall.
    pub samples: Option<usize>,
    /// Sampling seed.
    pub seed: u64,
    /// Blocks analysed, in depth order.
    pub blocks: Vec<String>,
    /// Jacobian kinds analysed.
    pub kinds: Vec<Kind>,
    /// Spectrum variant(s) analysed.
    pub spectrum: SpectrumVariant,
    /// Eigenvalue tolerance, e.g. "1e-6 * max(1, rho)".
    pub tolerance: String,
    /// This directory's shard, if sharded.
    pub shard: Option<Shard>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Anything else worth recording.
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Accuracy and loss of one label in [`EvalSummary`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ClassEval {
    /// The label.
    pub label: usize,
    /// Its name.
    pub name: String,
    /// Fraction of images of this label classified correctly.
    pub accuracy: f64,
    /// Mean cross-entropy over images of this label.
    pub loss: f64,
    /// Number of images of this label.
    pub count: usize,
}

/// What `eval --json` prints (stored as `eval.json` in a record directory):
/// accuracy and loss over ALL evaluated images, overall and per label.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EvalSummary {
    /// Overall accuracy.
    pub accuracy: f64,
    /// Overall mean cross-entropy.
    pub loss: f64,
    /// Number of images evaluated.
    pub count: usize,
    /// Per-label results.
    pub per_class: Vec<ClassEval>,
}

/// Records read from one directory, with the number of skipped lines.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordFile {
    /// The file read.
    pub path: PathBuf,
    /// The records, in file order.
    pub records: Vec<Record>,
    /// 1 if a truncated final line was skipped (an interrupted write), else 0.
    pub skipped_partial_lines: usize,
}

/// Reads `records.jsonl` from `dir` (or `records.csv` when there is no JSON
/// lines file). A final line that does not parse (an interrupted append) is
/// skipped with a warning on stderr; a bad line anywhere else is an error
/// naming the file and line.
pub fn read_records(dir: &Path) -> Result<Vec<Record>> {
    let file = read_record_file(dir)?;
    if file.skipped_partial_lines > 0 {
        eprintln!(
            "warning: {}: skipped {} truncated final line",
            file.path.display(),
            file.skipped_partial_lines
        );
    }
    Ok(file.records)
}

/// [`read_records`] returning the skipped-line count instead of printing it.
pub fn read_record_file(dir: &Path) -> Result<RecordFile> {
    let jsonl = dir.join(RECORDS_JSONL);
    if jsonl.exists() {
        let text = fs::read_to_string(&jsonl).map_err(|e| Error::io(&jsonl, e))?;
        return parse_jsonl(&jsonl, &text);
    }
    let csv_path = dir.join(RECORDS_CSV);
    if csv_path.exists() {
        return read_csv(&csv_path);
    }
    Err(Error::Invalid(format!(
        "{}: neither {RECORDS_JSONL} nor {RECORDS_CSV} found",
        dir.display()
    )))
}

/// Parses JSON-lines text; see [`read_records`] for the tolerance rule.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<RecordFile> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut records = Vec::with_capacity(lines.len());
    let mut skipped = 0;
    for (k, &(i, line)) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) if k + 1 == lines.len() && !text.ends_with('\n') => skipped += 1,
            Err(e) => return Err(Error::parse(path, Some(i + 1), e.to_string())),
        }
    }
    Ok(RecordFile {
        path: path.to_path_buf(),
        records,
        skipped_partial_lines: skipped,
    })
}

fn read_csv(path: &Path) -> Result<RecordFile> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| Error::parse(path, None, e.to_string()))?;
    let mut records = Vec::new();
    for (i, row) in reader.deserialize::<Record>().enumerate() {
        records.push(row.map_err(|e| Error::parse(path, Some(i + 2), e.to_string()))?);
    }
    Ok(RecordFile {
        path: path.to_path_buf(),
        records,
        skipped_partial_lines: 0,
    })
}

/// Writes `records` as `records.jsonl` and `records.csv` into `dir`
/// (each atomically).
pub fn write_records(dir: &Path, records: &[Record]) -> Result<()> {
    let mut jsonl = String::new();
    for r in records {
        jsonl.push_str(&r.to_json_line());
        jsonl.push('\n');
    }
    atomic_write(&dir.join(RECORDS_JSONL), jsonl.as_bytes())?;
    let csv_path = dir.join(RECORDS_CSV);
    atomic_write(
        &csv_path,
        &records_csv(records).map_err(|m| Error::parse(&csv_path, None, m))?,
    )
}

/// The CSV text of `records` (header + one row each).
pub fn records_csv(records: &[Record]) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if records.is_empty() {
        w.write_record(record_columns())
            .map_err(|e| e.to_string())?;
    }
    for r in records {
        w.serialize(r).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// The column names of `records.csv`, in order.
pub fn record_columns() -> Vec<&'static str> {
    vec![
        "model",
        "model_sha256",
        "sample",
        "label",
        "label_name",
        "predicted",
        "loss",
        "correct",
        "block",
        "block_index",
        "kind",
        "spectrum",
        "square",
        "n",
        "n_out",
        "n_active",
        "solved_size",
        "max_re",
        "min_re",
        "stiffness_index",
        "stiffness_ratio",
        "neg_share",
        "n_zero",
        "spectral_radius",
        "soderlind",
        "euler_unstable_share",
        "relative_step",
        "sigma_max",
        "sigma_min",
        "sigma_ratio",
        "eigenvalues_file",
        "seconds",
        "failure",
    ]
}

/// Reads `manifest.json` from `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    read_json(&dir.join(MANIFEST_JSON))
}

/// Reads `eval.json` from `dir` if it exists.
pub fn read_eval(dir: &Path) -> Result<Option<EvalSummary>> {
    let path = dir.join(EVAL_JSON);
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path).map(Some)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::parse(path, Some(e.line()), e.to_string()))
}
