//! Block-level stiffness analysis of residual networks.
//!
//! The pipeline, one module per stage: checkpoint (crate `stiffness-checkpoint`)
//! -> [`model`] -> data (crate `stiffness-data`) -> [`probe`] -> [`jacobian`]
//! -> spectrum and metrics (crate `stiffness-spectrum`) -> statistics (crate
//! `stiffness-stats`) -> report. See `METHOD.md` for the mathematics.

pub mod bench;
pub mod error;
pub mod eval;
pub mod jacobian;
pub mod linearize;
pub mod model;
pub mod run;
pub mod spectrum;
pub mod train;

pub use error::{Error, Result};
