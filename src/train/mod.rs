//! Training ResNets (torchvision and CIFAR families) with SGD on the CPU, so
//! that stiffness can be studied along training and a default model can be
//! built offline.
//!
//! One optimizer step on a batch (x, y) of B images:
//! 1. forward in training mode ([`net`]: batch norm with batch statistics),
//!    loss = mean cross-entropy of the logits;
//! 2. gradients by candle's reverse-mode autodiff (`loss.backward()`);
//! 3. the SGD update of [`sgd`] with the learning rate of [`sgd::LrSchedule`];
//! 4. batch-norm running statistics updated from the batch statistics.
//!
//! An epoch visits floor(N / B) batches in a seeded random order (the last
//! N mod B images of that order are skipped, `drop_last=True`), then
//! evaluates on the held-out set with the evaluation-mode
//! [`crate::model::ResNet`] built from the exported state dict, and writes a
//! checkpoint ([`checkpoint`]). Images are used as read (`ToTensor`, values
//! in [0, 1]); no normalisation is applied.

pub mod checkpoint;
pub mod data;
pub mod export;
pub mod net;
pub mod ops;
pub mod rng;
pub mod sgd;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use stiffness_data::{Dataset, Format, Split, Transform};

use crate::error::{Error, Result};
use crate::model::{ArchSpec, ResNet};
use crate::sampling::evenly_spaced;
pub use checkpoint::{PartialEpoch, TrainState};
pub use data::{Augment, Batch, Loader};
pub use net::{BatchStats, Network};
pub use sgd::{LrSchedule, Schedule, Sgd, MOMENTUM};

/// Everything `resnet-stiffness train` is told.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// `--arch`: a preset of [`crate::model::ArchSpec::preset`].
    pub arch: String,
    /// `--data`: the training data (its train split when it is a folder).
    pub data: PathBuf,
    /// `--out`: the folder for checkpoints and the training state.
    pub out: PathBuf,
    /// `--epochs`.
    pub epochs: usize,
    /// `--batch-size`.
    pub batch_size: usize,
    /// `--lr`: the peak learning rate.
    pub lr: f64,
    /// `--schedule`.
    pub schedule: Schedule,
    /// `--weight-decay`.
    pub weight_decay: f64,
    /// `--nesterov`.
    pub nesterov: bool,
    /// `--warmup-epochs`.
    pub warmup_epochs: usize,
    /// `--augment`.
    pub augment: Augment,
    /// `--seed`: initialisation, data order and augmentation.
    pub seed: u64,
    /// `--resume`: continue the run in `out`.
    pub resume: bool,
    /// `--checkpoint-every`: write a checkpoint every N epochs (and after the last).
    pub checkpoint_every: usize,
    /// `--save-minutes`: also save part-way through an epoch when this many
    /// minutes have passed since the last save (0: after every step), so an
    /// interrupted run loses at most that much work.
    #[serde(default = "default_save_minutes")]
    pub save_minutes: f64,
    /// `--eval-data`: held-out data; default the test split of `data`.
    pub eval_data: Option<PathBuf>,
    /// `--limit`: use only N images, spread evenly over the training and
    /// over the held-out data ([`crate::sampling::evenly_spaced`]).
    pub limit: Option<usize>,
    /// `--in-channels`: inferred from the data when absent; 3 with 1-channel
    /// data replicates the channel.
    pub in_channels: Option<usize>,
    /// `--threads`: worker threads (default: all cores).
    pub threads: Option<usize>,
    /// `--classes`: `all`, the first N classes, or a file of class names
    /// (`stiffness_data::Classes`), for the training and held-out data alike.
    #[serde(default = "all_classes")]
    pub classes: String,
}

fn all_classes() -> String {
    "all".into()
}

/// Minutes between mid-epoch saves by default.
pub const DEFAULT_SAVE_MINUTES: f64 = 10.0;

fn default_save_minutes() -> f64 {
    DEFAULT_SAVE_MINUTES
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            arch: "resnet18".into(),
            data: PathBuf::new(),
            out: PathBuf::new(),
            epochs: 30,
            batch_size: 128,
            lr: 0.1,
            schedule: Schedule::Cosine,
            weight_decay: 5e-4,
            nesterov: false,
            warmup_epochs: 0,
            augment: Augment::CropFlip,
            seed: 0,
            resume: false,
            checkpoint_every: 1,
            save_minutes: DEFAULT_SAVE_MINUTES,
            eval_data: None,
            limit: None,
            in_channels: None,
            threads: None,
            classes: all_classes(),
        }
    }
}

