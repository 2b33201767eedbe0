//! Memory estimates of the analysis, checked before anything large is
//! allocated.
//!
//! Each (block, Jacobian kind, spectrum variant) record goes through phases
//! whose largest buffers are known from the block's shapes alone (METHOD.md
//! section 9), so a run is refused up front, with the numbers, instead of
//! aborting on a failed allocation part-way. Upper bounds, in bytes:
//!
//! - the footprint Jacobian: 8 bytes per stored entry,
//!   8 * C_in * C_out * sum_h |reach_h| * sum_w |reach_w| (exact);
//! - the reduced dense eigenproblem of size s <= the bound of
//!   [`solved_size_bound`] (the number of active units is known only after
//!   the forward pass): the matrix V D U over the cut layer (<= 8 s^2), the
//!   gathered matrix, the isolated core and faer's working copy (3 * 8 s^2),
//!   with the branch's factors V and U kept meanwhile (8 m (n_in + n_out),
//!   m <= the residual kind's bound) and their run form for Söderlind's
//!   number and the reduced matrix (at most as many f64 entries again), and
//!   on small maps the dense product U V (8 n_in n_out) from which J_F is
//!   stored;
//! - the paper-compatible variant: the dense n_out x n_in Jacobian in f32;
//! - the dense SVD of small non-square blocks and the dense symmetric
//!   fallback of Söderlind's number: 2 * 8 * rows * cols;
//! - a batch of coloured JVP tangents through every layer:
//!   4 bytes * [`JVP_BATCH`] * ((input + every layer's output) * 2 + the
//!   largest convolution's im2col buffer).
//!
//! A record's peak is its largest phase plus the JVP batch; samples analysed
//! (sample, block) units analysed in parallel (one per worker thread) each hold one.

use crate::analysis::jacobian::MAX_BATCH as JVP_BATCH;
use crate::analysis::matrix_free::KRYLOV_MAX_DIM;
use crate::error::{Error, Result};
use crate::model::layers::Layer;
use crate::model::{JacobianKind, ResidualBlock, Shortcut};
use stiffness_records::SpectrumVariant;

use super::measure::{dense_svd_fits, DENSE_SYMMETRIC_LIMIT};

/// How much memory a run may use, and where that limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub limit: u64,
    /// `true` for `--max-memory`, `false` for the machine's available memory.
    pub explicit: bool,
}

impl Budget {
    /// `--max-memory SIZE` when given, else the memory the operating system
    /// reports as available (`MemAvailable` in /proc/meminfo); `None` when
    /// neither is known (no limit is then checked).
    pub fn new(max_memory: Option<&str>) -> Result<Option<Self>> {
        if let Some(text) = max_memory {
            return Ok(Some(Budget {
                limit: parse_size(text)?,
                explicit: true,
            }));
        }
        Ok(available_memory().map(|limit| Budget {
            limit,
            explicit: false,
        }))
    }

    /// "--max-memory 12.00 GiB" or "the 20.00 GiB this machine has available".
    pub fn describe(&self) -> String {
        if self.explicit {
            format!("--max-memory {}", gib(self.limit))
        } else {
            format!("the {} this machine has available", gib(self.limit))
        }
    }
}

/// `SIZE` as bytes: a number with an optional unit K, M, G or T (powers of
/// 1024, an optional trailing `B` or `iB`), e.g. `12G`, `512MiB`, `4096`.
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || {
        Error::Usage(format!(
            "--max-memory {text:?}: expected a size such as 12G, 512M or 4096 (bytes)"
        ))
    };
    let t = text.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (number, shift) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let bytes = value * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `MemAvailable` of /proc/meminfo in bytes (Linux), if readable.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Bytes as GiB (or MiB below 1 GiB) with two decimals.
pub fn gib(bytes: u64) -> String {
    match bytes as f64 {
        b if b >= (1u64 << 30) as f64 => format!("{:.2} GiB", b / (1u64 << 30) as f64),
        b => format!("{:.2} MiB", b / (1u64 << 20) as f64),
    }
}

/// Entries stored by the footprint Jacobian of `kind` (see
/// [`crate::analysis::jacobian::FootprintJacobian`]).
pub fn footprint_entries(block: &ResidualBlock, kind: JacobianKind, input: [usize; 3]) -> u64 {
    let [fh, fw] = block.footprints(kind, input);
    let span = |reach: &[crate::model::geometry::Interval]| -> u64 {
        reach
            .iter()
            .map(|iv| (iv.hi - iv.lo + 1).max(0) as u64)
            .sum()
    };
    let c_out = block.out_shape(input)[0] as u64;
    input[0] as u64 * c_out * span(&fh.reach) * span(&fw.reach)
}

