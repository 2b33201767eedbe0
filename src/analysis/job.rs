//! The analysis job: probe every chosen sample, linearise every selected
//! block at it, measure each (Jacobian kind, spectrum variant), and append
//! one record per (sample, block, kind, variant) to the record store.
//!
//! Samples run in parallel on the job's own thread pool; cores that the
//! samples cannot occupy (fewer samples left than threads) go into each
//! dense eigen-solve, passed down as a [`Par`]. Crash safety is the store's
//! ([`stiffness_records::store`]): one (sample, block) unit per appended,
//! fsynced write, and `resume` computes only the missing records.

use std::path::Path;

use rayon::prelude::*;
use stiffness_records::store::{self, RecordLog};
use stiffness_records::{Manifest, Method, Record, SpectrumVariant};
use stiffness_spectrum::Par;

use crate::analysis::inputs::Inputs;
use crate::analysis::linearize::Linearization;
use crate::analysis::measure::{self, Measurement};
use crate::analysis::probe::{probe, Probe};
use crate::analysis::reduce::Form;
use crate::analysis::{memory, plan};
use crate::error::{Error, Result};
use crate::model::{JacobianKind, ResNet};

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
    /// `--solver`: dense, matrix-free, or chosen per record.
    pub solver: plan::Solver,
    /// `--dense-seconds`: the longest estimated dense solve `auto` accepts.
    pub dense_seconds: f64,
    /// The threads the job runs on: samples in parallel, and the solver
    /// threads of the last samples.
    pub pool: rayon::ThreadPool,
}

/// Progress reports from the job (implemented by the CLI's progress bar).
pub trait Progress: Sync {
    /// `total` units (sample x block) will run, `skipped` were already done.
    fn start(&self, total: usize, skipped: usize);
    /// One unit finished.
    fn unit_done(&self, block: &str, seconds: f64);
    /// `done` of the `total` images of the whole-data-set evaluation are done.
    fn evaluated(&self, _done: usize, _total: usize) {}
}

/// A progress sink that reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: usize, _: usize) {}
    fn unit_done(&self, _: &str, _: f64) {}
}

/// The samples of a run that passed [`Job::prepare`]'s checks; only
/// `prepare` makes one, so [`Job::run`] cannot start unchecked.
pub struct Prepared {
    samples: Vec<usize>,
    policy: plan::Policy,
}

