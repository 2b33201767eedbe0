//! The analysis pipeline, one module per stage, in the order the data flows:
//!
//! 1. [`settings`]: what to analyse ([`Settings`]) and [`analyze`], the
//!    whole run in one call;
//! 2. [`inputs`]: the inputs (data set samples or given tensors) and the
//!    selected blocks (sample choice itself is [`crate::sampling`]);
//! 3. [`probe`]: one forward pass per sample recording every block's input;
//! 4. [`linearize`]: a block linearised at its input (masks, JVPs);
//! 5. [`jacobian`]: the Jacobian assembled from coloured JVPs over its
//!    footprint;
//! 6. [`reduce`]: the exact structural reductions to a small dense
//!    eigenproblem (METHOD.md section 5), [`blocked`]: products of its
//!    factors by spatial blocks, and [`factored`]: the factors of a
//!    reduction as an operator for Söderlind's number;
//! 7. [`metrics`] and [`measure`]: the stiffness metrics of a spectrum, and
//!    which solver gives each metric of one (block, kind, variant);
//! 8. [`matrix_free`]: the same metrics without any matrix (Krylov-Schur
//!    on JVPs, with evidence), for blocks no dense solve can hold;
//! 9. [`plan`] and [`memory`]: before any work, the size, memory and time
//!    of each (block, kind, variant) and the solver `--solver` picks;
//! 10. [`job`]: the loop over samples and blocks, appending records to the
//!     store (`stiffness_records::store`).
//!
//! Statistics and the report read the records (crates `stiffness-stats`,
//! `stiffness-report`).

pub mod blocked;
pub(crate) mod cache;
pub mod factored;
pub mod inputs;
pub mod jacobian;
pub mod job;
pub mod linearize;
pub mod matrix_free;
pub mod measure;
pub mod memory;
pub mod metrics;
pub mod plan;
pub mod probe;
pub mod reduce;
pub mod settings;

pub use inputs::{BlockFilter, Inputs};
pub use job::{Job, Progress, Silent};
pub use settings::{analyze, Sampling, Settings, Source};
