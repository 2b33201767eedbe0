//! Analysis records and their reports.
//!
//! The analysis job writes one record per (sample, block, Jacobian kind,
//! spectrum variant) into a record directory (crate `stiffness-records`). [`write_report`] reads one or more such directories (several
//! models, or shards of one model), deduplicates and sorts the records,
//! aggregates every metric per (model, block, kind, variant, label), tests
//! correlations with accuracy and loss (Benjamini-Hochberg over the whole
//! report), tests trends with depth (and, for the checkpoints of one
//! training run, across training), tests the metrics given the share of
//! active outputs (module [`confound`]), and writes CSV tables, SVG/PNG figures
//! and Markdown/HTML documents. Method: `docs/METHOD.md`, sections 4, 6 and 7.

#![deny(missing_docs)]

pub mod aggregate;
pub mod analysis;
pub mod confound;
pub mod dataset;
pub mod doc;
pub mod error;
pub mod figures;
pub mod fsutil;
pub mod metric;
pub mod paper;
pub mod plots;
pub mod report;
pub mod tables;

pub use aggregate::{Aggregate, GroupKey, LabelPerf, ModelPerf, PerfSource, ValueCounts};
pub use analysis::{Analysis, Axis, CorrelationRow, Line, Scope, Target, TrendRow};
pub use dataset::{Dataset, ModelId};
pub use error::{Error, Result};
pub use metric::Metric;
pub use report::{write_report, Format, ReportOptions, ReportSummary};
