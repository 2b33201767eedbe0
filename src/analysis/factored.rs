//! A square block's Jacobian as the factors of its reduction, for
//! Söderlind's number: J_F = U V or (identity shortcut) J_B = D_out (I + U V)
//! ([`Form::Branch`], [`Form::Shifted`]), applied through its symmetric part
//! (J + J^T)/2 without any n x n matrix (forming U V would cost 2 n^2 m).
//!
//! The products are memory-bound: the dense factors of a ResNet18 stage-1
//! block (n = 4096, m ~ 1500) are 2 x 49 MB in f64, read three times per
//! Lanczos step. Two exact savings:
//!
//! - **Runs of rows.** A factor's column is a convolution's footprint: a
//!   spatial window over every channel. With rows in (H, W, C) order that
//!   window is a few contiguous runs (one per window row), so each column
//!   is stored as its nonzero runs (gaps of up to `GAP` = 8 zeros kept inside
//!   a run). On 8x8 maps a 3x3 window keeps 14 % of the column; on maps a
//!   window covers, a column is one run (dense).
//! - **Float32 when exact.** The factors come from float32 JVPs, so every
//!   entry round-trips through f32; they are then held in f32. The sums
//!   accumulate in f64 either way.
//!
//! The permutations change the basis, not the operator: P S P^T has the
//! eigenvalues of S, and the product is returned in the natural order.

use std::sync::Arc;

use pulp::Arch;

use crate::analysis::linearize::Linearization;
use crate::analysis::reduce::{factors, Factors, Form};
use crate::error::{Error, Result};
use crate::model::JacobianKind;

/// Zeros kept inside a run rather than starting a new one: short gaps cost
/// less as stored zeros than as run bookkeeping.
const GAP: usize = 8;

/// A square block's factored Jacobian, ready for products with its
/// symmetric part.
pub struct FactoredJacobian {
    runs: Arc<RunFactors>,
    /// D_out in the (H, W, C) order for J_B; `None` for J_F.
    output_mask: Option<Vec<f64>>,
}

/// U (n x m) and V (m x n) of a block's factors as run columns in the
/// narrowest exact element type, rows of U and columns of V in the (H, W, C)
/// order of the block's space, the m active units in (H, W, C) order of
/// the cut layer. Built once per linearisation ([`Factors::runs`]) and
/// shared by both kinds' Söderlind operators and reduced matrices.
pub struct RunFactors {
    pair: Packed,
    /// Position k of the (H, W, C) order holds flat (C, H, W) index order[k]
    /// of the block's input (= output) space.
    order: Vec<usize>,
}

enum Packed {
    Single(Pair<f32>),
    Double(Pair<f64>),
}

struct Pair<T> {
    u: RunColumns<T>,
    v: RunColumns<T>,
}

impl RunFactors {
    /// The run form of `f`.
    pub(crate) fn of(f: &Factors) -> Result<Self> {
        let order = hwc_order(f.space);
        let pair = match Pair::build(f, &order, exact_f32) {
            Some(pair) => Packed::Single(pair),
            None => Packed::Double(
                Pair::build(f, &order, Some)
                    .ok_or_else(|| Error::Numerical("factors: an f64 refused as f64".into()))?,
            ),
        };
        Ok(Self { pair, order })
    }

    /// Entries stored, as a share of the dense factors' 2 n m.
    pub fn stored_share(&self) -> f64 {
        match &self.pair {
            Packed::Single(p) => p.stored_share(),
            Packed::Double(p) => p.stored_share(),
        }
    }

    /// The m x m reduced matrix V D U (D = `mask` over the block's space, in
    /// (C, H, W) order, or the identity), with the active units in the
    /// order of these runs: a simultaneous permutation of the rows and
    /// columns of the matrix in the factors' order, so the same spectrum.
    /// Column j is the sum over U's stored entries i of column j of
    /// d_i U[i, j] V[:, i]: 2 nnz(U) nnz(V col) flops instead of 2 m^2 n.
    pub fn reduced_matrix(&self, mask: Option<&[f64]>) -> faer::Mat<f64> {
        let d: Option<Vec<f64>> = mask.map(|d| self.order.iter().map(|&i| d[i]).collect());
        match &self.pair {
            Packed::Single(p) => p.reduced(d.as_deref()),
            Packed::Double(p) => p.reduced(d.as_deref()),
        }
    }
}