/// A thread pool of `threads` workers (at least one) for [`Job::pool`].
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::Usage(format!("--threads: cannot start the worker threads ({e})")))
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
        store::open_manifest(dir, &self.manifest, resume)?;
        let log = RecordLog::open(dir, resume)?;
        let todo: Vec<usize> = samples
            .iter()
            .copied()
            .filter(|&s| !self.sample_done(&log, s))
            .collect();
        let workers = self.pool.current_num_threads();
        let solver_threads = workers / todo.len().clamp(1, workers);
        let solver = if solver_threads > 1 {
            Par::rayon(solver_threads)
        } else {
            Par::Seq
        };
        progress.start(
            todo.len() * self.blocks.len(),
            (samples.len() - todo.len()) * self.blocks.len(),
        );
        let written = self.pool.install(|| {
            todo.par_iter()
                .map(|&s| {
                    self.analyse_sample(dir, &log, inputs, s, solver, &prepared.policy, progress)
                })
                .collect::<Result<Vec<usize>>>()
        })?;
        store::write_csv(dir)?;
        Ok(written.iter().sum())
    }

    /// The samples to analyse, after every check that needs no output: at
    /// least one sample, every chosen image decodable and finite, square
    /// inputs for the paper-compatible variant, memory within the budget.
    /// Call it before other work (such as the evaluation), then hand its
    /// result to [`Job::run`].
    pub fn prepare(&self, inputs: &Inputs<'_>) -> Result<Prepared> {
        let samples = inputs.sample_ids()?;
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
            self.pool
                .install(|| samples.par_iter().try_for_each(|&i| data.get(i).map(drop)))?;
        }
        self.check_square_for_paper_compat(inputs, &samples)?;
        plan::check(&self.plan(samples.len())?)?;
        let policy = self.policy(samples.len());
        Ok(Prepared { samples, policy })
    }

    /// The plan of the run ([`plan`]): every selected (block, kind,
    /// variant) with its sizes, memory, time estimate and method, for
    /// `samples` samples (as many in flight as there are worker threads).
    pub fn plan(&self, samples: usize) -> Result<Vec<plan::Row>> {
        let shapes = self.model.block_shapes(self.manifest.input_shape)?;
        let blocks: Vec<_> = self
            .blocks
            .iter()
            .map(|&b| (&self.model.blocks[b], shapes[b].input))
            .collect();
        Ok(plan::plan(
            &blocks,
            &self.kinds,
            &self.variants,
            &self.policy(samples),
        ))
    }

    /// How records choose their method: the budget less both copies of the
    /// weights (float32 and float64), shared by the samples in flight.
    fn policy(&self, samples: usize) -> plan::Policy {
        let parallel = self.pool.current_num_threads().clamp(1, samples.max(1)) as u64;
        let weights = 12 * self.model.parameter_count() as u64;
        plan::Policy {
            solver: self.solver,
            record_bytes: self
                .budget
                .map(|b| b.limit.saturating_sub(weights) / parallel),
            limit_source: self.budget.map_or_else(String::new, |b| {
                let at_once = match parallel {
                    1 => String::new(),
                    p => format!(
                        ", shared by {p} samples in parallel (--threads 1 analyses one at a time)"
                    ),
                };
                format!("{} less the weights{at_once}", b.describe())
            }),
            dense_seconds: self.dense_seconds,
        }
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
        let (what, [c, h, w]) = inputs.describe(first)?;
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

    #[allow(clippy::too_many_arguments)]
    fn analyse_sample(
        &self,
        dir: &Path,
        log: &RecordLog,
        inputs: &Inputs<'_>,
        sample: usize,
        solver: Par,
        policy: &plan::Policy,
        progress: &dyn Progress,
    ) -> Result<usize> {
        let probe = probe(self.model, inputs, sample)?;
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
                    .map(|&(kind, variant)| {
                        let m = match &probe.overflow {
                            Some(reason) => Measurement::failed(&lin, reason.clone()),
                            None => {
                                let method = method(&lin, kind, variant, policy)?;
                                measure::measure(&lin, kind, variant, solver, method)?
                            }
                        };
                        self.record(dir, m, &lin, &probe, b, kind, variant)
                    })
                    .collect::<Result<Vec<_>>>()?;
                log.append(&records)?;
                written += records.len();
            }
            progress.unit_done(&block.name, start.elapsed().as_secs_f64());
        }
        Ok(written)
    }

    /// The record of measurement `m`, with the sample's and model's identity
    /// (and its eigenvalue file, when they are saved).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        dir: &Path,
        m: Measurement,
        lin: &Linearization<'_>,
        probe: &Probe,
        block_index: usize,
        kind: JacobianKind,
        spectrum: SpectrumVariant,
    ) -> Result<Record> {
        let o = &probe.outcome;
        let block = self.model.blocks[block_index].name.clone();
        let eigenvalues_file = match (self.save_eigenvalues, &m.eigenvalues) {
            (true, Some(values)) => {
                let pairs: Vec<[f64; 2]> = values.iter().map(|z| [z.re, z.im]).collect();
                Some(store::save_eigenvalues(dir, o.index, &block, kind, &pairs)?)
            }
            _ => None,
        };
        Ok(Record {
            model: self.manifest.model_name(),
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
            block,
            block_index,
            kind,
            spectrum,
            square: lin.is_square(),
            eigenvalues_file,
            ..m.metrics
        })
    }
}

/// The method of one record: paper-compatible records are dense; exact ones
/// follow `policy` at their actual reduced size.
fn method(
    lin: &Linearization<'_>,
    kind: JacobianKind,
    variant: SpectrumVariant,
    policy: &plan::Policy,
) -> Result<Method> {
    if variant == SpectrumVariant::PaperCompat {
        return Ok(Method::Dense);
    }
    let s = match lin.is_square() {
        true => Form::of(lin, kind)?.size() as u64,
        false => 0,
    };
    Ok(policy.method(lin.block, kind, lin.in_shape, s))
}
