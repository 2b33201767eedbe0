//! The record store: every file of a record directory, read and written in
//! one place.
//!
//! - `records.jsonl`: [`RecordLog`] appends complete lines, one (sample,
//!   block) unit per `write` followed by `fsync`; opened with `resume`, it
//!   cuts a partial last line (a kill mid-write) and knows which records are
//!   already there, so an interrupted run resumed any number of times ends
//!   with exactly the same set of records. [`read_records`] reads it (or
//!   `records.csv`), skipping only a truncated final line.
//! - `records.csv`: the same records, sorted by [`sort_records`], rewritten
//!   atomically by [`write_csv`] at the end of a run.
//! - `manifest.json`, `eval.json`: atomic JSON ([`write_manifest`],
//!   [`write_eval`]); a resumed or merged run must match its manifest
//!   ([`check_compatible`]).
//! - `eigenvalues/*.npy`: complex128 spectra ([`save_eigenvalues`],
//!   [`read_eigenvalues`]), through the one `.npy` codec of
//!   `stiffness-checkpoint`.
//! - [`merge`]: the record directories of `analyze --shard I/N` runs, joined.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::schema::{
    EvalSummary, JacobianKind, Manifest, Record, SpectrumVariant, EVAL_JSON, MANIFEST_JSON,
    RECORDS_CSV, RECORDS_JSONL,
};

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    stiffness_fsutil::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    stiffness_fsutil::write_json(path, value).map_err(|e| Error::io(path, e))
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
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
        "euler_amplification",
        "method",
        "applications",
        "restarts",
        "krylov_dim",
        "krylov_tol",
        "converged",
        "max_re_residual",
        "min_re_residual",
        "spectral_radius_residual",
        "euler_residual",
        "soderlind_residual",
        "sigma_max_residual",
        "not_computed",
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

/// The canonical record order: by sample, block depth, kind, spectrum variant.
pub fn sort_records(records: &mut [Record]) {
    records.sort_by_key(|r| (r.sample, r.block_index, r.kind, r.spectrum));
}

/// `records.csv` of `dir`, sorted ([`sort_records`]), from its `records.jsonl`.
pub fn write_csv(dir: &Path) -> Result<()> {
    let mut records = read_records(dir)?;
    sort_records(&mut records);
    let path = dir.join(RECORDS_CSV);
    let csv = records_csv(&records).map_err(|m| Error::parse(&path, None, m))?;
    atomic_write(&path, &csv)
}

/// Write `manifest.json` into `dir`.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    write_json(&dir.join(MANIFEST_JSON), manifest)
}

/// Write `eval.json` into `dir`.
pub fn write_eval(dir: &Path, summary: &EvalSummary) -> Result<()> {
    write_json(&dir.join(EVAL_JSON), summary)
}

/// Write `manifest` into `dir`, or, when resuming a run that has one, check
/// that the two agree ([`check_compatible`]).
pub fn open_manifest(dir: &Path, manifest: &Manifest, resume: bool) -> Result<()> {
    let path = dir.join(MANIFEST_JSON);
    if resume && path.exists() {
        return check_compatible(&read_manifest(dir)?, manifest, &path);
    }
    write_manifest(dir, manifest)
}

/// Refuse to resume or merge runs whose options differ (everything but the
/// creation time, the tool version and the shard must agree).
pub fn check_compatible(old: &Manifest, new: &Manifest, path: &Path) -> Result<()> {
    let strip = |m: &Manifest| {
        let mut m = m.clone();
        m.created = String::new();
        m.tool_version = String::new();
        m.shard = None;
        m
    };
    if strip(old) == strip(new) {
        return Ok(());
    }
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
    Err(Error::Invalid(format!(
        "{}: incompatible run ({}); use the same options, or another --out",
        path.display(),
        diff.join("; ")
    )))
}

/// What [`merge`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// Unique records written.
    pub records: usize,
    /// Directories read.
    pub shards: usize,
}

/// Join the record directories `shards` (compatible manifests, see
/// [`check_compatible`]) into `out`: records deduplicated by key (first
/// wins) and sorted, the first manifest without its shard, and the first
/// `eval.json` found.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<Merged> {
    let manifests = shards
        .iter()
        .map(|d| read_manifest(d))
        .collect::<Result<Vec<Manifest>>>()?;
    let Some(first) = manifests.first() else {
        return Err(Error::Invalid("merge: no record directories given".into()));
    };
    for (m, dir) in manifests.iter().zip(shards).skip(1) {
        check_compatible(first, m, dir)?;
    }
    let mut records = Vec::new();
    for dir in shards {
        records.extend(read_records(dir)?);
    }
    let mut seen = BTreeSet::new();
    records.retain(|r| seen.insert(r.key()));
    sort_records(&mut records);
    create_dir(out)?;
    write_manifest(
        out,
        &Manifest {
            shard: None,
            ..first.clone()
        },
    )?;
    write_records(out, &records)?;
    if let Some(eval) = shards.iter().find_map(|d| read_eval(d).ok().flatten()) {
        write_eval(out, &eval)?;
    }
    Ok(Merged {
        records: records.len(),
        shards: shards.len(),
    })
}

