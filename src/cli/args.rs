//! The command line's types: every subcommand and its options (clap), and
//! their conversion into the library's settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use resnet_stiffness::analysis::{settings::parse_shard, Sampling, Settings, Source};
use resnet_stiffness::error::{Error, Result};
use resnet_stiffness::train::TrainConfig;
use stiffness_data::DataOptions;
use stiffness_records::SpectrumVariant;

#[derive(Parser)]
#[command(name = "resnet-stiffness", version, about = "Block-level stiffness analysis of residual networks", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// The main job on the built-in default: evaluate, analyse and report (the default command).
    Demo(DemoArgs),
    /// Show the inferred architecture and every residual block's shapes.
    Inspect(InspectArgs),
    /// Top-1 accuracy and cross-entropy loss, overall and per class.
    Eval(EvalArgs),
    /// Block Jacobians, exact spectra and stiffness metrics; one record per (sample, block, kind, spectrum).
    Analyze(AnalyzeArgs),
    /// Join the outputs of `analyze --shard I/N` runs (refuses incompatible runs).
    Merge(MergeArgs),
    /// Tables, figures and a Markdown/HTML report from record directories.
    Report(ReportArgs),
    /// Train a ResNet with SGD (checkpoints every epoch as safetensors; resumable).
    Train(TrainArgs),
    /// Write a training run's weights as float16 (or float32) safetensors with a
    /// training.json record, and score the written file on the held-out data.
    Export(ExportArgs),
    /// Time Jacobian assembly and eigen-solves (with and without reductions) and evaluation throughput.
    Bench(BenchArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// Architecture: resnet18/34/50/101/152 (torchvision) or resnet20/32/44/56/110 (CIFAR).
    #[arg(long)]
    pub arch: String,
    /// Training data (its train split when a folder holds both).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder for checkpoints and the training state.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the training images.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Images per SGD step (the last incomplete batch of an epoch is skipped).
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    pub lr: f64,
    /// cosine or step (x0.1 at epochs E/2 and 3E/4).
    #[arg(long, default_value_t = TrainConfig::default().schedule.to_string())]
    pub schedule: String,
    /// L2 weight decay, on every parameter (PyTorch's SGD weight_decay).
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f64,
    /// Nesterov momentum (momentum is 0.9).
    #[arg(long)]
    pub nesterov: bool,
    /// Linear warm-up epochs.
    #[arg(long, default_value_t = TrainConfig::default().warmup_epochs)]
    pub warmup_epochs: usize,
    /// crop-flip (random crop with padding, horizontal flip) or none.
    #[arg(long, default_value_t = TrainConfig::default().augment.to_string())]
    pub augment: String,
    /// Seed of the initialisation, the data order and the augmentation.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Continue the run in --out (bit-for-bit on the same seed); a new run
    /// where --out holds none yet.
    #[arg(long)]
    pub resume: bool,
    /// Write a checkpoint every N epochs (and after the last).
    #[arg(long, default_value_t = TrainConfig::default().checkpoint_every)]
    pub checkpoint_every: usize,
    /// Also save part-way through an epoch every M minutes (0: after every
    /// step), so that an interrupted run loses at most M minutes.
    #[arg(long, default_value_t = TrainConfig::default().save_minutes)]
    pub save_minutes: f64,
    /// Held-out data (default: the test split of --data).
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    /// Use only N images, spread evenly over the training and over the held-out data.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Input channels (default: from the data; 3 with greyscale data replicates it).
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Classes to train on: all, N (the first N), or FILE (one class name per
    /// line); `--classes 200` is the standard Tiny-ImageNet.
    #[arg(long, default_value = "all")]
    pub classes: String,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A training run's --out folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Folder for model.safetensors and training.json.
    #[arg(long)]
    pub out: PathBuf,
    /// f16 (half the size) or f32.
    #[arg(long, default_value = "f16")]
    pub dtype: String,
    /// Held-out data to score the file on (default: the run's).
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Largest block size n = C*H*W to time.
    #[arg(long, default_value_t = 16384)]
    pub max_n: usize,
    /// Largest n for which the unreduced dense solve is also timed.
    #[arg(long, default_value_t = 4096)]
    pub max_dense: usize,
    /// Also time evaluation throughput of ResNet20 and ResNet18 at 32x32.
    #[arg(long)]
    pub eval: bool,
    /// Also time training throughput (SGD steps, batch 128) of ResNet18, 34 and 50 at 32x32.
    #[arg(long)]
    pub train: bool,
}

#[derive(Args)]
pub struct ModelArgs {
    /// Checkpoint: .safetensors, PyTorch .pt/.pth (zip) or legacy .th.
    #[arg(long)]
    pub model: PathBuf,
    /// Override the inferred architecture (resnet18..152, resnet20/32/44/56/110, resnetD with D = 6n+2).
    #[arg(long)]
    pub arch: Option<String>,
}

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Data format (auto-detected by default).
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Which split of a folder that holds both.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Normalisation: imagenet, cifar10, none, or M1,M2,M3:S1,S2,S3.
    #[arg(long, default_value = "none")]
    pub normalize: String,
    /// ImageFolder: resize the shorter side to this many pixels (bilinear, antialiased).
    #[arg(long)]
    pub resize: Option<usize>,
    /// ImageFolder: centre-crop to SIZE x SIZE.
    #[arg(long)]
    pub crop: Option<usize>,
    /// Replicate a greyscale channel to this many channels.
    #[arg(long)]
    pub channels: Option<usize>,
    /// Classes to read: all; N (the first N classes of the data set's class
    /// list: Tiny-ImageNet's wnids.txt, sorted folder names, CIFAR's label
    /// order); or FILE, one class (id such as a wnid or folder name, or class
    /// name) per line, labels in the file's order. Images of other classes
    /// are left out, labels renumbered 0..K-1. `--classes 200` gives standard
    /// Tiny-ImageNet from a copy whose wnids.txt lists extra classes.
    #[arg(long, default_value = "all")]
    pub classes: String,
}

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input size H or HxW (default: 224 for torchvision models, 32 for CIFAR models).
    #[arg(long)]
    pub input_size: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Data set: CIFAR bin/pickle folder or file, ImageFolder, IDX images, or images.npy (+ labels.npy).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub options: DataArgs,
    /// Evaluate only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labelled data set (see `eval`); or use --input-npy.
    #[arg(long, required_unless_present = "input_npy")]
    pub data: Option<PathBuf>,
    /// Analyse the input tensors of this .npy (N, C, H, W) instead of a data set.
    #[arg(long, conflicts_with = "data")]
    pub input_npy: Option<PathBuf>,
    #[command(flatten)]
    pub options: DataArgs,
    /// Samples per class (stratified, seeded).
    #[arg(long, default_value_t = 1)]
    pub per_class: usize,
    /// Instead of --per-class: N samples drawn uniformly (seeded).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Seed of the sample drawn by --per-class or --samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// all, square, or NAME,NAME,...
    #[arg(long, default_value = "all")]
    pub blocks: String,
    /// Comma-separated Jacobian kinds: block, residual.
    #[arg(long, default_value = "block,residual")]
    pub jacobian: String,
    /// exact (flattened Jacobian), paper-compat (the paper's slice spectrum), or both.
    #[arg(long, default_value = "exact")]
    pub spectrum: String,
    /// Output directory.
    #[arg(long, default_value = "out/analysis")]
    pub out: PathBuf,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Analyse shard I of N (0 <= I < N) of the samples.
    #[arg(long)]
    pub shard: Option<String>,
    /// Worker threads: (sample, block) units in parallel, idle ones helping the solves still running.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Also write every spectrum as complex128 .npy.
    #[arg(long)]
    pub save_eigenvalues: bool,
    /// Skip the evaluation of the whole data set (eval.json).
    #[arg(long)]
    pub no_eval: bool,
    /// With --input-npy: print the records to stdout as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// The model's name in records and reports (default: the file stem, or
    /// for an exported model.safetensors the folder that holds it).
    #[arg(long)]
    pub name: Option<String>,
    /// Memory the run may use, e.g. 12G or 512M (default: what the machine
    /// has available). The run is refused before it starts when a record
    /// could need more (an upper bound from the block shapes).
    #[arg(long)]
    pub max_memory: Option<String>,
    /// Eigen-solver: dense (the reduced dense problem: every eigenvalue),
    /// krylov (matrix-free extremes with their residuals; neg_share and
    /// n_zero are then null), or auto (dense when it fits --max-memory and
    /// --dense-seconds, else krylov, decided per record).
    #[arg(long, default_value = "auto")]
    pub solver: String,
    /// With --solver auto: the longest estimated dense eigen-solve of one
    /// record, in seconds, before the matrix-free path is used instead.
    #[arg(long, default_value_t = resnet_stiffness::analysis::plan::DEFAULT_DENSE_SECONDS)]
    pub dense_seconds: f64,
    /// Print the plan (every block and kind: reduced size, memory, time
    /// estimate, solver) and stop: nothing is computed or written.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Where the analysis records and the report go.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Samples per class to analyse.
    #[arg(long, default_value_t = 2)]
    pub per_class: usize,
    /// Blocks to analyse: all, square, or names such as layer4.1.
    #[arg(long, default_value = "all")]
    pub blocks: String,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Output directory for the merged records.
    #[arg(long)]
    pub out: PathBuf,
    /// Shard output directories.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Record directories (one per model, or shards).
    #[arg(long, required = true, num_args = 1..)]
    pub records: Vec<PathBuf>,
    #[arg(long, default_value = "out/report")]
    pub out: PathBuf,
    /// Comma-separated: md, html.
    #[arg(long, default_value = "md,html")]
    pub format: String,
    /// The record directories are the checkpoints of one training run, in
    /// training order (e.g. analyses of epoch-001 ... epoch-020 of a `train`
    /// run, same data and --seed): add per-block trends across training
    /// (Spearman rho against the checkpoint's position) and their figures.
    #[arg(long)]
    pub across_training: bool,
}

