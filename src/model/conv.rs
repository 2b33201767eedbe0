//! Convolution as im2col followed by one GEMM over the whole batch, as a
//! single differentiable candle op: the forward pass of the analysis and its
//! JVPs (float32, [`crate::model::Conv2d::linear_part`]) and the trainer's
//! forward and backward passes run on it; the analysis' transposed
//! convolution (VJPs) shares its `col2im`.
//!
//! cols[(c, dy, dx), (b, py, px)] = x[b, c, s*py + dy - pad, s*px + dx - pad] (0 outside),
//! y[b, o, p] = sum_k W[o, k] * cols[k, (b, p)],
//!
//! and the backward pass of `im2col` is `col2im`, the adjoint that adds every
//! column entry back to the input pixel it was copied from. Both walk a
//! tap's valid output range as contiguous runs (`Window::valid`), never
//! the padding. candle's own CPU `conv2d` runs one small GEMM per image: on
//! a batch of tangents through a 2 x 2 or 4 x 4 map (a ResNet's last stages
//! at 32-64 px) it is about twice as slow, and its backward pass is a direct
//! transposed convolution.

use std::borrow::Cow;

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

    /// The output positions o < `out_len` whose tap `d` reads an input
    /// position, o s + d - p in 0..`in_len`: one contiguous range.
    pub(crate) fn valid(&self, d: usize, in_len: usize, out_len: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride, self.padding);
        let lo = p.saturating_sub(d).div_ceil(s);
        let hi = if in_len + p > d {
            ((in_len + p - d - 1) / s + 1).min(out_len)
        } else {
            0
        };
        lo..hi.max(lo)
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

/// The geometry of one im2col: a (B, C, H, W) batch, its window and its
/// output map (Ho, Wo).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Im2Col {
    pub input: [usize; 4],
    pub window: Window,
    pub out_hw: [usize; 2],
}

/// One output row's run of a tap: output positions `out..out + len` of the
/// map (flat yo Wo + xo) read input pixels `input + i s`, i < len, of the
/// plane (flat iy W + ix).
#[derive(Debug, Clone, Copy)]
struct Run {
    out: usize,
    input: usize,
    len: usize,
}

impl Im2Col {
    pub fn new(input: [usize; 4], window: Window) -> Self {
        let [_, _, h, w] = input;
        Self {
            input,
            window,
            out_hw: [window.out_len(h), window.out_len(w)],
        }
    }

    /// For each tap (dy, dx), in row-major order, its runs: one per output
    /// row whose tap row falls inside the image, padding never visited.
    fn runs(&self) -> Vec<Vec<Run>> {
        let [_, _, h, w] = self.input;
        let [ho, wo] = self.out_hw;
        let Window {
            kernel: k,
            stride: s,
            padding: p,
        } = self.window;
        let taps = (0..k).flat_map(|dy| (0..k).map(move |dx| (dy, dx)));
        taps.map(|(dy, dx)| {
            let xs = self.window.valid(dx, w, wo);
            self.window
                .valid(dy, h, ho)
                .filter(|_| !xs.is_empty())
                .map(|yo| Run {
                    out: yo * wo + xs.start,
                    input: (yo * s + dy - p) * w + xs.start * s + dx - p,
                    len: xs.len(),
                })
                .collect()
        })
        .collect()
    }
}

/// im2col of the (B, C, H, W) batch `x`: (C k k) x (B Ho Wo), row-major,
/// row (c, dy, dx) and column (b, yo, xo).
pub(crate) fn im2col<T: candle_core::WithDType>(x: &[T], geometry: Im2Col) -> Vec<T> {
    let [b, c, h, w] = geometry.input;
    let [ho, wo] = geometry.out_hw;
    let (k2, s) = (geometry.window.kernel.pow(2), geometry.window.stride);
    let runs = geometry.runs();
    let mut out = vec![T::zero(); c * k2 * b * ho * wo];
    out.par_chunks_mut(b * ho * wo)
        .enumerate()
        .for_each(|(row, segment)| {
            let (ci, tap) = (row / k2, row % k2);
            for (bi, seg) in segment.chunks_mut(ho * wo).enumerate() {
                let plane = &x[(bi * c + ci) * h * w..][..h * w];
                for r in &runs[tap] {
                    let dst = &mut seg[r.out..r.out + r.len];
                    if s == 1 {
                        dst.copy_from_slice(&plane[r.input..r.input + r.len]);
                    } else {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = plane[r.input + i * s];
                        }
                    }
                }
            }
        });
    out
}