impl TrainConfig {
    /// The `train` command line that gives this configuration (with
    /// `--resume` it continues the run in `out`).
    pub fn command_line(&self) -> String {
        let mut cmd = format!(
            "resnet-stiffness train --arch {} --data {} --out {} --epochs {} --batch-size {} \
             --lr {} --schedule {} --warmup-epochs {} --weight-decay {} --augment {} --seed {}",
            self.arch,
            self.data.display(),
            self.out.display(),
            self.epochs,
            self.batch_size,
            self.lr,
            self.schedule,
            self.warmup_epochs,
            self.weight_decay,
            self.augment,
            self.seed
        );
        let flag = |on: bool, text: &str| {
            if on {
                format!(" {text}")
            } else {
                String::new()
            }
        };
        let opt =
            |v: Option<String>, name: &str| v.map_or(String::new(), |v| format!(" {name} {v}"));
        cmd += &flag(self.nesterov, "--nesterov");
        cmd += &flag(
            self.checkpoint_every != 1,
            &format!("--checkpoint-every {}", self.checkpoint_every),
        );
        cmd += &opt(
            self.eval_data.as_ref().map(|p| p.display().to_string()),
            "--eval-data",
        );
        cmd += &opt(self.limit.map(|n| n.to_string()), "--limit");
        cmd += &opt(self.in_channels.map(|n| n.to_string()), "--in-channels");
        cmd += &opt(self.threads.map(|n| n.to_string()), "--threads");
        cmd += &opt(
            (self.classes != "all").then(|| self.classes.clone()),
            "--classes",
        );
        cmd += &flag(self.resume, "--resume");
        cmd
    }

    /// Check the numbers; errors name the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Usage(m));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad("--batch-size must be at least 2 (batch norm needs two images)".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("--lr {} must be a positive number", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "--weight-decay {} must be 0 or positive",
                self.weight_decay
            ));
        }
        if self.warmup_epochs >= self.epochs && self.warmup_epochs > 0 {
            return bad(format!(
                "--warmup-epochs {} must be below --epochs {}",
                self.warmup_epochs, self.epochs
            ));
        }
        if !(self.save_minutes.is_finite() && self.save_minutes >= 0.0) {
            return bad(format!(
                "--save-minutes {} must be 0 or positive",
                self.save_minutes
            ));
        }
        if self.checkpoint_every == 0 {
            return bad("--checkpoint-every must be at least 1".into());
        }
        if self.threads == Some(0) {
            return bad("--threads must be at least 1".into());
        }
        if self.limit == Some(0) {
            return bad("--limit must be at least 1".into());
        }
        Ok(())
    }
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    /// Training accuracy (augmented images, training-mode batch norm).
    pub train_acc: f64,
    /// Held-out accuracy (evaluation mode).
    pub test_acc: f64,
    /// Held-out mean cross-entropy.
    pub test_loss: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
    /// Training images per second (evaluation excluded).
    pub images_per_sec: f64,
}

/// Reported after every batch, and once more after every epoch's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainProgress {
    /// 0-based epoch.
    pub epoch: usize,
    pub epochs: usize,
    /// Batches done in this epoch.
    pub batch: usize,
    pub batches: usize,
    /// Optimizer steps done in all.
    pub step: usize,
    pub total_steps: usize,
    /// Mean loss and accuracy over this epoch's batches so far.
    pub loss: f64,
    pub accuracy: f64,
    /// Loss of the latest batch.
    pub batch_loss: f64,
    pub lr: f64,
    /// Training images per second in this run so far.
    pub images_per_sec: f64,
    /// Estimated seconds until the last epoch ends (evaluation excluded).
    pub eta_secs: f64,
    /// Set on the call after the epoch's evaluation.
    pub finished: Option<EpochRecord>,
}

/// The result of [`train`].
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub spec: ArchSpec,
    /// Epochs completed (including those of a resumed run).
    pub epochs: usize,
    pub steps: usize,
    pub history: Vec<EpochRecord>,
    /// Held-out accuracy after the last epoch (NaN when no epoch ran).
    pub final_test_acc: f64,
    /// The latest weights (`out/model.safetensors`).
    pub model_path: PathBuf,
    /// Training images per second in this run.
    pub images_per_sec: f64,
}