impl From<&DataArgs> for DataOptions {
    fn from(o: &DataArgs) -> Self {
        Self {
            format: o.format.clone(),
            split: o.split.clone(),
            normalize: o.normalize.clone(),
            resize: o.resize,
            crop: o.crop,
            channels: o.channels,
            classes: o.classes.clone(),
        }
    }
}

impl AnalyzeArgs {
    /// The library's settings for these options.
    pub fn settings(&self) -> Result<Settings> {
        let source = match (&self.data, &self.input_npy) {
            (Some(path), None) => Source::Data {
                path: path.clone(),
                options: (&self.options).into(),
            },
            (None, Some(npy)) => Source::Tensors(npy.clone()),
            _ => return Err(Error::Usage("give --data or --input-npy".into())),
        };
        Ok(Settings {
            model: self.model.model.clone(),
            arch: self.model.arch.clone(),
            name: match self.name.as_deref().map(str::trim) {
                Some("") => {
                    return Err(Error::Usage(
                        "--name is empty: give the model a name, or leave --name out to name it after its file"
                            .into(),
                    ))
                }
                _ => self.name.clone(),
            },
            source,
            sampling: match self.samples {
                Some(n) => Sampling::Uniform(n),
                None => Sampling::PerClass(self.per_class),
            },
            seed: self.seed,
            blocks: self.blocks.parse().map_err(Error::Usage)?,
            kinds: parse_list(&self.jacobian)?,
            variants: variants(&self.spectrum)?,
            shard: self
                .shard
                .as_deref()
                .map(parse_shard)
                .transpose()
                .map_err(Error::Usage)?,
            threads: self.threads,
            save_eigenvalues: self.save_eigenvalues,
            evaluate: !self.no_eval,
            max_memory: self.max_memory.clone(),
            solver: self.solver.parse()?,
            dense_seconds: match self.dense_seconds {
                s if s.is_finite() && s >= 0.0 => s,
                s => {
                    return Err(Error::Usage(format!(
                        "--dense-seconds {s}: expected a number of seconds, at least 0"
                    )))
                }
            },
        })
    }
}

