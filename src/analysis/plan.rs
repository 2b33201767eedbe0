//! The plan of a run, made before any work: for every selected block,
//! Jacobian kind and spectrum variant, the size of the reduced dense
//! eigenproblem, the memory and estimated time of the dense path, the
//! memory and cost per application of the matrix-free path, and which of
//! the two `--solver` picks.
//!
//! Sizes from the block shapes are upper bounds: how many ReLUs are active
//! is known only after the forward pass. `auto` therefore decides each
//! record from its actual reduced size s ([`Policy::method`]): dense when
//! the dense path fits the memory allowance and its estimated time fits
//! `--dense-seconds`, matrix-free (Krylov) otherwise. The plan says up to
//! which s that is dense.
//!
//! The time model (METHOD.md section 9): a dense real eigen-solve of size s
//! costs about 13 s^3 flops, at [`DENSE_FLOP_RATE`] (faer, one thread, on
//! the development machine; BENCHMARKS.md); a JVP costs the convolutions'
//! 2 C_out (C_in / groups) k^2 H_out W_out flops. Estimates, not promises.

use std::fmt;
use std::str::FromStr;

use stiffness_records::{JacobianKind, Method, SpectrumVariant};

use crate::analysis::matrix_free::KRYLOV_MAX_DIM;
use crate::analysis::measure::dense_svd_fits;
use crate::analysis::memory::{self, gib};
use crate::error::{Error, Result};
use crate::model::layers::{Conv2d, Layer};
use crate::model::{ResidualBlock, Shortcut};

/// Dense real eigen-solve throughput assumed by the plan, flops/s (faer,
/// one thread, measured 24 GFLOP/s at n = 2048 on the 2-core development
/// machine; rounded down).
pub const DENSE_FLOP_RATE: f64 = 2.0e10;

/// JVP throughput assumed by the plan, flops/s (candle's float32
/// convolutions at batch 1 with the vector bookkeeping, both cores: ResNet50
/// layer1.1 at 224 px, 437 MFLOP per JVP, measured about 12 GFLOP/s).
pub const JVP_FLOP_RATE: f64 = 1.2e10;

/// JVP-equivalents of a matrix-free record, for the plan's estimate: about
/// 200 applications of the reduced operator for the extremes and 150 of
/// (J + J^T)/2 (a JVP and a VJP each) measured on ResNet18/50 blocks at
/// 32-224 px; convergence varies by block, so this is a typical figure.
pub const KRYLOV_JVPS: f64 = 500.0;

/// The default `--dense-seconds`: the longest estimated dense solve `auto`
/// accepts for one record (30 minutes, so that every CIFAR-scale block,
/// n <= 16,384, stays exact).
pub const DEFAULT_DENSE_SECONDS: f64 = 1800.0;

/// Which eigen-solver a run uses (`--solver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Solver {
    /// Dense when it fits the memory allowance and `--dense-seconds`, else Krylov.
    #[default]
    Auto,
    /// Always the reduced dense problem (every eigenvalue); refused up front
    /// when a record could exceed the memory.
    Dense,
    /// Always matrix-free extremes.
    Krylov,
}

impl Solver {
    pub const NAMES: [&'static str; 3] = ["auto", "dense", "krylov"];
}

impl FromStr for Solver {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Solver::Auto),
            "dense" => Ok(Solver::Dense),
            "krylov" => Ok(Solver::Krylov),
            _ => Err(Error::Usage(format!(
                "--solver {s:?}: expected one of {}",
                Solver::NAMES.join(", ")
            ))),
        }
    }
}

impl fmt::Display for Solver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = [Solver::Auto, Solver::Dense, Solver::Krylov]
            .iter()
            .position(|s| s == self)
            .unwrap_or(0);
        f.write_str(Solver::NAMES[i])
    }
}

/// How records choose their method.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub solver: Solver,
    /// Bytes one record may use (the budget less the weights, shared by the
    /// samples in flight); `None`: unchecked.
    pub record_bytes: Option<u64>,
    /// Where `record_bytes` comes from, for messages (e.g. "--max-memory
    /// 12.00 GiB less the weights, shared by 2 blocks analysed in parallel").
    pub limit_source: String,
    /// The longest estimated dense solve `auto` accepts, seconds.
    pub dense_seconds: f64,
}

impl Policy {
    /// The method of an exact-spectrum record of `block` (`kind`, at
    /// `input`) whose reduced problem has size `s`. Paper-compatible
    /// records are always dense.
    pub fn method(
        &self,
        block: &ResidualBlock,
        kind: JacobianKind,
        input: [usize; 3],
        s: u64,
    ) -> Method {
        match self.solver {
            Solver::Dense => Method::Dense,
            Solver::Krylov => Method::Krylov,
            Solver::Auto if self.dense_fits(block, kind, input, s) => Method::Dense,
            Solver::Auto => Method::Krylov,
        }
    }

