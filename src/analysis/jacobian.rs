//! Dense-in-footprint Jacobians assembled from batched JVPs by column colouring.
//!
//! A convolution chain is local: input position (c, h, w) influences only the
//! outputs in a window around (h, w) (its footprint, see
//! [`crate::model::geometry`]). Columns whose footprints are disjoint can be
//! recovered from one JVP with the sum of their unit tangents (a compressed
//! Jacobian). With colouring period P_h x P_w per channel, C_in * P_h * P_w
//! JVPs recover all n columns; e.g. 25 * C for two 3x3 convolutions.
//!
//! Column j is stored as a dense block over its footprint, C_out x |fp_h| x |fp_w|,
//! widened to f64 from the precision of the JVPs. Entries outside the footprint
//! are exact zeros.

use candle_core::{DType, Device, Tensor};
use faer::Mat;

use crate::error::{Error, Result};
use crate::model::geometry::{AxisFootprint, Interval};

/// Tangents per JVP batch: bounds memory (batch x n x 4 bytes) without losing speed.
pub const MAX_BATCH: usize = 256;

/// A linear map between (C, H, W) spaces given by a batched JVP.
pub struct LinearMap<'a> {
    pub in_shape: [usize; 3],
    pub out_shape: [usize; 3],
    /// Footprints along H and W.
    pub footprints: [AxisFootprint; 2],
    /// Applies the map to tangents (B, C_in, H_in, W_in) -> (B, C_out, H_out, W_out).
    pub apply: &'a dyn Fn(&Tensor) -> Result<Tensor>,
    /// The dtype `apply` works in (f32 for analysis, f64 for exactness tests).
    pub dtype: DType,
}

/// Whether `stored` footprint entries make a `rows` x `cols` matrix mostly
/// dense (at least half): then dense products (GEMM, GEMV) beat the
/// footprint storage and its coloured assembly.
pub fn mostly_dense(stored: usize, rows: usize, cols: usize) -> bool {
    2 * stored >= rows * cols
}

/// A Jacobian stored column by column over each column's footprint.
#[derive(Debug, Clone)]
pub struct FootprintJacobian {
    pub in_shape: [usize; 3],
    pub out_shape: [usize; 3],
    reach_h: Vec<Interval>,
    reach_w: Vec<Interval>,
    /// Start of column j's block in `values`.
    offsets: Vec<usize>,
    values: Vec<f64>,
}

impl FootprintJacobian {
    /// Assemble every column with C_in * P_h * P_w coloured JVPs, in batches.
    pub fn assemble(map: &LinearMap<'_>) -> Result<Self> {
        let mut jac = Self::zeros(map.in_shape, map.out_shape, &map.footprints);
        let colouring = Colouring::new(map);
        let colours: Vec<Colour> = colouring.colours().collect();
        for chunk in colours.chunks(MAX_BATCH) {
            let tangents = colouring.tangents(chunk)?.to_dtype(map.dtype)?;
            let image = (map.apply)(&tangents)?;
            let images = image
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            let out_len: usize = map.out_shape.iter().product();
            for (b, colour) in chunk.iter().enumerate() {
                let image = &images[b * out_len..(b + 1) * out_len];
                for col in colouring.members(*colour) {
                    jac.scatter_column(col, image);
                }
            }
        }
        jac.check_finite()?;
        Ok(jac)
    }

    /// The zero Jacobian (in_shape -> out_shape) with storage for these
    /// footprints.
    fn zeros(in_shape: [usize; 3], out_shape: [usize; 3], footprints: &[AxisFootprint; 2]) -> Self {
        let [c_in, h_in, w_in] = in_shape;
        let c_out = out_shape[0];
        let reach_h = footprints[0].reach.clone();
        let reach_w = footprints[1].reach.clone();
        let mut offsets = Vec::with_capacity(c_in * h_in * w_in + 1);
        offsets.push(0);
        for _ in 0..c_in {
            for rh in &reach_h {
                for rw in &reach_w {
                    let size = c_out * len(rh) * len(rw);
                    offsets.push(offsets.last().copied().unwrap_or(0) + size);
                }
            }
        }
        Self {
            in_shape,
            out_shape,
            reach_h,
            reach_w,
            values: vec![0.0; offsets.last().copied().unwrap_or(0)],
            offsets,
        }
    }