fn parse_list<T: std::str::FromStr<Err = String>>(s: &str) -> Result<Vec<T>> {
    s.split(',')
        .map(|p| p.trim().parse::<T>().map_err(Error::Usage))
        .collect()
}

fn variants(s: &str) -> Result<Vec<SpectrumVariant>> {
    match s {
        "exact" => Ok(vec![SpectrumVariant::Exact]),
        "paper-compat" => Ok(vec![SpectrumVariant::PaperCompat]),
        "both" => Ok(vec![SpectrumVariant::Exact, SpectrumVariant::PaperCompat]),
        other => Err(Error::Usage(format!(
            "--spectrum {other:?}: expected exact, paper-compat or both"
        ))),
    }
}

impl TrainArgs {
    /// The trainer's configuration for these options.
    pub fn config(self) -> Result<TrainConfig> {
        Ok(TrainConfig {
            arch: self.arch,
            data: self.data,
            out: self.out,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            schedule: self.schedule.parse()?,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            warmup_epochs: self.warmup_epochs,
            augment: self.augment.parse()?,
            seed: self.seed,
            resume: self.resume,
            checkpoint_every: self.checkpoint_every,
            save_minutes: self.save_minutes,
            eval_data: self.eval_data,
            limit: self.limit,
            in_channels: self.in_channels,
            threads: self.threads,
            classes: self.classes,
        })
    }
}
