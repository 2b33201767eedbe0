//! The record store: what the analysis writes and the report reads.
//!
//! A record directory holds one [`Record`] per (sample, block, Jacobian
//! kind, spectrum variant) in `records.jsonl` (and the same columns in
//! `records.csv`), the run's [`Manifest`] in `manifest.json`, optionally the
//! evaluation of the whole data set ([`EvalSummary`], `eval.json`) and the
//! spectra as complex128 `.npy` files. [`schema`] defines the types;
//! [`store`] owns every file (append, resume, merge, CSV, eigenvalues).
//! Everything after `analyze` reads only these files, so reports are rebuilt
//! without recomputing spectra and shards merge by concatenation.

#![deny(missing_docs)]

mod error;
pub mod schema;
pub mod store;

pub use error::{Error, Result};
pub use schema::*;
pub use store::{read_eval, read_manifest, read_record_file, read_records, write_records};