    fn dense_fits(
        &self,
        block: &ResidualBlock,
        kind: JacobianKind,
        input: [usize; 3],
        s: u64,
    ) -> bool {
        let size = |shape: [usize; 3]| shape.iter().map(|&d| d as u64).product::<u64>();
        if !block.is_square(input) && !dense_svd_fits(size(block.out_shape(input)), size(input)) {
            return false;
        }
        let bytes = memory::record_peak_at(block, kind, SpectrumVariant::Exact, input, s);
        self.fits(bytes) && dense_seconds(block, input, s) <= self.dense_seconds
    }

    /// Whether one record of `bytes` fits the memory allowance.
    fn fits(&self, bytes: u64) -> bool {
        self.record_bytes.is_none_or(|limit| bytes <= limit)
    }

    /// The largest reduced size up to which `auto` solves densely (0: none).
    fn dense_up_to(
        &self,
        block: &ResidualBlock,
        kind: JacobianKind,
        input: [usize; 3],
        bound: u64,
    ) -> u64 {
        let (mut lo, mut hi) = (0u64, bound);
        if self.dense_fits(block, kind, input, bound) {
            return bound;
        }
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.dense_fits(block, kind, input, mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

/// Estimated seconds of the dense path for a reduced problem of size `s`:
/// the eigen-solve (13 s^3 flops) for square blocks; non-square blocks
/// (Lanczos on the footprint Jacobian) are counted as one JVP per column.
pub fn dense_seconds(block: &ResidualBlock, input: [usize; 3], s: u64) -> f64 {
    if block.is_square(input) {
        13.0 * (s as f64).powi(3) / DENSE_FLOP_RATE
    } else {
        jvp_flops(block, input) as f64 * 25.0 * input[0] as f64 / DENSE_FLOP_RATE
    }
}

/// Flops of one JVP of the block at `input`: its convolutions, 2 C_out
/// (C_in / groups) k^2 H_out W_out each (the shortcut's too).
pub fn jvp_flops(block: &ResidualBlock, input: [usize; 3]) -> u64 {
    let branch = &block.branch;
    let (hs, ws) = (branch.lens_after(input[1]), branch.lens_after(input[2]));
    let conv = |c: &Conv2d, out: usize| -> u64 {
        let w = c.weight.dims();
        2 * (w[0] * w[1] * w[2] * w[3]) as u64 * out as u64
    };
    let body: u64 = branch
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| match l {
            Layer::Conv(c) => conv(c, hs[i] * ws[i]),
            _ => 0,
        })
        .sum();
    let out = block.out_shape(input);
    let shortcut = match &block.shortcut {
        Shortcut::Projection { conv: c, .. } => conv(c, out[1] * out[2]),
        _ => 0,
    };
    body + shortcut
}

/// What the plan says for one (block, kind, variant).
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// The dense path, at any active size.
    Dense,
    /// The matrix-free path.
    Krylov,
    /// `auto`: dense when the actual reduced size is at most this, else Krylov.
    DenseUpTo(u64),
    /// The run is refused: why.
    Refused(String),
}

/// One row of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub block: String,
    pub kind: JacobianKind,
    pub variant: SpectrumVariant,
    pub input: [usize; 3],
    pub square: bool,
    /// n = C H W of the input.
    pub n: u64,
    /// Upper bound on the reduced dense size.
    pub solved_bound: u64,
    /// Peak bytes of the dense path at that bound.
    pub dense_bytes: u64,
    /// Estimated seconds of the dense path at that bound.
    pub dense_seconds: f64,
    /// Peak bytes of the matrix-free path.
    pub krylov_bytes: u64,
    /// Estimated seconds of the matrix-free path ([`KRYLOV_JVPS`] JVPs).
    pub krylov_seconds: f64,
    /// Flops of one JVP.
    pub jvp_flops: u64,
    pub choice: Choice,
}

/// The plan of `blocks` (with their inputs) for every kind and variant.
pub fn plan(
    blocks: &[(&ResidualBlock, [usize; 3])],
    kinds: &[JacobianKind],
    variants: &[SpectrumVariant],
    policy: &Policy,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &(block, input) in blocks {
        for &kind in kinds {
            for &variant in variants {
                rows.push(row(block, input, kind, variant, policy));
            }
        }
    }
    rows
}