/// Train as configured: a new run, or with `resume` the run in `config.out`.
pub fn train(
    config: &TrainConfig,
    progress: &mut dyn FnMut(&TrainProgress),
) -> Result<TrainSummary> {
    train_until(config, config.epochs, progress)
}

/// Like [`train`] but stop after epoch `until` (<= `config.epochs`), as if
/// interrupted there; the schedule still spans `config.epochs`.
pub fn train_until(
    config: &TrainConfig,
    until: usize,
    progress: &mut dyn FnMut(&TrainProgress),
) -> Result<TrainSummary> {
    config.validate()?;
    let pool = worker_pool(config.threads)?;
    Run::start(config, pool)?.go(until.min(config.epochs), progress)
}

/// The pool that training runs on: `threads` workers (default: one per
/// core), each flushing subnormals to zero.
pub fn worker_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .start_handler(|_| flush_subnormals_to_zero())
        .build()
        .map_err(|e| Error::Usage(format!("--threads: cannot start the worker threads ({e})")))
}

/// Set the flush-to-zero and denormals-are-zero bits (FTZ, bit 15; DAZ,
/// bit 6) of the calling thread's MXCSR; a no-op off x86-64.
///
/// A saturated softmax gives gradients below f32's smallest normal number
/// (1.2e-38); every FMA that touches such a subnormal takes a slow microcode
/// path. Timed once on a ResNet18 step (batch 128, 32x32): backward 0.9 s with
/// normal numbers, 17 s once subnormals appeared. Flushing them to zero
/// changes values only below 1.2e-38 (PyTorch's `set_flush_denormal(True)`).
fn flush_subnormals_to_zero() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr = 0u32;
        // SAFETY: `stmxcsr`/`ldmxcsr` read and write this thread's SSE control
        // register through a pointer to a live local; no other memory changes.
        unsafe {
            std::arch::asm!("stmxcsr [{0}]", in(reg) &mut csr, options(nostack));
            csr |= 0x8040;
            std::arch::asm!("ldmxcsr [{0}]", in(reg) &csr, options(nostack, readonly));
        }
    }
}

/// The channel conversion that `--in-channels` asks of data with `native`
/// channels: `None` keeps them; only 1-channel data can be replicated.
fn channel_transform(in_channels: Option<usize>, native: usize) -> Result<Option<usize>> {
    match in_channels {
        None => Ok(None),
        Some(c) if c == native => Ok(None),
        Some(c) if native == 1 => Ok(Some(c)),
        Some(c) => Err(Error::Usage(format!(
            "--in-channels {c}: the data has {native} channels; only 1-channel data can be \
             replicated to more channels"
        ))),
    }
}

/// Open a split, as read, then with the channels of `--in-channels` (read
/// from the first image); `what` names its option in the error for a split
/// without images.
fn open_split(config: &TrainConfig, path: &Path, split: Split, what: &str) -> Result<Dataset> {
    let classes = config.classes.parse()?;
    let mut images =
        Dataset::open_classes(path, Format::Auto, split, &classes, Transform::default())?;
    if images.is_empty() {
        return Err(Error::Usage(format!(
            "{what} {}: no images",
            path.display()
        )));
    }
    let channels = channel_transform(config.in_channels, images.get(0)?.shape[0])?;
    if channels.is_some() {
        images.set_transform(Transform {
            channels,
            ..Transform::default()
        });
    }
    Ok(images)
}

/// A run's held-out images: the test split of `--eval-data`, else of
/// `--data`, as the network sees them.
struct HeldOut {
    /// Where they are read from.
    path: PathBuf,
    images: Dataset,
    /// The images used (all, or `--limit` of them).
    ids: Vec<usize>,
    shape: [usize; 3],
}

impl HeldOut {
    /// Mean cross-entropy and accuracy of `model` on these images, by the
    /// one evaluator ([`crate::eval::evaluate`]).
    fn score(&self, model: &ResNet) -> Result<(f64, f64)> {
        let outcomes = crate::eval::evaluate(model, &self.images, &self.ids, &|_| ())?;
        let summary = crate::eval::summarize(&outcomes, &[]);
        Ok((summary.loss, summary.accuracy))
    }

