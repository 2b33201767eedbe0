//! Loading one or more record directories into one deduplicated, sorted set.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stiffness_records::{
    read_eval, read_manifest, read_record_file, EvalSummary, Manifest, Record, RecordKey,
};

/// A model, identified by its hash; `name` is the file stem for display.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelId {
    /// Model file stem.
    pub name: String,
    /// SHA-256 of the model file.
    pub sha256: String,
}

impl ModelId {
    /// The model of a record.
    pub fn of(r: &Record) -> Self {
        Self {
            name: r.model.clone(),
            sha256: r.model_sha256.clone(),
        }
    }

    /// The first 12 hex digits of the hash.
    pub fn short_hash(&self) -> &str {
        &self.sha256[..self.sha256.len().min(12)]
    }
}

/// All records of a report, deduplicated and in a deterministic order, with
/// the manifests and evaluation summaries found next to them.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The record directories, as given.
    pub dirs: Vec<PathBuf>,
    /// Unique records sorted by (model, block depth, block, kind, spectrum,
    /// sample); duplicates removed.
    pub records: Vec<Record>,
    /// For each record, the directory it was read from (for eigenvalue files).
    pub origin: Vec<PathBuf>,
    /// Manifests by directory (directories without one are absent).
    pub manifests: Vec<(PathBuf, Manifest)>,
    /// Evaluation summaries by model hash (first directory wins).
    pub evals: BTreeMap<String, EvalSummary>,
    /// Number of duplicate records removed.
    pub duplicates: usize,
    /// Duplicates whose content differed from the record kept.
    pub conflicting: usize,
    /// Truncated final lines skipped while reading.
    pub skipped_lines: usize,
    /// Records that carry a `failure` (nothing was measured), left out of
    /// `records` and of every statistic: (sample, block, reason).
    pub failed: Vec<(usize, String, String)>,
}

impl Dataset {
    /// Reads every directory in `dirs` and merges them.
    pub fn load(dirs: &[PathBuf]) -> Result<Self> {
        let mut all = Vec::new();
        let mut manifests = Vec::new();
        let mut evals = BTreeMap::new();
        let mut skipped_lines = 0;
        for dir in dirs {
            let file = read_record_file(dir)?;
            skipped_lines += file.skipped_partial_lines;
            let sha = file.records.first().map(|r| r.model_sha256.clone());
            all.extend(file.records.into_iter().map(|r| (r, dir.clone())));
            if dir.join(stiffness_records::MANIFEST_JSON).exists() {
                manifests.push((dir.clone(), read_manifest(dir)?));
            }
            if let (Some(e), Some(sha)) = (read_eval(dir)?, sha) {
                evals.entry(sha).or_insert(e);
            }
        }
        if all.is_empty() {
            return Err(Error::Invalid("no records in the given directories".into()));
        }
        Ok(Self::merge(
            dirs.to_vec(),
            all,
            manifests,
            evals,
            skipped_lines,
        ))
    }

    fn merge(
        dirs: Vec<PathBuf>,
        mut all: Vec<(Record, PathBuf)>,
        manifests: Vec<(PathBuf, Manifest)>,
        evals: BTreeMap<String, EvalSummary>,
        skipped_lines: usize,
    ) -> Self {
        let mut keyed: Vec<(String, (Record, PathBuf))> = all
            .drain(..)
            .map(|(r, d)| (r.to_json_line(), (r, d)))
            .collect();
        keyed.sort_by(|a, b| order(&a.1 .0, &b.1 .0).then_with(|| a.0.cmp(&b.0)));
        let mut kept: BTreeMap<RecordKey, usize> = BTreeMap::new();
        let (mut records, mut origin): (Vec<Record>, Vec<PathBuf>) = (Vec::new(), Vec::new());
        let (mut duplicates, mut conflicting) = (0, 0);
        let (computed, failures): (Vec<_>, Vec<_>) = keyed
            .into_iter()
            .partition(|(_, (r, _))| r.failure.is_none());
        for (_, (r, d)) in computed {
            if let Some(&i) = kept.get(&r.key()) {
                duplicates += 1;
                conflicting += usize::from(!same_result(&records[i], &r));
                continue;
            }
            kept.insert(r.key(), records.len());
            records.push(r);
            origin.push(d);
        }
        // A failure counts once per key, and never where a computed record exists.
        let mut failed_keys = std::collections::BTreeSet::new();
        let failed = failures
            .into_iter()
            .filter_map(|(_, (r, _))| {
                let fresh = !kept.contains_key(&r.key()) && failed_keys.insert(r.key());
                let reason = r.failure.filter(|_| fresh)?;
                Some((r.sample, r.block, reason))
            })
            .collect();
        Self {
            dirs,
            records,
            origin,
            manifests,
            evals,
            duplicates,
            conflicting,
            skipped_lines,
            failed,
        }
    }

    /// The models present, sorted.
    pub fn models(&self) -> Vec<ModelId> {
        let mut m: Vec<ModelId> = self.records.iter().map(ModelId::of).collect();
        m.dedup();
        m.sort();
        m.dedup();
        m
    }

    /// The models in the order their directories were given (each model at
    /// its first directory): the training order of a report across
    /// training.
    pub fn models_in_order(&self) -> Vec<ModelId> {
        let mut order: Vec<ModelId> = Vec::new();
        for dir in &self.dirs {
            let here = self.records.iter().zip(&self.origin);
            for (r, _) in here.filter(|(_, o)| *o == dir) {
                let m = ModelId::of(r);
                if !order.contains(&m) {
                    order.push(m);
                }
            }
        }
        order
    }

    /// The manifest describing `model`, if any directory has one.
    pub fn manifest(&self, model: &ModelId) -> Option<&Manifest> {
        self.manifests
            .iter()
            .map(|(_, m)| m)
            .find(|m| m.model_sha256 == model.sha256)
    }

    /// The directory a record was read from.
    pub fn dir_of(&self, index: usize) -> &Path {
        &self.origin[index]
    }
}

/// The deterministic record order: model, block depth, block, kind,
/// spectrum, sample.
fn order(a: &Record, b: &Record) -> std::cmp::Ordering {
    (
        &a.model,
        &a.model_sha256,
        a.block_index,
        &a.block,
        a.kind,
        a.spectrum,
        a.sample,
    )
        .cmp(&(
            &b.model,
            &b.model_sha256,
            b.block_index,
            &b.block,
            b.kind,
            b.spectrum,
            b.sample,
        ))
}

/// Whether two duplicates agree on everything but the timing.
fn same_result(a: &Record, b: &Record) -> bool {
    let mut b = b.clone();
    b.seconds = a.seconds;
    a.to_json_line() == b.to_json_line()
}
