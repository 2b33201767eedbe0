//! Differentiable convolution, max pooling and batch norm for training on
//! the CPU, each one candle graph node with a hand-written backward pass.
//!
//! candle's CPU backward pass of `conv2d` uses a direct (slow) transposed
//! convolution, and its `max_pool2d` has no backward pass when the kernel
//! differs from the stride (ResNet's 3x3/2 pool). Here a convolution is
//! `im2col` followed by a matrix product, so that both passes run on faer's
//! multi-threaded GEMM:
//!
//! y[b, o, p] = sum_k W[o, k] * cols[b, p, k],
//! cols[b, p, (c, dy, dx)] = x[b, c, s*py + dy - pad, s*px + dx - pad] (0 outside),
//!
//! and the backward pass of `im2col` is `col2im`, the adjoint that adds every
//! column entry back to the input pixel it was copied from.
//!
//! Max pooling pads with -inf (PyTorch); its gradient goes to the first
//! maximum of each window in row-major order (PyTorch's CPU tie rule).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
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
    fn source(&self, o: usize, d: usize, len: usize) -> Option<usize> {
        (o * self.stride + d)
            .checked_sub(self.padding)
            .filter(|&i| i < len)
    }
}

fn contiguous_f32<'a>(
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

fn dims4(layout: &Layout, op: &str) -> candle_core::Result<[usize; 4]> {
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

/// Max pooling with -inf padding: (B, C, H, W) -> (B, C, Ho, Wo).
#[derive(Debug, Clone, Copy)]
pub struct MaxPool(pub Window);

impl MaxPool {
    /// Index (within one channel plane) of the first maximum of window (py, px).
    fn argmax(&self, plane: &[f32], h: usize, w: usize, py: usize, px: usize) -> usize {
        let win = self.0;
        let mut best = (usize::MAX, f32::NEG_INFINITY);
        for dy in 0..win.kernel {
            let Some(iy) = win.source(py, dy, h) else {
                continue;
            };
            for dx in 0..win.kernel {
                if let Some(ix) = win.source(px, dx, w) {
                    let v = plane[iy * w + ix];
                    if best.0 == usize::MAX || v > best.1 || v.is_nan() {
                        best = (iy * w + ix, v);
                    }
                }
            }
        }
        best.0
    }

    fn map_planes<T: Send>(
        &self,
        x: &[f32],
        [b, c, h, w]: [usize; 4],
        f: impl Fn(&[f32], usize, usize, usize) -> T + Sync,
    ) -> Vec<T> {
        let (ho, wo) = (self.0.out_len(h), self.0.out_len(w));
        (0..b * c)
            .into_par_iter()
            .flat_map_iter(|p| {
                let plane = &x[p * h * w..(p + 1) * h * w];
                let f = &f;
                (0..ho * wo).map(move |o| f(plane, p, o / wo, o % wo))
            })
            .collect()
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "max-pool")?;
        let dims @ [b, c, h, w] = dims4(layout, "max-pool")?;
        if self.0.kernel <= self.0.padding || h + 2 * self.0.padding < self.0.kernel {
            candle_core::bail!("max-pool: window {:?} does not fit a {h}x{w} map", self.0);
        }
        let out = self.map_planes(x, dims, |plane, _, py, px| {
            plane[self.argmax(plane, h, w, py, px)]
        });
        Ok((
            CpuStorage::F32(out),
            Shape::from((b, c, self.0.out_len(h), self.0.out_len(w))),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let x = arg.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let targets = self.map_planes(&x, [b, c, h, w], |plane, p, py, px| {
            p * h * w + self.argmax(plane, h, w, py, px)
        });
        let mut grad = vec![0f32; b * c * h * w];
        for (&t, &gv) in targets.iter().zip(&g) {
            grad[t] += gv;
        }
        Ok(Some(Tensor::from_vec(grad, (b, c, h, w), arg.device())?))
    }
}

/// ResNet's stem pool: 3x3, stride 2, padding 1.
pub fn max_pool_3x3_s2(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool(Window {
        kernel: 3,
        stride: 2,
        padding: 1,
    }))
}

/// y = max(x, 0), and with `residual` y = max(x + r, 0) (a block's output);
/// one graph node whose backward pass is dx = dr = dy [y > 0] in one pass
/// (PyTorch's rule, zero gradient at 0; candle's composed ReLU backward
/// passes it at 0 and makes four tensor-sized temporaries).
#[derive(Debug, Clone, Copy)]
struct Relu;

impl Relu {
    fn forward(x: &[f32], residual: Option<&[f32]>) -> Vec<f32> {
        match residual {
            Some(r) => x.par_iter().zip(r).map(|(x, r)| (x + r).max(0.0)).collect(),
            None => x.par_iter().map(|x| x.max(0.0)).collect(),
        }
    }

    /// dy [y > 0], as a tensor of `y`'s shape.
    fn backward(y: &Tensor, dy: &Tensor) -> candle_core::Result<Tensor> {
        let dx = with_values(y, |yv| {
            with_values(dy, |dyv| {
                yv.par_iter()
                    .zip(dyv)
                    .map(|(&y, &g)| if y > 0.0 { g } else { 0.0 })
                    .collect::<Vec<f32>>()
            })
        })??;
        Tensor::from_vec(dx, y.shape(), y.device())
    }
}

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, "relu")?;
        Ok((CpuStorage::F32(Self::forward(x, None)), xl.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(Self::backward(y, dy)?))
    }
}