/// An upper bound on the size of the dense eigenproblem that
/// [`crate::analysis::reduce::exact_spectrum`] solves: the smallest inner ReLU layer
/// (residual kind; and block kind with an identity shortcut, capped at n),
/// else n.
pub fn solved_size_bound(block: &ResidualBlock, kind: JacobianKind, input: [usize; 3]) -> u64 {
    let n: u64 = input.iter().map(|&d| d as u64).product();
    let branch = &block.branch;
    let channels = branch.channels_after(input[0]);
    let (hs, ws) = (branch.lens_after(input[1]), branch.lens_after(input[2]));
    let inner = branch
        .relu_positions()
        .iter()
        .map(|&i| (channels[i] * hs[i] * ws[i]) as u64)
        .min()
        .unwrap_or(0);
    match kind {
        JacobianKind::Residual => inner,
        JacobianKind::Block if matches!(block.shortcut, Shortcut::Identity) => inner.min(n),
        JacobianKind::Block => n,
    }
}

/// The peak bytes of one dense-path record of (`block` at `input`, `kind`,
/// `variant`), at the bound of [`solved_size_bound`].
pub fn record_peak(
    block: &ResidualBlock,
    kind: JacobianKind,
    variant: SpectrumVariant,
    input: [usize; 3],
) -> u64 {
    let s = solved_size_bound(block, kind, input);
    record_peak_at(block, kind, variant, input, s)
}

/// The peak bytes of one matrix-free record of `block` at `input` (either
/// kind): the Krylov basis of at most [`KRYLOV_MAX_DIM`] + 1 vectors of length n (the
/// Söderlind run works on the whole input space; the reduced operator's
/// space is smaller), the restart's product V Q (up to half the basis), a
/// few work vectors, and one tangent through every layer.
pub fn krylov_peak(block: &ResidualBlock, input: [usize; 3]) -> u64 {
    let n: u64 = input.iter().map(|&d| d as u64).product();
    let vectors = (KRYLOV_MAX_DIM + 1 + KRYLOV_MAX_DIM / 2 + 8) as u64;
    8 * n * vectors + jvp_batch_bytes(block, input).div_ceil(JVP_BATCH as u64)
}

/// [`record_peak`] for a reduced dense problem of size `s` (known once the
/// forward pass has given the active units).
pub fn record_peak_at(
    block: &ResidualBlock,
    kind: JacobianKind,
    variant: SpectrumVariant,
    input: [usize; 3],
    s: u64,
) -> u64 {
    let out = block.out_shape(input);
    let n_in: u64 = input.iter().map(|&d| d as u64).product();
    let n_out: u64 = out.iter().map(|&d| d as u64).product();
    let square = input == out;
    // The linearisation keeps the Jacobians it assembled while the record
    // is computed: the branch's too when the block's is derived from it.
    let derived = kind == JacobianKind::Block
        && square
        && block.shortcut_tap == 0
        && matches!(block.shortcut, Shortcut::Identity);
    let mut held = footprint_entries(block, kind, input);
    if derived {
        held += footprint_entries(block, JacobianKind::Residual, input);
    }
    let footprint = 8 * held;
    let phase = match variant {
        SpectrumVariant::PaperCompat => footprint + 4 * n_in * n_out,
        SpectrumVariant::Exact if square => {
            let m = solved_size_bound(block, JacobianKind::Residual, input);
            // Dense factors and their run form (RunFactors), and U V.
            let factors = 2 * 8 * m * (n_in + n_out) + 8 * n_in * n_out;
            let eigen = 4 * 8 * s * s + factors;
            let symmetric = if n_in as usize <= DENSE_SYMMETRIC_LIMIT {
                2 * 8 * n_in * n_in
            } else {
                0
            };
            footprint + eigen.max(symmetric)
        }
        SpectrumVariant::Exact => {
            let svd = if dense_svd_fits(n_out, n_in) {
                2 * 8 * n_in * n_out
            } else {
                0
            };
            footprint + svd
        }
    };
    phase + jvp_batch_bytes(block, input)
}

/// A batch of [`JVP_BATCH`] tangents through the block: f32, the input and
/// every layer's output, with a factor 2 for temporaries, and the largest
/// im2col buffer of a convolution (they run one after the other).
fn jvp_batch_bytes(block: &ResidualBlock, input: [usize; 3]) -> u64 {
    let branch = &block.branch;
    let channels = branch.channels_after(input[0]);
    let (hs, ws) = (branch.lens_after(input[1]), branch.lens_after(input[2]));
    let layers: u64 = (0..channels.len())
        .map(|i| (channels[i] * hs[i] * ws[i]) as u64)
        .sum();
    let n_in: u64 = input.iter().map(|&d| d as u64).product();
    let im2col = branch
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, layer)| match layer {
            Layer::Conv(c) => {
                let hw = match i {
                    0 => [input[1], input[2]],
                    _ => [hs[i - 1], ws[i - 1]],
                };
                Some(c.im2col_len(hw) as u64)
            }
            _ => None,
        })
        .max()
        .unwrap_or(0);
    4 * JVP_BATCH as u64 * (2 * (n_in + layers) + im2col)
}