    fn open(config: &TrainConfig) -> Result<Self> {
        let (path, what) = match &config.eval_data {
            Some(p) => (p.as_path(), "--eval-data"),
            None => (config.data.as_path(), "--data"),
        };
        let images = open_split(config, path, Split::Test, what)?;
        let shape = images.get(0)?.shape;
        let ids = evenly_spaced(images.len(), config.limit.unwrap_or(usize::MAX));
        Ok(Self {
            path: path.to_path_buf(),
            images,
            ids,
            shape,
        })
    }
}

/// The training and held-out data and their geometry.
struct Data {
    train: Dataset,
    eval: HeldOut,
    /// The training images used (all, or `--limit` of them).
    train_ids: Vec<usize>,
    shape: [usize; 3],
    classes: usize,
}

impl Data {
    fn open(config: &TrainConfig) -> Result<Self> {
        let train = open_split(config, &config.data, Split::Train, "--data")?;
        let eval = HeldOut::open(config)?;
        let shape = train.get(0)?.shape;
        if eval.shape != shape {
            return Err(Error::Usage(format!(
                "{}: held-out images of shape {:?}, but the training images in {} are {:?}; \
                 pass --eval-data with images shaped like the training set's",
                eval.path.display(),
                eval.shape,
                config.data.display(),
                shape
            )));
        }
        let train_ids = evenly_spaced(train.len(), config.limit.unwrap_or(usize::MAX));
        if train_ids.len() < config.batch_size {
            return Err(Error::Usage(format!(
                "--batch-size {} is larger than the {} training images; lower --batch-size",
                config.batch_size,
                train_ids.len()
            )));
        }
        let classes = train
            .class_names()
            .len()
            .max(eval.images.class_names().len());
        Ok(Self {
            train,
            eval,
            train_ids,
            shape,
            classes,
        })
    }
}

/// A training run in progress.
struct Run<'a> {
    config: &'a TrainConfig,
    data: Data,
    net: Network,
    opt: Sgd,
    schedule: LrSchedule,
    loader: Loader,
    epoch: usize,
    step: usize,
    history: Vec<EpochRecord>,
    /// Where a run resumed part-way through an epoch continues.
    partial: Option<PartialEpoch>,
    pool: rayon::ThreadPool,
}

impl<'a> Run<'a> {
    fn start(config: &'a TrainConfig, pool: rayon::ThreadPool) -> Result<Self> {
        let data = Data::open(config)?;
        let spec = ArchSpec::preset(&config.arch, data.shape[0], data.classes)?;
        let schedule = LrSchedule {
            base: config.lr,
            schedule: config.schedule,
            epochs: config.epochs,
            warmup_epochs: config.warmup_epochs,
            steps_per_epoch: data.train_ids.len() / config.batch_size,
        };
        let loader = Loader {
            shape: data.shape,
            augment: config.augment,
            seed: config.seed,
        };
        let mut run = Run {
            config,
            net: Network::init(spec, config.seed)?,
            opt: Sgd::new(MOMENTUM, config.nesterov, config.weight_decay),
            data,
            schedule,
            loader,
            epoch: 0,
            step: 0,
            history: Vec::new(),
            partial: None,
            pool,
        };
        run.prepare_out()?;
        Ok(run)
    }

    /// Create the output folder, or with `--resume` load its state. A
    /// `--resume` in a folder without a training state starts a new run (as
    /// `analyze --resume` does), so a script or a requeued job can always
    /// pass it.
    fn prepare_out(&mut self) -> Result<()> {
        let out = &self.config.out;
        std::fs::create_dir_all(out).map_err(|e| Error::io("--out: cannot create", out, e))?;
        let has_state = checkpoint::path_in(out, checkpoint::STATE_FILE).exists();
        if has_state && !self.config.resume {
            return Err(Error::Usage(format!(
                "--out {} already holds a training run; pass --resume to continue it or choose \
                 another --out",
                out.display()
            )));
        }
        if !has_state {
            return Ok(());
        }
        let state = checkpoint::load_state(out)?;
        check_resumable(&state.config, self.config)?;
        let (weights, buffers) = checkpoint::load_tensors(out, &state)?;
        self.net = Network::from_weights(self.net.spec().clone(), &weights)?;
        self.opt.buffers = buffers;
        (self.epoch, self.step, self.history) = (state.epoch, state.step, state.history);
        self.partial = state.partial;
        Ok(())
    }