/// `col2im`, the adjoint of [`im2col`]: every entry of `cols`
/// ((C k k) x (B Ho Wo), row-major) added back to the pixel of the
/// (B, C, H, W) batch it was copied from, padding taps dropped.
pub(crate) fn col2im<T: candle_core::WithDType>(cols: &[T], geometry: Im2Col) -> Vec<T> {
    let [b, c, h, w] = geometry.input;
    let [ho, wo] = geometry.out_hw;
    let (k2, s) = (geometry.window.kernel.pow(2), geometry.window.stride);
    let runs = geometry.runs();
    let mut out = vec![T::zero(); b * c * h * w];
    // One task per (image, channel) plane: the scatter-adds of its k^2 rows.
    out.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(plane, img)| {
            let (bi, ci) = (plane / c, plane % c);
            for (tap, tap_runs) in runs.iter().enumerate() {
                let seg = &cols[((ci * k2 + tap) * b + bi) * ho * wo..][..ho * wo];
                for r in tap_runs {
                    let src = &seg[r.out..r.out + r.len];
                    if s == 1 {
                        let dst = &mut img[r.input..r.input + r.len];
                        dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
                    } else {
                        for (i, &v) in src.iter().enumerate() {
                            img[r.input + i * s] += v;
                        }
                    }
                }
            }
        });
    out
}

/// (A, B, P) -> (B, A, P) for runs of P contiguous values: the batch and
/// channel axes of a convolution's output swapped. With A = 1 or B = 1 the
/// layout is the same and `src` is returned as it is (no copy).
fn swap_outer(src: Cow<'_, [f32]>, [a, b, p]: [usize; 3]) -> Cow<'_, [f32]> {
    if a == 1 || b == 1 {
        return src;
    }
    let mut out = vec![0f32; a * b * p];
    out.par_chunks_mut(a * p).enumerate().for_each(|(bi, dst)| {
        for (ai, run) in dst.chunks_exact_mut(p).enumerate() {
            run.copy_from_slice(&src[(ai * b + bi) * p..][..p]);
        }
    });
    Cow::Owned(out)
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
/// columns `cols` = [`im2col`](x) (K x N, N = B P, P = Ho Wo),
///
/// Y = W cols (O x N, one GEMM over the whole batch), y[b, o, p] = Y[o, (b, p)];
///
/// and with G[o, (b, p)] = dy[b, o, p] the backward pass is
///
/// dW = G cols^T, dx = col2im(W^T G).
///
/// A composition of candle ops (im2col, reshapes, transposes, matmul) is
/// eight graph nodes, and candle's backward pass zero-fills and accumulates a
/// gradient for each, several of them k^2 times the size of x; this op is
/// one node. `cols` is recomputed in the backward pass rather than kept.
#[derive(Debug, Clone, Copy)]
struct Conv2d(Window);

/// The sizes of a convolution: its im2col, O outputs, K = C k k, P = Ho Wo.
struct ConvShape {
    geometry: Im2Col,
    outputs: usize,
    k: usize,
    p: usize,
}

impl ConvShape {
    fn batch(&self) -> usize {
        self.geometry.input[0]
    }
}

impl Conv2d {
    fn shape(&self, x: &Layout, w: &Layout) -> candle_core::Result<ConvShape> {
        let input @ [_, c, h, wd] = dims4(x, "conv2d")?;
        let [o, wc, kh, kw] = dims4(w, "conv2d")?;
        let k = self.0.kernel;
        if (wc, kh, kw) != (c, k, k) || h + 2 * self.0.padding < k || wd + 2 * self.0.padding < k {
            candle_core::bail!("conv2d: weight {:?} does not fit input {input:?}", w.dims());
        }
        let geometry = Im2Col::new(input, self.0);
        let [ho, wo] = geometry.out_hw;
        Ok(ConvShape {
            geometry,
            outputs: o,
            k: c * k * k,
            p: ho * wo,
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
        let (b, o) = (s.batch(), s.outputs);
        let n = b * s.p;
        let cols = im2col(x, s.geometry);
        let mut y = vec![0f32; o * n];
        gemm(
            &mut y,
            [o, n],
            MatRef::from_row_major_slice(w, o, s.k),
            MatRef::from_row_major_slice(&cols, s.k, n),
        );
        let [ho, wo] = s.geometry.out_hw;
        Ok((
            CpuStorage::F32(swap_outer(Cow::Owned(y), [o, b, s.p]).into_owned()),
            Shape::from((b, o, ho, wo)),
        ))
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
        let (b, o) = (s.batch(), s.outputs);
        let n = b * s.p;
        let (dx, dw) = with_values(&x, |xv| {
            with_values(&w, |wv| {
                with_values(dy, |dyv| {
                    let g = swap_outer(Cow::Borrowed(dyv), [b, o, s.p]);
                    let g = MatRef::from_row_major_slice(&g, o, n);
                    let cols = im2col(xv, s.geometry);
                    let mut dw = vec![0f32; o * s.k];
                    gemm(
                        &mut dw,
                        [o, s.k],
                        g,
                        MatRef::from_row_major_slice(&cols, s.k, n).transpose(),
                    );
                    let mut dcols = cols;
                    gemm(
                        &mut dcols,
                        [s.k, n],
                        MatRef::from_row_major_slice(wv, o, s.k).transpose(),
                        g,
                    );
                    (col2im(&dcols, s.geometry), dw)
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