impl FactoredJacobian {
    /// The factored form of `lin`'s Jacobian of `kind`, if its reduction
    /// factors it (not [`Form::ActiveRows`]).
    pub fn of(lin: &Linearization<'_>, kind: JacobianKind) -> Result<Option<Self>> {
        let (cut, mask) = match Form::of(lin, kind)? {
            Form::Branch { cut, .. } => (cut, None),
            Form::Shifted { cut, .. } => (cut, Some(lin.output_mask()?)),
            Form::ActiveRows { .. } => return Ok(None),
        };
        let runs = factors(lin, cut)?.runs()?;
        Ok(Some(Self {
            output_mask: mask.map(|d| runs.order.iter().map(|&i| d[i]).collect()),
            runs,
        }))
    }

    /// Whether the factors are held in float32 (exactly).
    pub fn is_single(&self) -> bool {
        matches!(self.runs.pair, Packed::Single(_))
    }

    /// Entries stored, as a share of the dense factors' 2 n m.
    pub fn stored_share(&self) -> f64 {
        self.runs.stored_share()
    }

    /// y = (J + J^T) x / 2.
    ///
    /// With x' = D_out x (J_B) or x (J_F): w = U^T x' (pass over U), then
    /// z = V x and t = V^T w together (one pass over V), then U z (pass
    /// over U). J_F: y = (U z + t)/2; J_B: y = (D_out (x + U z) + x' + t)/2.
    pub fn symmetric_part_apply(&self, x: &[f64], y: &mut [f64]) {
        let order = &self.runs.order;
        let xp: Vec<f64> = order.iter().map(|&i| x[i]).collect();
        let masked: Vec<f64> = match &self.output_mask {
            Some(d) => xp.iter().zip(d).map(|(x, d)| x * d).collect(),
            None => xp.clone(),
        };
        let (uz, t) = match &self.runs.pair {
            Packed::Single(p) => p.apply(&xp, &masked),
            Packed::Double(p) => p.apply(&xp, &masked),
        };
        for (k, &i) in order.iter().enumerate() {
            y[i] = match &self.output_mask {
                Some(d) => 0.5 * (d[k] * (xp[k] + uz[k]) + masked[k] + t[k]),
                None => 0.5 * (uz[k] + t[k]),
            };
        }
    }
}

impl<T: Copy + Into<f64>> Pair<T> {
    /// U and V of `f` as run columns: U's rows and V's columns in `order`
    /// (the block's space in (H, W, C) order), the m active units (V's rows,
    /// U's columns) in (H, W, C) order of the cut layer; `None` if `convert`
    /// refuses an entry.
    fn build(f: &Factors, order: &[usize], convert: impl Fn(f64) -> Option<T>) -> Option<Self> {
        let [_, h, w] = f.inner_shape;
        let plane = h * w;
        // (H, W, C) key of a flat (C, H, W) index of the cut layer.
        let key = |i: usize| ((i % plane), i / plane);
        let mut units: Vec<usize> = (0..f.active.len()).collect();
        units.sort_by_key(|&r| key(f.active[r]));
        let u = RunColumns::build(order.len(), units.len(), &convert, |r, c| {
            f.u[(order[r], units[c])]
        })?;
        let v = RunColumns::build(units.len(), order.len(), &convert, |r, c| {
            f.v[(units[r], order[c])]
        })?;
        Some(Self { u, v })
    }

    fn stored_share(&self) -> f64 {
        let dense = self.u.rows * self.u.cols + self.v.rows * self.v.cols;
        (self.u.values.len() + self.v.values.len()) as f64 / dense.max(1) as f64
    }

    /// V D U (D = `d`, or the identity), dense m x m.
    fn reduced(&self, d: Option<&[f64]>) -> faer::Mat<f64> {
        let m = self.v.rows;
        let mut out = faer::Mat::<f64>::zeros(m, self.u.cols);
        Arch::new().dispatch(|| {
            for j in 0..self.u.cols {
                let column = out.col_as_slice_mut(j);
                for run in self.u.column_runs(j) {
                    let values = &self.u.values[run.at..run.at + run.len];
                    for (k, &a) in values.iter().enumerate() {
                        let i = run.row + k;
                        let s = a.into() * d.map_or(1.0, |d| d[i]);
                        self.v.axpy(i, s, column);
                    }
                }
            }
        });
        out
    }

    /// (U V x, V^T U^T x2), in three passes over the factors.
    fn apply(&self, x: &[f64], x2: &[f64]) -> (Vec<f64>, Vec<f64>) {
        // Compiled for the CPU's SIMD (AVX2 / AVX-512, chosen at run time).
        Arch::new().dispatch(|| {
            let w: Vec<f64> = (0..self.u.cols).map(|j| self.u.dot(j, x2)).collect();
            let mut z = vec![0.0; self.v.rows];
            let t: Vec<f64> = (0..self.v.cols)
                .map(|i| {
                    self.v.axpy(i, x[i], &mut z);
                    self.v.dot(i, &w)
                })
                .collect();
            let mut uz = vec![0.0; self.u.rows];
            for (j, &zj) in z.iter().enumerate() {
                self.u.axpy(j, zj, &mut uz);
            }
            (uz, t)
        })
    }
}

