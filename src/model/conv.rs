//! Convolution as im2col followed by one GEMM over the whole batch, as a
//! single differentiable candle op: the forward pass of the analysis and its
//! JVPs (float32, [`crate::model::Conv2d::linear_part`]) and the trainer's
//! forward and backward passes run on it.
//!
//! y[b, o, p] = sum_k W[o, k] * cols[b, p, k],
//! cols[b, p, (c, dy, dx)] = x[b, c, s*py + dy - pad, s*px + dx - pad] (0 outside),
//!
//! and the backward pass of `im2col` is `col2im`, the adjoint that adds every
//! column entry back to the input pixel it was copied from. candle's own CPU
//! `conv2d` runs one small GEMM per image: on a batch of tangents through a
//! 2 x 2 or 4 x 4 map (a ResNet's last stages at 32-64 px) it is about twice
//! as slow, and its backward pass is a direct transposed convolution.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use faer::{MatMut, MatRef};
use rayon::prelude::*;

/// Window geometry shared by convolution and pooling (square kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// Output length for input length `len`: (len + 2 pad - k) / s + 1.
    pub fn out_len(&self, len: usize) -> usize {
        (len + 2 * self.padding).saturating_sub(self.kernel) / self.stride + 1
    }

    /// Every tap of the window at output position (py, px) of a (C, H, W)
    /// image that falls inside it: `f(col, pixel)` with col = (c k + dy) k + dx
    /// the entry of the im2col row and pixel = (c H + iy) W + ix the image
    /// value it copies (padding taps are skipped). [`im2col`] gathers along
    /// these pairs and [`col2im`], its adjoint, scatter-adds along them.
    fn taps(&self, [c, h, w]: [usize; 3], py: usize, px: usize, mut f: impl FnMut(usize, usize)) {
        let k = self.kernel;
        for ci in 0..c {
            for dy in 0..k {
                let Some(iy) = self.source(py, dy, h) else {
                    continue;
                };
                for dx in 0..k {
                    if let Some(ix) = self.source(px, dx, w) {
                        f((ci * k + dy) * k + dx, (ci * h + iy) * w + ix);
                    }
                }
            }
        }
    }

    /// Input coordinate of output position `o` and kernel offset `d`, if inside.
    pub(crate) fn source(&self, o: usize, d: usize, len: usize) -> Option<usize> {
        (o * self.stride + d)
            .checked_sub(self.padding)
            .filter(|&i| i < len)
    }
}

pub(crate) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

pub(crate) fn dims4(layout: &Layout, op: &str) -> candle_core::Result<[usize; 4]> {
    match layout.dims() {
        &[b, c, h, w] => Ok([b, c, h, w]),
        d => candle_core::bail!("{op}: expected a (B, C, H, W) tensor, got {d:?}"),
    }
}

/// The rows of `im2col` of a (B, C, H, W) image batch: (B Ho Wo) x (C k k),
/// row (b, py, px) holding window (py, px) of image b.
fn im2col(x: &[f32], [b, c, h, w]: [usize; 4], win: Window) -> Vec<f32> {
    let (ho, wo, k) = (win.out_len(h), win.out_len(w), win.kernel);
    let row = c * k * k;
    let mut out = vec![0f32; b * ho * wo * row];
    out.par_chunks_mut(ho * wo * row)
        .enumerate()
        .for_each(|(bi, dst)| {
            let img = &x[bi * c * h * w..(bi + 1) * c * h * w];
            for py in 0..ho {
                for px in 0..wo {
                    let cols = &mut dst[(py * wo + px) * row..(py * wo + px + 1) * row];
                    win.taps([c, h, w], py, px, |col, pixel| cols[col] = img[pixel]);
                }
            }
        });
    out
}

/// `col2im`, the adjoint of [`im2col`]: every entry of `cols` added back to
/// the pixel of the (B, C, H, W) batch it was copied from.
fn col2im(cols: &[f32], [b, c, h, w]: [usize; 4], win: Window) -> Vec<f32> {
    let (ho, wo, k) = (win.out_len(h), win.out_len(w), win.kernel);
    let row = c * k * k;
    let mut out = vec![0f32; b * c * h * w];
    out.par_chunks_mut(c * h * w)
        .enumerate()
        .for_each(|(bi, img)| {
            let src = &cols[bi * ho * wo * row..(bi + 1) * ho * wo * row];
            for py in 0..ho {
                for px in 0..wo {
                    let cols = &src[(py * wo + px) * row..(py * wo + px + 1) * row];
                    win.taps([c, h, w], py, px, |col, pixel| img[pixel] += cols[col]);
                }
            }
        });
    out
}

/// Transpose each of the `blocks` consecutive row-major `rows` x `cols`
/// matrices of `src`: (B, R, C) -> (B, C, R).
fn transpose_blocks(src: &[f32], blocks: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; blocks * rows * cols];
    out.par_chunks_mut(rows * cols)
        .zip(src.par_chunks(rows * cols))
        .for_each(|(dst, src)| {
            for (r, line) in src.chunks_exact(cols).enumerate() {
                for (c, &v) in line.iter().enumerate() {
                    dst[c * rows + r] = v;
                }
            }
        });
    out
}

/// dst (m x n, row-major) = lhs (m x k) * rhs (k x n), with faer's GEMM on
/// the threads of the current rayon pool.
fn gemm(dst: &mut [f32], [m, n]: [usize; 2], lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    faer::linalg::matmul::matmul(
        MatMut::from_row_major_slice_mut(dst, m, n),
        faer::Accum::Replace,
        lhs,
        rhs,
        1.0,
        faer::Par::rayon(0),
    );
}