    fn go(
        mut self,
        until: usize,
        progress: &mut dyn FnMut(&TrainProgress),
    ) -> Result<TrainSummary> {
        let clock = Clock::new(self.step, self.schedule.steps_per_epoch * until);
        while self.epoch < until {
            self.epoch_pass(&clock, progress)?;
        }
        Ok(TrainSummary {
            spec: self.net.spec().clone(),
            epochs: self.epoch,
            steps: self.step,
            final_test_acc: self.history.last().map_or(f64::NAN, |h| h.test_acc),
            history: self.history,
            model_path: checkpoint::path_in(&self.config.out, checkpoint::MODEL_FILE),
            images_per_sec: clock.images_per_sec(self.step, self.config.batch_size),
        })
    }

    /// One epoch (or the rest of a resumed one): the batches, with a
    /// mid-epoch save every `--save-minutes`, the evaluation, the checkpoint.
    fn epoch_pass(
        &mut self,
        clock: &Clock,
        progress: &mut dyn FnMut(&TrainProgress),
    ) -> Result<()> {
        let started = Instant::now();
        let order = rng::permutation(self.config.seed, self.epoch, self.data.train_ids.len());
        let batches = self.schedule.steps_per_epoch;
        let b = self.config.batch_size;
        let mut done = self.partial.take().unwrap_or_default();
        let save_every = Duration::from_secs_f64(60.0 * self.config.save_minutes);
        let mut last_save = Instant::now();
        let mut report = self.report(clock, batches);
        for i in done.batches..batches {
            let lr = self.schedule.lr(self.step);
            let (loader, data, epoch) = (&self.loader, &self.data, self.epoch);
            let (net, opt) = (&mut self.net, &mut self.opt);
            let (loss, hits) = self.pool.install(|| {
                let ids: Vec<usize> = order[i * b..(i + 1) * b]
                    .iter()
                    .map(|&k| data.train_ids[k])
                    .collect();
                let batch = loader.batch(&data.train, &ids, Some(epoch))?;
                train_step(net, opt, &batch, data.shape, lr)
            })?;
            self.step += 1;
            done.batches = i + 1;
            done.loss_sum += loss;
            done.correct += hits;
            report.batch = i + 1;
            report.step = self.step;
            report.loss = done.loss_sum / (i + 1) as f64;
            report.accuracy = done.correct as f64 / ((i + 1) * b) as f64;
            report.batch_loss = loss;
            report.lr = lr;
            report.images_per_sec = clock.images_per_sec(self.step, b);
            report.eta_secs = clock.eta(self.step);
            progress(&report);
            if i + 1 < batches && last_save.elapsed() >= save_every {
                let seconds = done.seconds + started.elapsed().as_secs_f64();
                self.save(Some(PartialEpoch { seconds, ..done }))?;
                last_save = Instant::now();
            }
        }
        let train_secs = done.seconds + started.elapsed().as_secs_f64();
        let (net, data) = (&self.net, &self.data);
        let (test_loss, test_acc) = self.pool.install(|| data.eval.score(&net.eval_model()?))?;
        self.epoch += 1;
        let record = EpochRecord {
            epoch: self.epoch,
            loss: done.loss_sum / batches as f64,
            train_acc: done.correct as f64 / (batches * b) as f64,
            test_acc,
            test_loss,
            lr: report.lr,
            seconds: done.seconds + started.elapsed().as_secs_f64(),
            images_per_sec: (batches * b) as f64 / train_secs.max(1e-9),
        };
        self.history.push(record.clone());
        if self.epoch % self.config.checkpoint_every == 0 || self.epoch == self.config.epochs {
            self.save(None)?;
        }
        report.finished = Some(record);
        progress(&report);
        Ok(())
    }

    fn report(&self, clock: &Clock, batches: usize) -> TrainProgress {
        TrainProgress {
            epoch: self.epoch,
            epochs: self.config.epochs,
            batch: 0,
            batches,
            step: self.step,
            total_steps: batches * self.config.epochs,
            loss: 0.0,
            accuracy: 0.0,
            batch_loss: 0.0,
            lr: self.schedule.lr(self.step),
            images_per_sec: clock.images_per_sec(self.step, self.config.batch_size),
            eta_secs: clock.eta(self.step),
            finished: None,
        }
    }

