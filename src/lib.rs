//! Block-level stiffness analysis of residual networks.
//!
//! The pipeline: checkpoint (crate `stiffness-checkpoint`) -> [`model`] ->
//! data (crate `stiffness-data`, samples drawn by [`sampling`]) ->
//! [`analysis`] (probe -> linearize -> jacobian -> reduce -> metrics ->
//! job) -> records (crate `stiffness-records`) -> statistics (crate
//! `stiffness-stats`) -> report (crate `stiffness-report`). Beside it:
//! [`eval`] (accuracy and loss), [`train`] (the same architectures trained
//! with SGD), [`bench`](mod@bench). See `docs/METHOD.md` for the mathematics and
//! `docs/ARCHITECTURE.md` for the layout.

pub mod analysis;
pub mod bench;
pub mod error;
pub mod eval;
pub mod model;
pub mod sampling;
pub mod train;

pub use error::{Error, Result};