/// 2-D convolution without bias, as one differentiable op: with the batch
/// x (B, C, H, W), the weight W (O, C, k, k) seen as O x K (K = C k k), the
/// im2col rows `cols` ((B P) x K, P = Ho Wo) and N = B P,
///
/// Y' = cols W^T (N x O, one GEMM over the whole batch), y[b, o, p] = Y'[(b, p), o];
///
/// and with G'[(b, p), o] = dy[b, o, p] the backward pass is
///
/// dW = G'^T cols, dx = col2im(G' W).
///
/// A composition of candle ops (im2col, reshapes, transposes, matmul) is
/// eight graph nodes, and candle's backward pass zero-fills and accumulates a
/// gradient for each, several of them k^2 times the size of x; this op is
/// one node. `cols` is recomputed in the backward pass rather than kept.
#[derive(Debug, Clone, Copy)]
struct Conv2d(Window);

/// The sizes of a convolution: input (B, C, H, W), O outputs, K = C k k, P = Ho Wo.
struct ConvShape {
    input: [usize; 4],
    outputs: usize,
    k: usize,
    p: usize,
    out: (usize, usize, usize, usize),
}

impl Conv2d {
    fn shape(&self, x: &Layout, w: &Layout) -> candle_core::Result<ConvShape> {
        let input @ [b, c, h, wd] = dims4(x, "conv2d")?;
        let [o, wc, kh, kw] = dims4(w, "conv2d")?;
        let k = self.0.kernel;
        if (wc, kh, kw) != (c, k, k) || h + 2 * self.0.padding < k || wd + 2 * self.0.padding < k {
            candle_core::bail!("conv2d: weight {:?} does not fit input {input:?}", w.dims());
        }
        let (ho, wo) = (self.0.out_len(h), self.0.out_len(wd));
        Ok(ConvShape {
            input,
            outputs: o,
            k: c * k * k,
            p: ho * wo,
            out: (b, o, ho, wo),
        })
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = self.shape(xl, wl)?;
        let x = contiguous_f32(xs, xl, "conv2d")?;
        let w = contiguous_f32(ws, wl, "conv2d")?;
        let (b, o, n) = (s.input[0], s.outputs, s.input[0] * s.p);
        let cols = im2col(x, s.input, self.0);
        let mut yt = vec![0f32; n * o];
        let lhs = MatRef::from_row_major_slice(&cols, n, s.k);
        gemm(
            &mut yt,
            [n, o],
            lhs,
            MatRef::from_column_major_slice(w, s.k, o),
        );
        let y = transpose_blocks(&yt, b, s.p, o);
        Ok((CpuStorage::F32(y), Shape::from(s.out)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        let s = self.shape(x.layout(), w.layout())?;
        let (b, o, n) = (s.input[0], s.outputs, s.input[0] * s.p);
        let (dx, dw) = with_values(&x, |xv| {
            with_values(&w, |wv| {
                with_values(dy, |dyv| {
                    let gt = transpose_blocks(dyv, b, o, s.p);
                    let cols = im2col(xv, s.input, self.0);
                    let mut dw = vec![0f32; o * s.k];
                    let gt_t = MatRef::from_column_major_slice(&gt, o, n);
                    gemm(
                        &mut dw,
                        [o, s.k],
                        gt_t,
                        MatRef::from_row_major_slice(&cols, n, s.k),
                    );
                    let mut dcols = cols;
                    let g = MatRef::from_row_major_slice(&gt, n, o);
                    gemm(
                        &mut dcols,
                        [n, s.k],
                        g,
                        MatRef::from_row_major_slice(wv, o, s.k),
                    );
                    (col2im(&dcols, s.input, self.0), dw)
                })
            })
        })???;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
        ))
    }
}

/// 2-D convolution without bias: `x` (B, C, H, W), `weight` (O, C, k, k) -> (B, O, Ho, Wo).
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let kernel = weight.dims4()?.2;
    x.contiguous()?.apply_op2(
        &weight.contiguous()?,
        Conv2d(Window {
            kernel,
            stride,
            padding,
        }),
    )
}

/// [`conv2d`] in `groups` groups: the input channels and the weight's
/// output channels split into `groups` equal parts, each convolved alone
/// and concatenated (ResNeXt); one [`conv2d`] node for `groups` = 1.
pub fn conv2d_grouped(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
) -> candle_core::Result<Tensor> {
    if groups <= 1 {
        return conv2d(x, weight, stride, padding);
    }
    let (c, o) = (x.dims4()?.1, weight.dims4()?.0);
    if c % groups != 0 || o % groups != 0 {
        candle_core::bail!(
            "conv2d: {c} input and {o} output channels do not split into {groups} groups"
        );
    }
    let (cg, og) = (c / groups, o / groups);
    let parts = (0..groups)
        .map(|g| {
            conv2d(
                &x.narrow(1, g * cg, cg)?,
                &weight.narrow(0, g * og, og)?,
                stride,
                padding,
            )
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
}

/// The values of a CPU f32 tensor, borrowed (copied first only if strided).
pub(crate) fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => Ok(f(contiguous_f32(cpu, layout, "trainer op")?)),
        _ => candle_core::bail!("the trainer runs on the CPU only"),
    }
}
