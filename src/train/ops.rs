//! Differentiable max pooling, ReLU and batch norm for training on the CPU,
//! each one candle graph node with a hand-written backward pass; the
//! convolution is [`crate::model::conv`] (re-exported here).
//!
//! candle's `max_pool2d` has no backward pass when the kernel differs from
//! the stride (ResNet's 3x3/2 pool). Max pooling pads with -inf (PyTorch);
//! its gradient goes to the first maximum of each window in row-major order
//! (PyTorch's CPU tie rule).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::model::conv::{contiguous_f32, dims4, with_values};
pub use crate::model::conv::{conv2d, conv2d_grouped, Window};

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
