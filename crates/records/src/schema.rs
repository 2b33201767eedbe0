//! The record schema written by the analysis job and read by the report:
//! one [`Record`] per (sample, block, Jacobian kind, spectrum variant) in
//! `records.jsonl` (and the same columns in `records.csv`), a [`Manifest`]
//! in `manifest.json`, and optionally the evaluation summary `eval.json`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use stiffness_fsutil::nonfinite;

/// File name of the JSON-lines records in a record directory.
pub const RECORDS_JSONL: &str = "records.jsonl";
/// File name of the CSV records in a record directory.
pub const RECORDS_CSV: &str = "records.csv";
/// File name of the manifest in a record directory.
pub const MANIFEST_JSON: &str = "manifest.json";
/// File name of the evaluation summary in a record directory.
pub const EVAL_JSON: &str = "eval.json";

/// Which Jacobian a record describes: the one definition shared by the
/// model, the analysis and the report.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum JacobianKind {
    /// Whole block J_B = dB/dx (the map x_k -> x_{k+1}).
    #[default]
    Block,
    /// Residual branch J_F = dF/dx (the ODE's vector field).
    Residual,
}

impl JacobianKind {
    /// Both kinds, in output order.
    pub const ALL: [JacobianKind; 2] = [JacobianKind::Block, JacobianKind::Residual];

    /// The name used in options and records: "block" or "residual".
    pub fn name(self) -> &'static str {
        match self {
            JacobianKind::Block => "block",
            JacobianKind::Residual => "residual",
        }
    }
}

impl std::fmt::Display for JacobianKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for JacobianKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JacobianKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown Jacobian kind '{s}': expected block or residual"))
    }
}

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

/// How a record's spectral metrics were computed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every eigenvalue (or singular value) from the reduced dense problem.
    #[default]
    Dense,
    /// Extreme eigenvalues matrix-free (Krylov-Schur on JVPs, Lanczos-type
    /// runs on JVP + VJP), each with its residual.
    Krylov,
}

impl Method {
    /// "dense" or "krylov".
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dense => "dense",
            Method::Krylov => "krylov",
        }
    }
}

impl fmt::Display for Method {
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
    /// The model's display name (see `Manifest::model_name`).
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
    pub kind: JacobianKind,
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
    /// max |1 + lambda| (residual kind): the largest amplification of a
    /// forward-Euler step with h = 1.
    #[serde(default, with = "nonfinite::option")]
    pub euler_amplification: Option<f64>,
    /// How the metrics were computed: `dense` (the reduced dense
    /// eigenproblem, every eigenvalue) or `krylov` (matrix-free extremes).
    #[serde(default)]
    pub method: Method,
    /// Krylov: operator (JVP / VJP) applications, residual checks included.
    #[serde(default)]
    pub applications: Option<usize>,
    /// Krylov: thick restarts, summed over the runs of the record.
    #[serde(default)]
    pub restarts: Option<usize>,
    /// Krylov: the largest basis any run of the record used (it starts
    /// short and grows only when the restarts do not converge).
    #[serde(default)]
    pub krylov_dim: Option<usize>,
    /// Krylov: the relative residual a reported extreme had to reach.
    #[serde(default, with = "nonfinite::option")]
    pub krylov_tol: Option<f64>,
    /// Krylov: whether every reported extreme reached `krylov_tol` (a metric
    /// whose Ritz pair did not is null).
    #[serde(default)]
    pub converged: Option<bool>,
    /// Krylov: true relative residual ||J x - lambda x|| / (||x|| scale) of
    /// the Ritz pair behind `max_re` (0 when a structural eigenvalue is the
    /// extreme); scale = the largest |Ritz value|.
    #[serde(default, with = "nonfinite::option")]
    pub max_re_residual: Option<f64>,
    /// Krylov: the same for `min_re`.
    #[serde(default, with = "nonfinite::option")]
    pub min_re_residual: Option<f64>,
    /// Krylov: the same for `spectral_radius`.
    #[serde(default, with = "nonfinite::option")]
    pub spectral_radius_residual: Option<f64>,
    /// Krylov: the same for `euler_amplification`.
    #[serde(default, with = "nonfinite::option")]
    pub euler_residual: Option<f64>,
    /// Krylov: the larger residual of the two Ritz pairs of (J + J^T)/2
    /// behind `soderlind`.
    #[serde(default, with = "nonfinite::option")]
    pub soderlind_residual: Option<f64>,
    /// Krylov: the residual of the Ritz pair of J^T J behind `sigma_max`.
    #[serde(default, with = "nonfinite::option")]
    pub sigma_max_residual: Option<f64>,
    /// The metrics left null on purpose and why (e.g. `neg_share` needs the
    /// whole spectrum, which a matrix-free solver does not compute).
    #[serde(default)]
    pub not_computed: Option<String>,
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
pub type RecordKey = (String, usize, String, JacobianKind, SpectrumVariant);

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
    /// Path of the model file, as given.
    pub model_path: String,
    /// The model's display name when one was given (`analyze --name`);
    /// otherwise [`Manifest::model_name`] derives it from `model_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
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
    pub kinds: Vec<JacobianKind>,
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

impl Manifest {
    /// The name records and reports give the model: the `name` given, else
    /// [`display_name`] of `model_path`.
    pub fn model_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| display_name(std::path::Path::new(&self.model_path)))
    }
}

/// The name of the model file at `path`: its stem (`resnet20-12fca82f`,
/// `epoch-004`), or, for the `model.safetensors` that `export` writes, the
/// folder that holds it (`fashion-mnist-resnet18`), so that exported models
/// do not all appear as "model".
pub fn display_name(path: &std::path::Path) -> String {
    let stem = |p: &std::path::Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let own = stem(path);
    if own != "model" {
        return own;
    }
    path.parent()
        .and_then(|dir| dir.file_name())
        .map_or(own, |dir| dir.to_string_lossy().into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn display_name_is_the_stem_or_the_folder_of_an_exported_model() {
        let name = |p: &str| display_name(Path::new(p));
        assert_eq!(name("../m/resnet20-12fca82f.th"), "resnet20-12fca82f");
        assert_eq!(name("run/epoch-004.safetensors"), "epoch-004");
        assert_eq!(
            name("assets/fashion-mnist-resnet18/model.safetensors"),
            "fashion-mnist-resnet18"
        );
        // Nothing better to say than the stem.
        assert_eq!(name("model.safetensors"), "model");
    }

    #[test]
    fn a_given_name_wins_over_the_file() {
        let mut m = Manifest {
            tool_version: String::new(),
            model_path: "out/cifar/model.safetensors".into(),
            name: None,
            model_sha256: String::new(),
            arch: String::new(),
            data_path: String::new(),
            data_format: String::new(),
            normalize: String::new(),
            input_shape: [3, 32, 32],
            class_names: Vec::new(),
            per_class: None,
            samples: None,
            seed: 0,
            blocks: Vec::new(),
            kinds: Vec::new(),
            spectrum: SpectrumVariant::Exact,
            tolerance: String::new(),
            shard: None,
            created: String::new(),
            extra: BTreeMap::new(),
        };
        assert_eq!(m.model_name(), "cifar");
        // Without a name the manifest has no `name` key (older manifests
        // read back unchanged).
        assert!(!serde_json::to_string(&m).unwrap().contains("\"name\""));
        m.name = Some("baseline".into());
        assert_eq!(m.model_name(), "baseline");
    }
}