/// A rows x cols matrix stored column by column as runs of consecutive rows.
struct RunColumns<T> {
    rows: usize,
    cols: usize,
    /// Column j's runs are `runs[col_runs[j]..col_runs[j + 1]]`.
    col_runs: Vec<usize>,
    runs: Vec<Run>,
    values: Vec<T>,
}

/// Rows `row..row + len` of a column, stored at `values[at..at + len]`.
#[derive(Clone, Copy)]
struct Run {
    row: usize,
    len: usize,
    at: usize,
}

impl<T: Copy + Into<f64>> RunColumns<T> {
    /// The nonzero runs of the matrix `entry(r, c)`, gaps of up to [`GAP`]
    /// zeros kept inside a run; `None` if `convert` refuses a stored entry.
    fn build(
        rows: usize,
        cols: usize,
        convert: impl Fn(f64) -> Option<T>,
        entry: impl Fn(usize, usize) -> f64,
    ) -> Option<Self> {
        let mut m = Self {
            rows,
            cols,
            col_runs: vec![0],
            runs: Vec::new(),
            values: Vec::new(),
        };
        let mut column = vec![0.0; rows];
        for c in 0..cols {
            column
                .iter_mut()
                .enumerate()
                .for_each(|(r, x)| *x = entry(r, c));
            for (row, end) in nonzero_runs(&column) {
                let at = m.values.len();
                for &x in &column[row..end] {
                    m.values.push(convert(x)?);
                }
                m.runs.push(Run {
                    row,
                    len: end - row,
                    at,
                });
            }
            m.col_runs.push(m.runs.len());
        }
        Some(m)
    }

    fn column_runs(&self, j: usize) -> &[Run] {
        &self.runs[self.col_runs[j]..self.col_runs[j + 1]]
    }

    /// Column j times x, in f64.
    #[inline(always)]
    fn dot(&self, j: usize, x: &[f64]) -> f64 {
        self.column_runs(j)
            .iter()
            .map(|r| dot(&self.values[r.at..r.at + r.len], &x[r.row..r.row + r.len]))
            .sum()
    }

    /// y += s column j, in f64.
    #[inline(always)]
    fn axpy(&self, j: usize, s: f64, y: &mut [f64]) {
        if s == 0.0 {
            return;
        }
        for r in self.column_runs(j) {
            let a = &self.values[r.at..r.at + r.len];
            y[r.row..r.row + r.len]
                .iter_mut()
                .zip(a)
                .for_each(|(y, &a)| *y += s * a.into());
        }
    }
}

/// The half-open row ranges of `column`'s nonzero entries, joined across
/// gaps of up to [`GAP`] zeros.
fn nonzero_runs(column: &[f64]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (r, &x) in column.iter().enumerate() {
        if x == 0.0 {
            continue;
        }
        match runs.last_mut() {
            Some(last) if r - last.1 <= GAP => last.1 = r + 1,
            _ => runs.push((r, r + 1)),
        }
    }
    runs
}

/// Lanes of the unrolled f64 sum: independent accumulators that the
/// compiler keeps in SIMD registers (a single one would serialise the adds).
const LANES: usize = 8;

/// sum a_i x_i in f64.
#[inline(always)]
fn dot<T: Copy + Into<f64>>(a: &[T], x: &[f64]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let main = a.len() - a.len() % LANES;
    for (a, x) in a[..main]
        .chunks_exact(LANES)
        .zip(x[..main].chunks_exact(LANES))
    {
        for k in 0..LANES {
            acc[k] += a[k].into() * x[k];
        }
    }
    let tail: f64 = a[main..]
        .iter()
        .zip(&x[main..])
        .map(|(&a, x)| a.into() * x)
        .sum();
    acc.iter().sum::<f64>() + tail
}

/// `v` as float32 if it round-trips exactly.
fn exact_f32(v: f64) -> Option<f32> {
    let s = v as f32;
    (f64::from(s) == v).then_some(s)
}

/// The flat (C, H, W) indices of a (C, H, W) space in (H, W, C) order.
fn hwc_order([c, h, w]: [usize; 3]) -> Vec<usize> {
    let plane = h * w;
    (0..plane)
        .flat_map(|p| (0..c).map(move |ch| ch * plane + p))
        .collect()
}