    /// The footprint storage of a dense matrix whose entries outside the
    /// footprints are zero (e.g. the product U V of a branch's factors).
    pub fn from_dense(
        in_shape: [usize; 3],
        out_shape: [usize; 3],
        footprints: &[AxisFootprint; 2],
        dense: faer::MatRef<'_, f64>,
    ) -> Result<Self> {
        let mut jac = Self::zeros(in_shape, out_shape, footprints);
        let mut values = std::mem::take(&mut jac.values);
        for col in 0..jac.n_cols() {
            let start = jac.offsets[col];
            jac.each_row(col, |k, row| values[start + k] = dense[(row, col)]);
        }
        jac.values = values;
        jac.check_finite()?;
        Ok(jac)
    }

    /// D (J + I) for a square Jacobian J and the 0/1 row mask D: the whole
    /// block's Jacobian D_out (J_F + I) of an identity-shortcut block from
    /// its branch's, without a second assembly (exact in f64, so its
    /// diagonal carries no float32 rounding of 1 + J_F[j, j]). `None` when
    /// some column's footprint does not hold its own row (no such block
    /// here: a stride-1 conv chain reaches its own position).
    pub fn masked_identity_plus(&self, row_mask: &[f64]) -> Option<Self> {
        if self.in_shape != self.out_shape {
            return None;
        }
        let mut out = self.clone();
        for col in 0..self.n_cols() {
            let start = self.offsets[col];
            let mut has_diagonal = false;
            self.each_row(col, |k, row| {
                if row == col {
                    out.values[start + k] += 1.0;
                    has_diagonal = true;
                }
                out.values[start + k] *= row_mask[row];
            });
            if !has_diagonal {
                return None;
            }
        }
        Some(out)
    }

    /// `Err(NonFinite)` when a JVP overflowed: no metric may come from a
    /// Jacobian with NaN or infinite entries.
    fn check_finite(&self) -> Result<()> {
        let Some(k) = self.values.iter().position(|v| !v.is_finite()) else {
            return Ok(());
        };
        let col = self.offsets.partition_point(|&o| o <= k) - 1;
        Err(Error::NonFinite(format!(
            "the Jacobian has {} non-finite entries, the first in column {col}: a JVP overflowed float32",
            self.values.iter().filter(|v| !v.is_finite()).count()
        )))
    }

    /// Copy column `col`'s footprint out of the image of its coloured tangent.
    fn scatter_column(&mut self, col: usize, image: &[f64]) {
        let start = self.offsets[col];
        let mut values = std::mem::take(&mut self.values);
        self.each_row(col, |k, row| values[start + k] = image[row]);
        self.values = values;
    }

    /// Call `f(k, row)` for the k-th stored entry of column `col` and its row,
    /// in storage order (output channel, h, w). Plain loops: this is the inner
    /// loop of every matrix-vector product.
    #[inline]
    fn each_row(&self, col: usize, mut f: impl FnMut(usize, usize)) {
        let [c_out, h_out, w_out] = self.out_shape;
        let (rh, rw) = self.reaches(col);
        let mut k = 0;
        for co in 0..c_out {
            for ho in rh.lo..=rh.hi {
                let row = (co * h_out + ho as usize) * w_out;
                for wo in rw.lo..=rw.hi {
                    f(k, row + wo as usize);
                    k += 1;
                }
            }
        }
    }

    fn reaches(&self, col: usize) -> (Interval, Interval) {
        let [_, h_in, w_in] = self.in_shape;
        let pos = col % (h_in * w_in);
        (self.reach_h[pos / w_in], self.reach_w[pos % w_in])
    }

    /// Entries stored (the footprints' total size).
    pub fn stored(&self) -> usize {
        self.values.len()
    }

    pub fn n_rows(&self) -> usize {
        self.out_shape.iter().product()
    }

    pub fn n_cols(&self) -> usize {
        self.in_shape.iter().product()
    }

    /// Visit the stored entries of column `col` as (row, value).
    #[inline]
    fn for_column(&self, col: usize, mut f: impl FnMut(usize, f64)) {
        let values = &self.values[self.offsets[col]..self.offsets[col + 1]];
        self.each_row(col, |k, row| f(row, values[k]));
    }