    /// Save the weights, the momentum buffers and the state: after an epoch
    /// (`partial` None) as `epoch-NNN.safetensors`, part-way through one as
    /// `partial-stepNNNNNNN.safetensors` with the epoch's progress.
    fn save(&self, partial: Option<PartialEpoch>) -> Result<()> {
        let weights = match partial {
            None => checkpoint::epoch_file(self.epoch),
            Some(_) => checkpoint::partial_file(self.step),
        };
        let state = TrainState {
            epoch: self.epoch,
            step: self.step,
            weights,
            optimizer: checkpoint::optimizer_file(self.step),
            rng: "counter-based SplitMix64: order = f(seed, epoch), augmentation = f(seed, epoch, index)".into(),
            config: self.config.clone(),
            history: self.history.clone(),
            partial,
        };
        checkpoint::save(&self.config.out, &self.net, &self.opt, &state)
    }
}

/// A resumed run must repeat the settings that shape the trajectory.
fn check_resumable(saved: &TrainConfig, now: &TrainConfig) -> Result<()> {
    let pairs = [
        ("--arch", saved.arch.clone(), now.arch.clone()),
        ("--seed", saved.seed.to_string(), now.seed.to_string()),
        (
            "--batch-size",
            saved.batch_size.to_string(),
            now.batch_size.to_string(),
        ),
        ("--lr", saved.lr.to_string(), now.lr.to_string()),
        (
            "--schedule",
            saved.schedule.to_string(),
            now.schedule.to_string(),
        ),
        (
            "--weight-decay",
            saved.weight_decay.to_string(),
            now.weight_decay.to_string(),
        ),
        (
            "--nesterov",
            saved.nesterov.to_string(),
            now.nesterov.to_string(),
        ),
        (
            "--warmup-epochs",
            saved.warmup_epochs.to_string(),
            now.warmup_epochs.to_string(),
        ),
        (
            "--augment",
            saved.augment.to_string(),
            now.augment.to_string(),
        ),
        (
            "--limit",
            format!("{:?}", saved.limit),
            format!("{:?}", now.limit),
        ),
    ];
    for (option, was, is) in pairs {
        if was != is {
            return Err(Error::Usage(format!(
                "--resume: {option} was {was} in the saved run but is {is} now; repeat the original \
                 options (see {} in --out)",
                checkpoint::STATE_FILE
            )));
        }
    }
    Ok(())
}

/// Steps per second of this run, for images/s and the ETA.
struct Clock {
    started: Instant,
    first_step: usize,
    last_step: usize,
}

impl Clock {
    fn new(first_step: usize, last_step: usize) -> Self {
        Self {
            started: Instant::now(),
            first_step,
            last_step,
        }
    }

    fn images_per_sec(&self, step: usize, batch: usize) -> f64 {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        (step.saturating_sub(self.first_step) * batch) as f64 / secs
    }

    fn eta(&self, step: usize) -> f64 {
        let done = step.saturating_sub(self.first_step);
        if done == 0 {
            return f64::NAN;
        }
        let per_step = self.started.elapsed().as_secs_f64() / done as f64;
        per_step * self.last_step.saturating_sub(step) as f64
    }
}

/// One SGD step on `batch` (module docs); returns the batch's mean loss and
/// the number of correctly classified images.
pub fn train_step(
    net: &mut Network,
    opt: &mut Sgd,
    batch: &Batch,
    shape: [usize; 3],
    lr: f64,
) -> Result<(f64, usize)> {
    let (x, y) = batch_tensors(batch, shape)?;
    let (logits, stats) = net.forward_train(&x)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
    let grads = loss.backward()?;
    opt.step(net.parameters(), &grads, lr)?;
    net.update_running(&stats)?;
    Ok((f64::from(loss.to_scalar::<f32>()?), hits(&logits, &y)?))
}

/// A batch as tensors: images (B, C, H, W) and labels (B) as u32.
pub fn batch_tensors(batch: &Batch, [c, h, w]: [usize; 3]) -> Result<(Tensor, Tensor)> {
    let n = batch.labels.len();
    let x = Tensor::from_slice(&batch.images, (n, c, h, w), &Device::Cpu)?;
    let y = Tensor::from_slice(&batch.labels, n, &Device::Cpu)?;
    Ok((x, y))
}

fn hits(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(1)?.to_dtype(candle_core::DType::U32)?;
    Ok(pred
        .eq(labels)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()? as usize)
}