impl CustomOp2 for Relu {
    fn name(&self) -> &'static str {
        "add-relu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if xl.shape() != rl.shape() {
            candle_core::bail!("add-relu: shapes {:?} and {:?}", xl.dims(), rl.dims());
        }
        let x = contiguous_f32(xs, xl, "add-relu")?;
        let r = contiguous_f32(rs, rl, "add-relu")?;
        Ok((
            CpuStorage::F32(Self::forward(x, Some(r))),
            xl.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _r: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = Self::backward(y, dy)?;
        Ok((Some(dx.clone()), Some(dx)))
    }
}

/// max(x, 0).
pub fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

/// max(x + residual, 0).
pub fn add_relu(x: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&residual.contiguous()?, Relu)
}

/// Training-mode batch normalisation of (B, C, H, W) values, fused
/// ([`crate::train::net`] module docs give the layer). With n = B*H*W values
/// of channel c, mu and sigma2 their mean and biased variance (accumulated in
/// f64), inv_std = 1 / sqrt(sigma2 + eps) and xhat = (x - mu) inv_std:
///
/// y = gamma xhat + beta,
///
/// and the backward pass is the closed form of the gradient through mu and
/// sigma2 (upstream gradient dy):
///
/// dbeta = sum dy, dgamma = sum dy xhat,
/// dx = gamma inv_std (dy - dbeta / n - xhat dgamma / n).
///
/// One pass per sum and one per output, parallel over channels and planes,
/// instead of the dozen tensor-sized temporaries of the composed candle ops.
#[derive(Debug, Clone)]
struct BatchNorm {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// Sum of `f(i)` over the flat indices i of channel `ci` of a (B, C, H, W) array, in f64.
fn channel_sum(&[b, c, h, w]: &[usize; 4], ci: usize, f: impl Fn(usize) -> f64) -> f64 {
    let hw = h * w;
    (0..b)
        .map(|bi| {
            let start = (bi * c + ci) * hw;
            (start..start + hw).map(&f).sum::<f64>()
        })
        .sum()
}

/// A (B, C, H, W) array whose value at flat index i of channel c is `f(c, i)`.
fn map_channels(&[b, c, h, w]: &[usize; 4], f: impl Fn(usize, usize) -> f32 + Sync) -> Vec<f32> {
    let hw = h * w;
    let mut out = vec![0f32; b * c * hw];
    out.par_chunks_mut(hw).enumerate().for_each(|(p, plane)| {
        for (j, v) in plane.iter_mut().enumerate() {
            *v = f(p % c, p * hw + j);
        }
    });
    out
}

/// The values of a CPU f32 tensor, borrowed (copied first only if strided).
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => Ok(f(contiguous_f32(cpu, layout, "trainer op")?)),
        _ => candle_core::bail!("the trainer runs on the CPU only"),
    }
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "batch-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        gamma: &CpuStorage,
        lg: &Layout,
        beta: &CpuStorage,
        lb: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = dims4(lx, "batch-norm")?;
        let x = contiguous_f32(x, lx, "batch-norm")?;
        let gamma = contiguous_f32(gamma, lg, "batch-norm")?;
        let beta = contiguous_f32(beta, lb, "batch-norm")?;
        let scale: Vec<f32> = (0..dims[1]).map(|c| gamma[c] * self.inv_std[c]).collect();
        let y = map_channels(&dims, |c, i| (x[i] - self.mean[c]) * scale[c] + beta[c]);
        Ok((CpuStorage::F32(y), Shape::from(lx.dims())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let dims = [b, c, h, w];
        let n = (b * h * w) as f64;
        let gamma = gamma.to_vec1::<f32>()?;
        let (dx, dgamma, dbeta) = with_values(x, |x| {
            with_values(grad_res, |dy| {
                let xhat = |ch: usize, i: usize| (x[i] - self.mean[ch]) * self.inv_std[ch];
                let sums: Vec<(f64, f64)> = (0..c)
                    .into_par_iter()
                    .map(|ch| {
                        let dbeta = channel_sum(&dims, ch, |i| f64::from(dy[i]));
                        let dgamma = channel_sum(&dims, ch, |i| f64::from(dy[i] * xhat(ch, i)));
                        (dbeta, dgamma)
                    })
                    .collect();
                let dx = map_channels(&dims, |ch, i| {
                    let (sb, sg) = sums[ch];
                    gamma[ch]
                        * self.inv_std[ch]
                        * (dy[i] - (sb / n) as f32 - xhat(ch, i) * (sg / n) as f32)
                });
                let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
                let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
                (dx, dgamma, dbeta)
            })
        })??;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, c, h, w), device)?),
            Some(Tensor::from_vec(dgamma, c, device)?),
            Some(Tensor::from_vec(dbeta, c, device)?),
        ))
    }
}

/// Training-mode batch norm of `x` (B, C, H, W) with per-channel `gamma` and
/// `beta` (C): the output, and the batch mean and biased variance per channel.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> candle_core::Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let (b, c, h, w) = x.dims4()?;
    let dims = [b, c, h, w];
    let n = (b * h * w) as f64;
    let moments: Vec<(f64, f64)> = with_values(x, |x| {
        (0..c)
            .into_par_iter()
            .map(|ch| {
                let mean = channel_sum(&dims, ch, |i| f64::from(x[i])) / n;
                let var = channel_sum(&dims, ch, |i| (f64::from(x[i]) - mean).powi(2)) / n;
                (mean, var)
            })
            .collect()
    })?;
    let mean: Vec<f32> = moments.iter().map(|m| m.0 as f32).collect();
    let var: Vec<f32> = moments.iter().map(|m| m.1 as f32).collect();
    let inv_std = moments
        .iter()
        .map(|m| (1.0 / (m.1 + eps).sqrt()) as f32)
        .collect();
    let op = BatchNorm {
        mean: mean.clone(),
        inv_std,
    };
    let y = x.contiguous()?.apply_op3(gamma, beta, op)?;
    Ok((y, mean, var))
}