    /// y = J x (f64 accumulation).
    pub fn matvec(&self, x: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        for (col, &xj) in x.iter().enumerate() {
            if xj != 0.0 {
                self.for_column(col, |row, v| y[row] += v * xj);
            }
        }
    }

    /// x = J^T y (f64 accumulation).
    pub fn rmatvec(&self, y: &[f64], x: &mut [f64]) {
        for (col, xj) in x.iter_mut().enumerate() {
            let mut acc = 0.0;
            self.for_column(col, |row, v| acc += v * y[row]);
            *xj = acc;
        }
    }

    /// The dense f64 submatrix J[rows, cols].
    pub fn dense_submatrix(&self, rows: &[usize], cols: &[usize]) -> Mat<f64> {
        let mut position = vec![usize::MAX; self.n_rows()];
        for (i, &r) in rows.iter().enumerate() {
            position[r] = i;
        }
        let mut m = Mat::<f64>::zeros(rows.len(), cols.len());
        for (j, &col) in cols.iter().enumerate() {
            self.for_column(col, |row, v| {
                if position[row] != usize::MAX {
                    m[(position[row], j)] = v;
                }
            });
        }
        m
    }

    /// The whole Jacobian, dense, row-major, rounded to f32 (n x n f64 would
    /// need 2 GiB at n = 16384; the entries carry float32 accuracy anyway).
    pub fn to_dense_row_major(&self) -> Vec<f32> {
        let n_cols = self.n_cols();
        let mut out = vec![0.0f32; self.n_rows() * n_cols];
        for col in 0..n_cols {
            self.for_column(col, |row, v| out[row * n_cols + col] = v as f32);
        }
        out
    }

    /// Rows with at least one nonzero stored entry.
    pub fn nonzero_rows(&self) -> Vec<bool> {
        let mut nz = vec![false; self.n_rows()];
        for col in 0..self.n_cols() {
            self.for_column(col, |row, v| nz[row] |= v != 0.0);
        }
        nz
    }
}

fn len(iv: &Interval) -> usize {
    if iv.is_empty() {
        0
    } else {
        (iv.hi - iv.lo + 1) as usize
    }
}

/// One colour: a channel and residues of h and w modulo the periods.
#[derive(Debug, Clone, Copy)]
struct Colour {
    channel: usize,
    rh: usize,
    rw: usize,
}

/// The column partition: columns with equal channel and equal positions modulo
/// (P_h, P_w) have disjoint footprints and share a tangent.
struct Colouring {
    in_shape: [usize; 3],
    period_h: usize,
    period_w: usize,
}

impl Colouring {
    fn new(map: &LinearMap<'_>) -> Self {
        Self {
            in_shape: map.in_shape,
            period_h: map.footprints[0].colouring_period(),
            period_w: map.footprints[1].colouring_period(),
        }
    }

    fn colours(&self) -> impl Iterator<Item = Colour> + '_ {
        (0..self.in_shape[0]).flat_map(move |channel| {
            (0..self.period_h)
                .flat_map(move |rh| (0..self.period_w).map(move |rw| Colour { channel, rh, rw }))
        })
    }

    /// Flat input indices of the columns of one colour.
    fn members(&self, c: Colour) -> impl Iterator<Item = usize> + '_ {
        let [_, h_in, w_in] = self.in_shape;
        (c.rh..h_in).step_by(self.period_h).flat_map(move |h| {
            (c.rw..w_in)
                .step_by(self.period_w)
                .map(move |w| (c.channel * h_in + h) * w_in + w)
        })
    }

    /// The batch of coloured tangents: each the sum of its (selected) unit vectors.
    fn tangents(&self, chunk: &[Colour]) -> Result<Tensor> {
        let n: usize = self.in_shape.iter().product();
        let mut data = vec![0.0f32; chunk.len() * n];
        for (b, colour) in chunk.iter().enumerate() {
            for col in self.members(*colour) {
                data[b * n + col] = 1.0;
            }
        }
        let [c, h, w] = self.in_shape;
        Ok(Tensor::from_vec(
            data,
            (chunk.len(), c, h, w),
            &Device::Cpu,
        )?)
    }
}