/// The identity of a record within one run (one model): what resuming
/// compares.
type UnitKey = (usize, String, JacobianKind, SpectrumVariant);

/// The `records.jsonl` of a record directory, opened for appending, with the
/// keys already present. Shared between worker threads.
pub struct RecordLog {
    file: Mutex<File>,
    path: PathBuf,
    done: BTreeSet<UnitKey>,
}

impl RecordLog {
    /// Open `dir/records.jsonl`. Without `resume`, existing records are an
    /// error; with it, a partial last line is cut off and the complete
    /// records are remembered ([`RecordLog::has`]).
    pub fn open(dir: &Path, resume: bool) -> Result<Self> {
        let path = dir.join(RECORDS_JSONL);
        let existing = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        if !existing.is_empty() && !resume {
            return Err(Error::Invalid(format!(
                "{} already holds records: pass --resume to continue that run, or choose another --out",
                path.display()
            )));
        }
        // A kill can leave a partial last line: cut it off.
        let complete = existing.rfind('\n').map_or(0, |i| i + 1);
        let done = parse_jsonl(&path, &existing[..complete])?
            .records
            .iter()
            .map(|r| (r.sample, r.block.clone(), r.kind, r.spectrum))
            .collect();
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.set_len(complete as u64)
            .and_then(|()| file.seek(SeekFrom::End(0)).map(drop))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            file: Mutex::new(file),
            path,
            done,
        })
    }

    /// Whether the record of (sample, block, kind, variant) was there when
    /// the log was opened.
    pub fn has(
        &self,
        sample: usize,
        block: &str,
        kind: JacobianKind,
        variant: SpectrumVariant,
    ) -> bool {
        self.done
            .contains(&(sample, block.to_string(), kind, variant))
    }

    /// Append `records` as complete lines in one write, then fsync.
    pub fn append(&self, records: &[Record]) -> Result<()> {
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
            .map_err(|_| Error::Invalid(format!("{}: a writer panicked", self.path.display())))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Where [`save_eigenvalues`] puts a spectrum, relative to the record
/// directory: `eigenvalues/s{sample}_{block}_{kind}.npy`.
pub fn eigenvalues_path(sample: usize, block: &str, kind: JacobianKind) -> PathBuf {
    PathBuf::from("eigenvalues").join(format!("s{sample}_{block}_{kind}.npy"))
}

/// Write a spectrum (`[re, im]` pairs) as a complex128 `.npy` into `dir`;
/// returns its path relative to `dir`, for [`Record::eigenvalues_file`].
pub fn save_eigenvalues(
    dir: &Path,
    sample: usize,
    block: &str,
    kind: JacobianKind,
    values: &[[f64; 2]],
) -> Result<String> {
    let rel = eigenvalues_path(sample, block, kind);
    create_dir(&dir.join("eigenvalues"))?;
    write_eigenvalues(&dir.join(&rel), values)?;
    Ok(rel.to_string_lossy().into_owned())
}

/// Write `values` (`[re, im]` pairs) as a 1-D complex128 `.npy` at `path`,
/// atomically.
pub fn write_eigenvalues(path: &Path, values: &[[f64; 2]]) -> Result<()> {
    stiffness_checkpoint::npy::write_npy_c128(path, &[values.len()], values)
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// Read an eigenvalue file written by [`save_eigenvalues`] (any shape of
/// complex128, flattened) as `[re, im]` pairs.
pub fn read_eigenvalues(path: &Path) -> Result<Vec<[f64; 2]>> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    stiffness_checkpoint::npy::parse_npy(&bytes)
        .and_then(|array| array.data.into_c128())
        .map_err(|e| Error::parse(path, None, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("stiffness-records-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Spectra round-trip exactly (non-finite values too) under the path the
    /// record names; a file that is not an .npy is an error naming it; a
    /// real-valued array reads as complex with zero imaginary parts.
    #[test]
    fn eigenvalue_files_round_trip_and_bad_files_are_refused() {
        let dir = scratch("eig");
        let v = vec![[1.0, -2.0], [0.5, 0.0], [f64::INFINITY, 3.0]];
        let rel = save_eigenvalues(&dir, 7, "layer3.2", JacobianKind::Residual, &v).unwrap();
        assert_eq!(rel, "eigenvalues/s7_layer3.2_residual.npy");
        assert_eq!(read_eigenvalues(&dir.join(&rel)).unwrap(), v);

        let junk = dir.join("junk.npy");
        fs::write(&junk, b"hello").unwrap();
        let err = read_eigenvalues(&junk).unwrap_err().to_string();
        assert!(err.contains("junk.npy"), "{err}");
        assert!(read_eigenvalues(&dir.join("missing.npy")).is_err());

        let real = dir.join("real.npy");
        stiffness_checkpoint::npy::write_npy_f64(&real, &[2], &[1.5, -2.0]).unwrap();
        assert_eq!(read_eigenvalues(&real).unwrap(), [[1.5, 0.0], [-2.0, 0.0]]);
    }
}