fn row(
    block: &ResidualBlock,
    input: [usize; 3],
    kind: JacobianKind,
    variant: SpectrumVariant,
    policy: &Policy,
) -> Row {
    let square = block.is_square(input);
    let bound = if square {
        memory::solved_size_bound(block, kind, input)
    } else {
        0
    };
    let dense_bytes = memory::record_peak(block, kind, variant, input);
    let krylov_bytes = memory::krylov_peak(block, input);
    let fits = |bytes: u64| policy.fits(bytes);
    let flops = jvp_flops(block, input);
    let over = |what: &str, bytes: u64| {
        format!(
            "{what} needs up to {} (an upper bound), more than the {} a record may use ({})",
            gib(bytes),
            gib(policy.record_bytes.unwrap_or(0)),
            policy.limit_source
        )
    };
    let choice = match (variant, policy.solver) {
        (SpectrumVariant::PaperCompat, _) if fits(dense_bytes) => Choice::Dense,
        (SpectrumVariant::PaperCompat, _) => Choice::Refused(format!(
            "{}; the paper-compatible slice spectrum is not computed at this size \
             (use --spectrum exact)",
            over("the dense n_out x n_in Jacobian", dense_bytes)
        )),
        (_, Solver::Dense) if fits(dense_bytes) => Choice::Dense,
        (_, Solver::Dense) => Choice::Refused(format!(
            "{}; use --solver auto or krylov",
            over("the dense path", dense_bytes)
        )),
        (_, _) if !fits(krylov_bytes) => {
            Choice::Refused(over("the matrix-free path", krylov_bytes))
        }
        (_, Solver::Krylov) => Choice::Krylov,
        // Non-square: the dense path adds only sigma_min from a dense SVD,
        // possible on small blocks alone; elsewhere both give the same.
        (_, Solver::Auto) if !square => match policy.method(block, kind, input, 0) {
            Method::Dense => Choice::Dense,
            Method::Krylov => Choice::Krylov,
        },
        (_, Solver::Auto) => match policy.dense_up_to(block, kind, input, bound) {
            s if s == bound => Choice::Dense,
            0 => Choice::Krylov,
            s => Choice::DenseUpTo(s),
        },
    };
    Row {
        block: block.name.clone(),
        kind,
        variant,
        input,
        square,
        n: input.iter().map(|&d| d as u64).product(),
        solved_bound: bound,
        dense_bytes,
        dense_seconds: dense_seconds(block, input, bound),
        krylov_bytes,
        krylov_seconds: KRYLOV_JVPS * flops as f64 / JVP_FLOP_RATE,
        jvp_flops: flops,
        choice,
    }
}

/// The plan as a table, one row per (block, kind, variant), with a legend.
pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<10} {:<8} {:<12} {:>12} {:>9} {:>9} {:>11} {:>11} {:>10} {:>11} {:>9}  {}\n",
        "block",
        "kind",
        "spectrum",
        "input",
        "n",
        "s<=",
        "dense mem",
        "dense time",
        "krylov mem",
        "krylov time",
        "MFLOP/Jv",
        "method"
    );
    for r in rows {
        let choice = match &r.choice {
            Choice::Dense => "dense".to_string(),
            Choice::Krylov => "krylov".to_string(),
            Choice::DenseUpTo(s) => format!("dense if s <= {s}, else krylov"),
            Choice::Refused(why) => format!("REFUSED: {why}"),
        };
        out += &format!(
            "{:<10} {:<8} {:<12} {:>12} {:>9} {:>9} {:>11} {:>11} {:>10} {:>11} {:>9.1}  {choice}\n",
            r.block,
            r.kind.name(),
            r.variant.as_str(),
            format!("{}x{}x{}", r.input[0], r.input[1], r.input[2]),
            r.n,
            if r.square {
                r.solved_bound.to_string()
            } else {
                "-".into()
            },
            gib(r.dense_bytes),
            duration(r.dense_seconds),
            gib(r.krylov_bytes),
            duration(r.krylov_seconds),
            r.jvp_flops as f64 / 1e6,
        );
    }
    out += &format!(
        "s<=: bound on the reduced dense size (the active units are known after the forward \
         pass); dense time: estimated at {:.0} GFLOP/s for 13 s^3 flops; krylov mem: {} basis \
         vectors of length n; krylov time: about {:.0} JVPs at {:.0} GFLOP/s (typical; it \
         varies with convergence); MFLOP/Jv: one JVP. Times are for one sample on this \
         project's 2-core machine: scale them to yours.\n",
        DENSE_FLOP_RATE / 1e9,
        KRYLOV_MAX_DIM + 1,
        KRYLOV_JVPS,
        JVP_FLOP_RATE / 1e9
    );
    out
}

/// Seconds as "12 s", "3.4 min", "5.1 h" or "2.0 d".
pub fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("{s:.1} s"),
        s if s < 5400.0 => format!("{:.1} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86_400.0),
    }
}

/// The first refusal of the plan as an error, if any.
pub fn check(rows: &[Row]) -> Result<()> {
    match rows.iter().find_map(|r| match &r.choice {
        Choice::Refused(why) => Some((r, why)),
        _ => None,
    }) {
        Some((r, why)) => Err(Error::Memory(format!(
            "block {} ({} Jacobian, {} spectrum, input {}x{}x{}): {why}. Leave the block out \
             (--blocks), or raise --max-memory if the machine has the memory; `analyze \
             --dry-run` prints the whole plan",
            r.block, r.kind, r.variant, r.input[0], r.input[1], r.input[2]
        ))),
        None => Ok(()),
    }
}
