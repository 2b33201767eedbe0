//! The analysis job: probe every chosen sample, linearise every selected
//! block at it, measure each (Jacobian kind, spectrum variant), and append
//! one record per (sample, block, kind, variant) to the record store.
//!
//! The work is a queue of (sample, block) units, sample by sample and,
//! within a sample, the largest blocks first. Every worker thread of the
//! job's pool takes the next unit until none is left, so at most `threads`
//! units are in flight (the memory plan's assumption) and the blocks of a
//! single sample run in parallel too. Parallel work inside a unit (the
//! dense eigen-solve, passed down as a [`Par`] over the whole pool, and the
//! convolutions' GEMMs) is stolen by workers that have no unit left, so
//! the last units of a run use every core. Crash safety is the store's
//! ([`stiffness_records::store`]): one (sample, block) unit per appended,
//! fsynced write, and `resume` computes only the missing records.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use stiffness_records::store::{self, RecordLog};
use stiffness_records::{Manifest, Method, Record, SpectrumVariant};
use stiffness_spectrum::Par;

use crate::analysis::cache::{lock, Shared};
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
    /// The threads the job runs on: one (sample, block) unit each at a
    /// time, and idle ones help the units still running.
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
        let queue = self.queue(&log, samples)?;
        let units = queue.units.len();
        progress.start(units, samples.len() * self.blocks.len() - units);
        let workers = self.pool.current_num_threads();
        let solver = match workers {
            1 => Par::Seq,
            w => Par::rayon(w),
        };
        let gate = Gate::default();
        let failed = AtomicBool::new(false);
        let first_error = Mutex::new(None);
        let written = AtomicUsize::new(0);
        self.pool.broadcast(|_| {
            while let Some(unit) = queue.next().filter(|_| !failed.load(Ordering::Relaxed)) {
                let start = Instant::now();
                let done =
                    self.analyse_unit(dir, &log, inputs, &queue, unit, solver, prepared, &gate);
                match done {
                    Ok(n) => {
                        written.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        lock(&first_error).get_or_insert(e);
                    }
                }
                progress.unit_done(
                    &self.model.blocks[unit.block].name,
                    start.elapsed().as_secs_f64(),
                );
            }
        });
        if let Some(e) = lock(&first_error).take() {
            return Err(e);
        }
        store::write_csv(dir)?;
        Ok(written.into_inner())
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
    /// `samples` samples (as many units in flight as there are worker threads).
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
    /// weights (float32 and float64), shared by the units in flight (one
    /// per worker thread, at most one per (sample, block)).
    fn policy(&self, samples: usize) -> plan::Policy {
        let units = samples.saturating_mul(self.blocks.len()).max(1);
        let parallel = self.pool.current_num_threads().clamp(1, units) as u64;
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
                        ", shared by {p} blocks analysed in parallel (--threads 1 analyses one at \
                         a time)"
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

    /// The units of `samples` with records missing from `log`: sample by
    /// sample, the largest blocks (input size) of each first, so that the
    /// costly ones do not start last.
    fn queue(&self, log: &RecordLog, samples: &[usize]) -> Result<Queue> {
        let shapes = self.model.block_shapes(self.manifest.input_shape)?;
        let mut by_size = self.blocks.clone();
        by_size.sort_by_key(|&b| std::cmp::Reverse(shapes[b].input.iter().product::<usize>()));
        let mut units = Vec::new();
        let mut probes = Vec::new();
        for &sample in samples {
            let blocks: Vec<usize> = by_size
                .iter()
                .copied()
                .filter(|&b| {
                    !self
                        .missing(log, sample, &self.model.blocks[b].name)
                        .is_empty()
                })
                .collect();
            if blocks.is_empty() {
                continue;
            }
            let slot = probes.len();
            probes.push(ProbeSlot::new(sample, blocks.len()));
            units.extend(blocks.into_iter().map(|block| Unit { slot, block }));
        }
        Ok(Queue {
            units,
            probes,
            next: AtomicUsize::new(0),
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

    /// Measure every missing (kind, variant) of one unit and append its
    /// records in one write.
    #[allow(clippy::too_many_arguments)]
    fn analyse_unit(
        &self,
        dir: &Path,
        log: &RecordLog,
        inputs: &Inputs<'_>,
        queue: &Queue,
        unit: &Unit,
        solver: Par,
        prepared: &Prepared,
        gate: &Gate,
    ) -> Result<usize> {
        let slot = &queue.probes[unit.slot];
        let probe = slot
            .probe
            .get_or_make(|| probe(self.model, inputs, slot.sample));
        let written = probe.and_then(|probe| {
            self.measure_unit(dir, log, &probe, unit.block, solver, &prepared.policy, gate)
        });
        slot.release();
        written
    }

    /// Measure the missing records of block `b` at `probe`: alone (through
    /// `gate`) when one of them solves a dense problem larger than
    /// [`EXCLUSIVE_DENSE_BYTES`], else beside the other workers' units (a
    /// sample whose forward pass overflowed gets records with the reason).
    #[allow(clippy::too_many_arguments)]
    fn measure_unit(
        &self,
        dir: &Path,
        log: &RecordLog,
        probe: &Probe,
        b: usize,
        solver: Par,
        policy: &plan::Policy,
        gate: &Gate,
    ) -> Result<usize> {
        let block = &self.model.blocks[b];
        let missing = self.missing(log, probe.outcome.index, &block.name);
        let lin = Linearization::new(block, &self.model64.blocks[b], &probe.block_inputs[b])?;
        let records = match &probe.overflow {
            Some(reason) => missing
                .iter()
                .map(|&(kind, variant)| {
                    let m = Measurement::failed(&lin, reason.clone());
                    self.record(dir, m, &lin, probe, b, kind, variant)
                })
                .collect::<Result<Vec<_>>>()?,
            None => {
                let mut methods = Vec::with_capacity(missing.len());
                for &(kind, variant) in &missing {
                    methods.push(method(&lin, kind, variant, policy)?);
                }
                let measure_all = || {
                    missing
                        .iter()
                        .zip(&methods)
                        .map(|(&(kind, variant), &method)| {
                            let m = measure::measure(&lin, kind, variant, solver, method)?;
                            self.record(dir, m, &lin, probe, b, kind, variant)
                        })
                        .collect::<Result<Vec<_>>>()
                };
                match self.needs_the_machine(&lin, &missing, &methods)? {
                    true => gate.alone(measure_all),
                    false => gate.beside_others(measure_all),
                }?
            }
        };
        log.append(&records)?;
        Ok(records.len())
    }

    /// Whether a dense exact record of `lin` solves a problem larger than
    /// [`EXCLUSIVE_DENSE_BYTES`].
    fn needs_the_machine(
        &self,
        lin: &Linearization<'_>,
        missing: &[(JacobianKind, SpectrumVariant)],
        methods: &[Method],
    ) -> Result<bool> {
        if !lin.is_square() || self.pool.current_num_threads() == 1 {
            return Ok(false);
        }
        for (&(kind, variant), &method) in missing.iter().zip(methods) {
            if variant == SpectrumVariant::Exact && method == Method::Dense {
                let s = Form::of(lin, kind)?.size() as u64;
                if 8 * s * s > EXCLUSIVE_DENSE_BYTES {
                    return Ok(true);
                }
            }
        }
        Ok(false)
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

/// The size of a reduced dense eigenproblem (its f64 matrix, bytes) above
/// which a unit runs alone, every worker helping its solve: two such
/// solves side by side compete for memory bandwidth and cache. Measured on
/// the 2-core machine (BENCHMARKS.md): two ResNet20 stage-1 records
/// (s ~ 7,000, 390 MB) side by side took 195 and 239 s; run alone, the
/// larger took 136 s. ResNet18 stage-1 records (s ~ 1,500, 18 MB) gain
/// from running side by side.
pub const EXCLUSIVE_DENSE_BYTES: u64 = 64 << 20;

/// Admission of units to the workers: most run side by side, one per
/// worker; a unit with a large dense solve runs alone, once the others
/// have finished, and workers without work execute the parallel tasks of
/// its solve meanwhile ([`rayon::yield_now`]). Never blocks a worker in
/// the OS, so every worker stays available to rayon.
#[derive(Default)]
struct Gate {
    /// A unit runs alone, or waits to.
    alone: AtomicBool,
    /// Units running side by side.
    beside: AtomicUsize,
}

impl Gate {
    /// Run `f` beside other units, once no unit runs alone.
    fn beside_others<R>(&self, f: impl FnOnce() -> R) -> R {
        loop {
            self.beside.fetch_add(1, Ordering::SeqCst);
            if !self.alone.load(Ordering::SeqCst) {
                break;
            }
            self.beside.fetch_sub(1, Ordering::SeqCst);
            help_or_wait();
        }
        let _leave = OnDrop(|| {
            self.beside.fetch_sub(1, Ordering::SeqCst);
        });
        f()
    }

    /// Run `f` alone: after the units running beside each other have
    /// finished, and no other unit runs alone.
    fn alone<R>(&self, f: impl FnOnce() -> R) -> R {
        while self
            .alone
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            help_or_wait();
        }
        let _leave = OnDrop(|| self.alone.store(false, Ordering::SeqCst));
        while self.beside.load(Ordering::SeqCst) > 0 {
            help_or_wait();
        }
        f()
    }
}

/// Execute a pending task of the pool (a part of a running solve), or
/// sleep briefly when there is none.
fn help_or_wait() {
    if rayon::yield_now() != Some(rayon::Yield::Executed) {
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Runs its closure when dropped (also on a panic), so the gate's counts
/// never stay set.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// One unit of work: the missing records of one block at one sample.
struct Unit {
    /// The sample's [`ProbeSlot`] in [`Queue::probes`].
    slot: usize,
    block: usize,
}

/// The units of a run, taken in order by the workers.
struct Queue {
    units: Vec<Unit>,
    probes: Vec<ProbeSlot>,
    next: AtomicUsize,
}

impl Queue {
    /// The next unit nobody has taken.
    fn next(&self) -> Option<&Unit> {
        self.units.get(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// One sample's probe, made by the first of its units to run and dropped
/// when the last has finished (a forward pass per sample, for all blocks).
struct ProbeSlot {
    sample: usize,
    probe: Shared<Probe>,
    units_left: AtomicUsize,
}

impl ProbeSlot {
    fn new(sample: usize, units: usize) -> Self {
        Self {
            sample,
            probe: Shared::default(),
            units_left: AtomicUsize::new(units),
        }
    }

    /// One unit of the sample is done; the last one frees the probe.
    fn release(&self) {
        if self.units_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.probe.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units beside each other run at the same time (each of the first pair
    /// waits, up to 10 s, for the other to start), and a unit run alone
    /// never overlaps another (two workers, many rounds of short units).
    #[test]
    fn a_unit_alone_never_overlaps_another() {
        let pool = thread_pool(2).unwrap();
        let gate = Gate::default();
        let (alone, beside) = (AtomicBool::new(false), AtomicUsize::new(0));
        let (violations, overlaps) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let pause = || std::thread::sleep(std::time::Duration::from_micros(300));
        pool.broadcast(|_| {
            gate.beside_others(|| {
                beside.fetch_add(1, Ordering::SeqCst);
                let start = Instant::now();
                while beside.load(Ordering::SeqCst) < 2 && start.elapsed().as_secs() < 10 {
                    std::thread::yield_now();
                }
                if beside.load(Ordering::SeqCst) == 2 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
            });
        });
        beside.store(0, Ordering::SeqCst);
        pool.broadcast(|ctx| {
            for round in 0..60 {
                if (round + ctx.index()) % 4 == 0 {
                    gate.alone(|| {
                        alone.store(true, Ordering::SeqCst);
                        if beside.load(Ordering::SeqCst) > 0 {
                            violations.fetch_add(1, Ordering::SeqCst);
                        }
                        pause();
                        alone.store(false, Ordering::SeqCst);
                    });
                } else {
                    gate.beside_others(|| {
                        beside.fetch_add(1, Ordering::SeqCst);
                        if alone.load(Ordering::SeqCst) {
                            violations.fetch_add(1, Ordering::SeqCst);
                        }
                        pause();
                        beside.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        assert_eq!(violations.into_inner(), 0);
        assert_eq!(
            overlaps.into_inner(),
            2,
            "units beside each other did not overlap"
        );
        assert!(!gate.alone.into_inner() && gate.beside.into_inner() == 0);
    }
}
