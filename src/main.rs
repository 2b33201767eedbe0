//! `resnet-stiffness`: a thin command line over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use candle_core::DType;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use resnet_stiffness::error::{Error, Result};
use resnet_stiffness::eval;
use resnet_stiffness::model::{self, JacobianKind, LoadedModel};
use resnet_stiffness::run::{self, sampling, BlockFilter, Inputs, Job};
use resnet_stiffness::train::TrainConfig;
use stiffness_data::{Dataset, Format, Normalize, Split, Transform};
use stiffness_report::record::{Manifest, SpectrumVariant};

#[derive(Parser)]
#[command(name = "resnet-stiffness", version, about = "Block-level stiffness analysis of residual networks", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
struct TrainArgs {
    /// Architecture: resnet18/34/50/101/152 (torchvision) or resnet20/32/44/56/110 (CIFAR).
    #[arg(long)]
    arch: String,
    /// Training data (its train split when a folder holds both).
    #[arg(long)]
    data: PathBuf,
    /// Output folder for checkpoints and the training state.
    #[arg(long)]
    out: PathBuf,
    /// Passes over the training images.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Images per SGD step (the last incomplete batch of an epoch is skipped).
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f64,
    /// cosine or step (x0.1 at epochs E/2 and 3E/4).
    #[arg(long, default_value_t = TrainConfig::default().schedule.to_string())]
    schedule: String,
    /// L2 weight decay, on every parameter (PyTorch's SGD weight_decay).
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    weight_decay: f64,
    /// Nesterov momentum (momentum is 0.9).
    #[arg(long)]
    nesterov: bool,
    /// Linear warm-up epochs.
    #[arg(long, default_value_t = TrainConfig::default().warmup_epochs)]
    warmup_epochs: usize,
    /// crop-flip (random crop with padding, horizontal flip) or none.
    #[arg(long, default_value_t = TrainConfig::default().augment.to_string())]
    augment: String,
    /// Seed of the initialisation, the data order and the augmentation.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Continue the run in --out (bit-for-bit on the same seed).
    #[arg(long)]
    resume: bool,
    /// Write a checkpoint every N epochs (and after the last).
    #[arg(long, default_value_t = TrainConfig::default().checkpoint_every)]
    checkpoint_every: usize,
    /// Also save part-way through an epoch every M minutes (0: after every
    /// step), so that an interrupted run loses at most M minutes.
    #[arg(long, default_value_t = TrainConfig::default().save_minutes)]
    save_minutes: f64,
    /// Held-out data (default: the test split of --data).
    #[arg(long)]
    eval_data: Option<PathBuf>,
    /// Use only N images, spread evenly over the training and over the held-out data.
    #[arg(long)]
    limit: Option<usize>,
    /// Input channels (default: from the data; 3 with greyscale data replicates it).
    #[arg(long)]
    in_channels: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct ExportArgs {
    /// A training run's --out folder.
    #[arg(long)]
    run: PathBuf,
    /// Folder for model.safetensors and training.json.
    #[arg(long)]
    out: PathBuf,
    /// f16 (half the size) or f32.
    #[arg(long, default_value = "f16")]
    dtype: String,
    /// Held-out data to score the file on (default: the run's).
    #[arg(long)]
    eval_data: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Largest block size n = C*H*W to time.
    #[arg(long, default_value_t = 16384)]
    max_n: usize,
    /// Largest n for which the unreduced dense solve is also timed.
    #[arg(long, default_value_t = 4096)]
    max_dense: usize,
    /// Also time evaluation throughput of ResNet20 and ResNet18 at 32x32.
    #[arg(long)]
    eval: bool,
    /// Also time training throughput (SGD steps, batch 128) of ResNet18, 34 and 50 at 32x32.
    #[arg(long)]
    train: bool,
}

#[derive(Args)]
struct ModelArgs {
    /// Checkpoint: .safetensors, PyTorch .pt/.pth (zip) or legacy .th.
    #[arg(long)]
    model: PathBuf,
    /// Override the inferred architecture (resnet18..152, resnet20/32/44/56/110, resnetD with D = 6n+2).
    #[arg(long)]
    arch: Option<String>,
}

#[derive(Args, Clone)]
struct DataOptions {
    /// Data format (auto-detected by default).
    #[arg(long, default_value = "auto")]
    format: String,
    /// Which split of a folder that holds both.
    #[arg(long, default_value = "test")]
    split: String,
    /// Normalisation: imagenet, cifar10, none, or M1,M2,M3:S1,S2,S3.
    #[arg(long, default_value = "none")]
    normalize: String,
    /// ImageFolder: resize the shorter side to this many pixels (bilinear, antialiased).
    #[arg(long)]
    resize: Option<usize>,
    /// ImageFolder: centre-crop to SIZE x SIZE.
    #[arg(long)]
    crop: Option<usize>,
    /// Replicate a greyscale channel to this many channels.
    #[arg(long)]
    channels: Option<usize>,
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Input size H or HxW (default: 224 for torchvision models, 32 for CIFAR models).
    #[arg(long)]
    input_size: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Data set: CIFAR bin/pickle folder or file, ImageFolder, IDX images, or images.npy (+ labels.npy).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    options: DataOptions,
    /// Evaluate only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AnalyzeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled data set (see `eval`); or use --input-npy.
    #[arg(long, required_unless_present = "input_npy")]
    data: Option<PathBuf>,
    /// Analyse the input tensors of this .npy (N, C, H, W) instead of a data set.
    #[arg(long, conflicts_with = "data")]
    input_npy: Option<PathBuf>,
    #[command(flatten)]
    options: DataOptions,
    /// Samples per class (stratified, seeded).
    #[arg(long, default_value_t = 1)]
    per_class: usize,
    /// Instead of --per-class: N samples drawn uniformly (seeded).
    #[arg(long)]
    samples: Option<usize>,
    /// Seed of the sample drawn by --per-class or --samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// all, square, or NAME,NAME,...
    #[arg(long, default_value = "all")]
    blocks: String,
    /// Comma-separated Jacobian kinds: block, residual.
    #[arg(long, default_value = "block,residual")]
    jacobian: String,
    /// exact (flattened Jacobian), paper-compat (the paper's slice spectrum), or both.
    #[arg(long, default_value = "exact")]
    spectrum: String,
    /// Output directory.
    #[arg(long, default_value = "out/analysis")]
    out: PathBuf,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    resume: bool,
    /// Analyse shard I of N (0 <= I < N) of the samples.
    #[arg(long)]
    shard: Option<String>,
    /// Worker threads (samples in parallel).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also write every spectrum as complex128 .npy.
    #[arg(long)]
    save_eigenvalues: bool,
    /// Skip the evaluation of the whole data set (eval.json).
    #[arg(long)]
    no_eval: bool,
    /// With --input-npy: print the records to stdout as JSON lines.
    #[arg(long)]
    json: bool,
    /// Memory the run may use, e.g. 12G or 512M (default: what the machine
    /// has available). The run is refused before it starts when a record
    /// could need more (an upper bound from the block shapes).
    #[arg(long)]
    max_memory: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    /// Where the analysis records and the report go.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// Samples per class to analyse.
    #[arg(long, default_value_t = 2)]
    per_class: usize,
    /// Blocks to analyse: all, square, or names such as layer4.1.
    #[arg(long, default_value = "all")]
    blocks: String,
}

#[derive(Args)]
struct MergeArgs {
    /// Output directory for the merged records.
    #[arg(long)]
    out: PathBuf,
    /// Shard output directories.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
}

#[derive(Args)]
struct ReportArgs {
    /// Record directories (one per model, or shards).
    #[arg(long, required = true, num_args = 1..)]
    records: Vec<PathBuf>,
    #[arg(long, default_value = "out/report")]
    out: PathBuf,
    /// Comma-separated: md, html.
    #[arg(long, default_value = "md,html")]
    format: String,
    /// The record directories are the checkpoints of one training run, in
    /// training order (e.g. analyses of epoch-001 ... epoch-020 of a `train`
    /// run, same data and --seed): add per-block trends across training
    /// (Spearman rho against the checkpoint's position) and their figures.
    #[arg(long)]
    across_training: bool,
}

/// Let a closed stdout (`resnet-stiffness inspect ... | head`) end the
/// process quietly, as it does for other Unix tools, instead of making
/// `println!` panic: restore SIGPIPE's default action, which Rust's runtime
/// sets to "ignore".
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: `signal` is the C library's; resetting SIGPIPE to its
        // default action at start-up, before any thread exists, is sound.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    // With no arguments the tool runs its main job on the built-in default.
    let args: Vec<String> = std::env::args().collect();
    let cli = if args.len() == 1 {
        Cli::parse_from([args[0].as_str(), "demo"])
    } else {
        Cli::parse()
    };
    let result = match cli.command {
        Command::Demo(a) => demo(a),
        Command::Inspect(a) => inspect(a),
        Command::Eval(a) => eval_cmd(a),
        Command::Analyze(a) => analyze(a),
        Command::Merge(a) => merge(a),
        Command::Report(a) => report(a),
        Command::Bench(a) => bench(a),
        Command::Train(a) => train(a),
        Command::Export(a) => export(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn load(args: &ModelArgs, dtype: DType) -> Result<LoadedModel> {
    model::load(&args.model, args.arch.as_deref(), dtype)
}

fn open_data(path: &Path, o: &DataOptions) -> Result<Dataset> {
    let format: Format = o.format.parse()?;
    let split: Split = o.split.parse()?;
    let transform = Transform {
        resize: o.resize,
        center_crop: o.crop.map(|c| (c, c)),
        channels: o.channels,
        normalize: o.normalize.parse::<Normalize>()?,
    };
    Ok(Dataset::open_split(path, format, split, transform)?)
}

fn inspect(a: InspectArgs) -> Result<()> {
    let loaded = load(&a.model, DType::F32)?;
    let net = &loaded.model;
    let default = if net.spec.family == model::Family::Torchvision {
        224
    } else {
        32
    };
    let (h, w) = parse_size(a.input_size.as_deref(), default)?;
    let blocks = net.block_shapes([net.spec.in_channels, h, w])?;
    if a.json {
        let out = serde_json::json!({
            "model": loaded.path, "format": loaded.format.description(), "arch": net.spec.name(),
            "spec": net.spec, "parameters": net.parameter_count(), "input": [net.spec.in_channels, h, w],
            "blocks": blocks,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    println!("{}: {}", loaded.path.display(), loaded.format.description());
    println!("architecture: {}", net.spec);
    println!("parameters: {}", net.parameter_count());
    println!("input: {}x{}x{}", net.spec.in_channels, h, w);
    println!(
        "{:<10} {:>14} {:>14} {:>8} {:>7}",
        "block", "input", "output", "n", "square"
    );
    for b in blocks {
        let fmt = |s: [usize; 3]| format!("{}x{}x{}", s[0], s[1], s[2]);
        println!(
            "{:<10} {:>14} {:>14} {:>8} {:>7}",
            b.name,
            fmt(b.input),
            fmt(b.output),
            b.n,
            if b.square { "yes" } else { "no" }
        );
    }
    Ok(())
}

fn parse_size(s: Option<&str>, default: usize) -> Result<(usize, usize)> {
    let Some(s) = s else {
        return Ok((default, default));
    };
    let bad = || {
        Error::Usage(format!(
            "--input-size {s:?}: expected H or HxW, e.g. 32 or 224x224"
        ))
    };
    let parts: Vec<usize> = s
        .split('x')
        .map(|p| p.trim().parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    match parts[..] {
        [n] if n > 0 => Ok((n, n)),
        [h, w] if h > 0 && w > 0 => Ok((h, w)),
        _ => Err(bad()),
    }
}

/// How often a long job logs a status line when its progress bar is hidden
/// (stderr is not a terminal, e.g. redirected to a log file).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Status lines for a hidden progress bar, at most one per [`LOG_EVERY`].
struct StatusLog {
    last: std::sync::Mutex<std::time::Instant>,
}

impl StatusLog {
    fn new() -> Self {
        let last = std::sync::Mutex::new(std::time::Instant::now());
        Self { last }
    }

    /// Print `line()` on stderr when `bar` is hidden and a line is due.
    fn maybe(&self, bar: &ProgressBar, line: impl FnOnce() -> String) {
        if !bar.is_hidden() {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = std::time::Instant::now();
            eprintln!("{}", line());
        }
    }
}

fn bar(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// A line above the progress bar, or on stderr when the bar is hidden (not a terminal).
fn say(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.println(line);
    }
}

fn eval_cmd(a: EvalArgs) -> Result<()> {
    let net = load(&a.model, DType::F32)?.model;
    let data = open_data(&a.data, &a.options)?;
    eval::check_fit(&net, &data, &a.data.display().to_string())?;
    if a.limit == Some(0) {
        return Err(Error::Usage(
            "--limit 0: nothing to evaluate; give at least 1".into(),
        ));
    }
    let n = a.limit.unwrap_or(data.len()).min(data.len());
    let indices: Vec<usize> = (0..n).collect();
    let pb = bar(n, "eval");
    let outcomes = eval::evaluate(&net, &data, &indices, &|done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    let summary = eval::summarize(&outcomes, data.class_names());
    if a.json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
        return Ok(());
    }
    println!(
        "images: {}  top-1 accuracy: {:.2}%  mean loss: {:.4}",
        summary.count,
        100.0 * summary.accuracy,
        summary.loss
    );
    println!(
        "{:>5} {:<16} {:>7} {:>9} {:>8}",
        "label", "class", "count", "accuracy", "loss"
    );
    for c in &summary.per_class {
        println!(
            "{:>5} {:<16} {:>7} {:>8.2}% {:>8.4}",
            c.label,
            c.name,
            c.count,
            100.0 * c.accuracy,
            c.loss
        );
    }
    Ok(())
}

/// The CLI's progress bar for the analysis job, with status lines when it is hidden.
struct JobBar {
    bar: ProgressBar,
    log: StatusLog,
}

impl run::Progress for JobBar {
    fn start(&self, total: usize, skipped: usize) {
        self.bar.set_length(total as u64);
        if skipped > 0 {
            say(
                &self.bar,
                format!("resuming: {skipped} (sample, block) units already done"),
            );
        }
    }

    fn unit_done(&self, block: &str, seconds: f64) {
        let status = format!("last: {block} {seconds:.1}s");
        self.bar.inc(1);
        self.log.maybe(&self.bar, || {
            format!(
                "{}/{} units, {status}, ETA {} s",
                self.bar.position(),
                self.bar.length().unwrap_or(0),
                self.bar.eta().as_secs()
            )
        });
        self.bar.set_message(status);
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

fn analyze(a: AnalyzeArgs) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.max(1))
        .build_global()
        .ok();
    let loaded = load(&a.model, DType::F32)?;
    let net64 = load(&a.model, DType::F64)?.model;
    let net = &loaded.model;
    let kinds: Vec<JacobianKind> = parse_list(&a.jacobian)?;
    let variants = variants(&a.spectrum)?;
    let shard = a
        .shard
        .as_deref()
        .map(run::parse_shard)
        .transpose()
        .map_err(Error::Usage)?;
    let filter: BlockFilter = a.blocks.parse().map_err(Error::Usage)?;
    let dataset = match (&a.data, &a.input_npy) {
        (Some(path), None) => Some(open_data(path, &a.options)?),
        _ => None,
    };
    let (inputs, input_shape, data_path, class_names) = match (&dataset, &a.input_npy) {
        (Some(data), _) => {
            let path = a.data.clone().unwrap_or_default();
            let shape = eval::check_fit(net, data, &path.display().to_string())?;
            let labels = data.labels();
            let chosen = match a.samples {
                Some(n) => sampling::uniform(labels.len(), n, a.seed),
                None => sampling::stratified(&labels, a.per_class, a.seed),
            };
            let indices = sampling::shard(&chosen, shard);
            (
                Inputs::Data { data, indices },
                shape,
                path,
                data.class_names().to_vec(),
            )
        }
        (None, Some(npy)) => {
            let t = run::read_input_tensors(npy)?;
            let (_, c, h, w) = t.dims4()?;
            (Inputs::Tensors(t), [c, h, w], npy.clone(), Vec::new())
        }
        (None, None) => return Err(Error::Usage("give --data or --input-npy".into())),
    };
    let blocks = run::select_blocks(net, input_shape, &filter)?;
    let manifest = Manifest {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        model_path: a.model.model.display().to_string(),
        model_sha256: run::sha256_file(&a.model.model)?,
        arch: net.spec.name(),
        data_path: data_path.display().to_string(),
        data_format: if dataset.is_some() {
            a.options.format.clone()
        } else {
            "npy-tensors".into()
        },
        normalize: a.options.normalize.clone(),
        input_shape,
        class_names: class_names.clone(),
        per_class: a.samples.is_none().then_some(a.per_class),
        samples: a.samples,
        seed: a.seed,
        blocks: blocks.iter().map(|&b| net.blocks[b].name.clone()).collect(),
        kinds: kinds.clone(),
        spectrum: variants[0],
        tolerance: "1e-6 * max(1, rho)".into(),
        shard,
        created: run::now_rfc3339(),
        extra: [
            ("spectra", serde_json::json!(variants)),
            ("split", serde_json::json!(a.options.split)),
            ("resize", serde_json::json!(a.options.resize)),
            ("crop", serde_json::json!(a.options.crop)),
            ("channels", serde_json::json!(a.options.channels)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    };
    let job = Job {
        model: net,
        model64: &net64,
        manifest,
        blocks,
        kinds,
        variants,
        save_eigenvalues: a.save_eigenvalues,
        class_names,
        budget: run::memory::Budget::new(a.max_memory.as_deref())?,
    };
    let prepared = job.prepare(&inputs)?;
    if let (Some(data), false) = (&dataset, a.no_eval || shard.is_some_and(|s| s.index != 0)) {
        write_eval_once(&a.out, net, data)?;
    }
    let pb = bar(0, "analyze");
    let written = job.run(
        &a.out,
        &inputs,
        &prepared,
        a.resume,
        &JobBar {
            bar: pb.clone(),
            log: StatusLog::new(),
        },
    )?;
    pb.finish_and_clear();
    if a.json && a.input_npy.is_some() {
        for r in stiffness_report::record::read_records(&a.out)? {
            println!("{}", r.to_json_line());
        }
    } else {
        eprintln!("{written} new records in {}", a.out.display());
    }
    Ok(())
}

/// Evaluate the whole data set into `dir/eval.json` unless it is already there.
fn write_eval_once(dir: &Path, net: &model::ResNet, data: &Dataset) -> Result<()> {
    if dir.join(stiffness_report::record::EVAL_JSON).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let indices: Vec<usize> = (0..data.len()).collect();
    let pb = bar(indices.len(), "eval");
    let outcomes = eval::evaluate(net, data, &indices, &|done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    run::write_eval(dir, &eval::summarize(&outcomes, data.class_names()))
}

/// The bundled default: a torchvision ResNet18 trained by this tool on
/// Fashion-MNIST, and 100 test images per class (see assets/).
const DEFAULT_MODEL: &str = "assets/fashion-mnist-resnet18/model.safetensors";
const DEFAULT_DATA: &str = "assets/fashion-mnist-sample/t10k-images-idx3-ubyte.gz";

fn demo(a: DemoArgs) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join(DEFAULT_MODEL);
    let data = root.join(DEFAULT_DATA);
    for path in [&model, &data] {
        if !path.exists() {
            return Err(Error::Usage(format!(
                "{}: the bundled default is missing; is this a complete checkout?",
                path.display()
            )));
        }
    }
    let records = a.out.join("records");
    eprintln!(
        "resnet-stiffness demo: {} on {}",
        model.display(),
        data.display()
    );
    eprintln!(
        "step 1/3: evaluate; step 2/3: analyse {} images per class, blocks {}, both Jacobian \
         kinds, both spectra; step 3/3: report",
        a.per_class, a.blocks
    );
    analyze(AnalyzeArgs {
        model: ModelArgs { model, arch: None },
        data: Some(data),
        input_npy: None,
        options: DataOptions {
            format: "auto".into(),
            split: "test".into(),
            normalize: "none".into(),
            resize: None,
            crop: None,
            channels: None,
        },
        per_class: a.per_class,
        samples: None,
        seed: 0,
        blocks: a.blocks,
        jacobian: "block,residual".into(),
        spectrum: "both".into(),
        out: records.clone(),
        // A second run continues (or, when finished, simply re-reports) the first.
        resume: true,
        shard: None,
        threads: 2,
        save_eigenvalues: true,
        no_eval: false,
        json: false,
        max_memory: None,
    })?;
    let report_dir = a.out.join("report");
    report(ReportArgs {
        records: vec![records],
        out: report_dir.clone(),
        format: "md,html".into(),
        across_training: false,
    })?;
    println!("report: {}", report_dir.join("report.md").display());
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    use resnet_stiffness::train;
    let config = TrainConfig {
        arch: a.arch,
        data: a.data,
        out: a.out,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        schedule: a.schedule.parse()?,
        weight_decay: a.weight_decay,
        nesterov: a.nesterov,
        warmup_epochs: a.warmup_epochs,
        augment: a.augment.parse()?,
        seed: a.seed,
        resume: a.resume,
        checkpoint_every: a.checkpoint_every,
        save_minutes: a.save_minutes,
        eval_data: a.eval_data,
        limit: a.limit,
        in_channels: a.in_channels,
        threads: a.threads,
    };
    let pb = bar(0, "train");
    let log = StatusLog::new();
    let summary = train::train(&config, &mut |p| {
        let status = format!(
            "epoch {}/{} loss {:.4} acc {:.3} lr {:.4} {:.0} img/s",
            p.epoch, p.epochs, p.loss, p.accuracy, p.lr, p.images_per_sec
        );
        pb.set_length(p.total_steps as u64);
        pb.set_position(p.step as u64);
        log.maybe(&pb, || {
            format!(
                "step {}/{} {status} ETA {:.0} s",
                p.step, p.total_steps, p.eta_secs
            )
        });
        pb.set_message(status);
        if let Some(e) = &p.finished {
            say(&pb, format!(
                "epoch {}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | {:.0} s, {:.0} img/s",
                e.epoch, e.loss, e.train_acc, e.test_loss, e.test_acc, e.seconds, e.images_per_sec
            ));
        }
    })?;
    pb.finish_and_clear();
    println!(
        "final test accuracy {:.4}; model {}",
        summary.final_test_acc,
        summary.model_path.display()
    );
    Ok(())
}

fn export(a: ExportArgs) -> Result<()> {
    use stiffness_checkpoint::safetensors::SaveDType;
    let dtype = match a.dtype.as_str() {
        "f16" => SaveDType::F16,
        "f32" => SaveDType::F32,
        other => {
            return Err(Error::Usage(format!(
                "--dtype {other}: expected f16 or f32"
            )))
        }
    };
    let e = resnet_stiffness::train::export::export(&a.run, &a.out, dtype, a.eval_data.as_deref())?;
    println!(
        "{} epochs; held-out accuracy {:.2}% (run, float32), {:.2}% (file, {}), loss {:.4}",
        e.epochs,
        100.0 * e.run_accuracy,
        100.0 * e.file_accuracy,
        a.dtype,
        e.file_loss
    );
    println!(
        "wrote {} and {}",
        e.model_path.display(),
        e.record_path.display()
    );
    Ok(())
}

fn bench(a: BenchArgs) -> Result<()> {
    if a.eval {
        for arch in ["resnet20", "resnet18"] {
            let rate = resnet_stiffness::bench::eval_throughput(arch, 32, 4)?;
            println!("eval {arch} 32x32: {rate:.0} images/s");
        }
    }
    if a.train {
        for arch in ["resnet18", "resnet34", "resnet50"] {
            let rate = resnet_stiffness::bench::train_throughput(arch, 32, 5)?;
            println!("train {arch} 32x32 batch 128: {rate:.0} images/s");
        }
    }
    println!(
        "{:<11} {:<9} {:>12} {:>6} {:>8} {:>7} {:>10} {:>10} {:>10}",
        "block", "kind", "shape", "n", "active", "solved", "assembly_s", "reduced_s", "dense_s"
    );
    resnet_stiffness::bench::blocks(a.max_n, a.max_dense, &mut |t| {
        let shape = format!("{}x{}x{}", t.shape[0], t.shape[1], t.shape[2]);
        let dense = t.dense_s.map_or("-".to_string(), |d| format!("{d:.3}"));
        println!(
            "{:<11} {:<9} {:>12} {:>6} {:>8} {:>7} {:>10.3} {:>10.3} {:>10}",
            t.block,
            t.kind,
            shape,
            t.n,
            t.n_active,
            t.solved_size,
            t.assembly_s,
            t.reduced_s,
            dense
        );
    })?;
    Ok(())
}

fn merge(a: MergeArgs) -> Result<()> {
    let manifests = a
        .shards
        .iter()
        .map(|d| Ok(stiffness_report::record::read_manifest(d)?))
        .collect::<Result<Vec<Manifest>>>()?;
    for (m, dir) in manifests.iter().zip(&a.shards).skip(1) {
        run::check_compatible(&manifests[0], m, dir)?;
    }
    let mut records = Vec::new();
    for dir in &a.shards {
        records.extend(stiffness_report::record::read_records(dir)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    records.retain(|r| seen.insert(r.key()));
    run::sort_records(&mut records);
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io("cannot create", &a.out, e))?;
    let mut manifest = manifests[0].clone();
    manifest.shard = None;
    run::write_json(
        &a.out.join(stiffness_report::record::MANIFEST_JSON),
        &manifest,
    )?;
    stiffness_report::record::write_records(&a.out, &records)?;
    if let Some(eval) = a
        .shards
        .iter()
        .find_map(|d| stiffness_report::record::read_eval(d).ok().flatten())
    {
        run::write_eval(&a.out, &eval)?;
    }
    eprintln!(
        "merged {} records from {} shards into {}",
        records.len(),
        a.shards.len(),
        a.out.display()
    );
    Ok(())
}

fn report(a: ReportArgs) -> Result<()> {
    let formats = a
        .format
        .split(',')
        .map(|f| match f.trim() {
            "md" => Ok(stiffness_report::Format::Markdown),
            "html" => Ok(stiffness_report::Format::Html),
            other => Err(Error::Usage(format!(
                "--format {other:?}: expected md and/or html"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let options = stiffness_report::ReportOptions {
        formats,
        across_training: a.across_training,
        ..Default::default()
    };
    let summary = stiffness_report::write_report(&a.records, &a.out, &options)?;
    eprintln!(
        "report: {} records, {} models, {} tests ({} significant at q < 0.05) -> {}",
        summary.records,
        summary.models,
        summary.tests,
        summary.significant,
        a.out.display()
    );
    Ok(())
}
