//! The convolution adjoint (`Conv2d::linear_adjoint`: one GEMM with the
//! transposed kernel, then col2im) against the formulations it was chosen
//! over, on the same inputs:
//! - candle's `Tensor::conv_transpose2d` (groups by splitting the channels,
//!   PyTorch's output padding computed from the input size);
//! - zero insertion (dilate the cotangent by the stride) then `conv2d` with
//!   the kernel transposed in its channel axes and flipped spatially,
//!   padding k - 1 - p;
//! - candle's reverse mode through `linear_part` (what `tests/golden.rs`
//!   uses as the reference).
//!
//! `conv_adjoint_timings` (ignored; `cargo test --release --test adjoint --
//! --ignored --nocapture`) times them at ImageNet sizes, batch 1, float32.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use resnet_stiffness::model::layers::Conv2d;
use resnet_stiffness::model::random::{self, Masks, Rng};
use resnet_stiffness::model::{JacobianKind, Shortcut};

/// `conv` with random weights.
fn conv(rng: &mut Rng, c_in: usize, c_out: usize, k: usize, s: usize, groups: usize) -> Conv2d {
    let scale = 1.0 / ((c_in / groups * k * k) as f64).sqrt();
    Conv2d {
        weight: rng.tensor(&[c_out, c_in / groups, k, k], scale),
        bias: None,
        stride: s,
        padding: k / 2,
        groups,
    }
}

/// W^T y by candle's `conv_transpose2d`, one call per group.
fn by_conv_transpose2d(conv: &Conv2d, y: &Tensor, hw: [usize; 2]) -> Tensor {
    let (k, s, p, g) = (conv.kernel_size(), conv.stride, conv.padding, conv.groups);
    let (_, _, oh, ow) = y.dims4().unwrap();
    // Transposed-convolution output length without output padding.
    let base = |o: usize| (o - 1) * s + k - 2 * p;
    // One output padding for both axes: the larger, then cut the other.
    let op = (hw[0] - base(oh)).max(hw[1] - base(ow));
    let ys = y.chunk(g, 1).unwrap();
    let ws = conv.weight.chunk(g, 0).unwrap();
    let parts: Vec<Tensor> = ys
        .iter()
        .zip(&ws)
        .map(|(y, w)| y.conv_transpose2d(w, p, op, s, 1).unwrap())
        .collect();
    let x = if g == 1 {
        parts.into_iter().next().unwrap()
    } else {
        Tensor::cat(&parts, 1).unwrap()
    };
    x.narrow(2, 0, hw[0]).unwrap().narrow(3, 0, hw[1]).unwrap()
}

/// `t` with s - 1 zeros after every element along `dim`, cut to `len`.
fn dilate(t: &Tensor, dim: usize, s: usize, len: usize) -> Tensor {
    let z = t.zeros_like().unwrap();
    let mut parts = vec![t.clone()];
    parts.extend(std::iter::repeat_n(z, s - 1));
    let mut dims = t.dims().to_vec();
    dims[dim] *= s;
    let x = Tensor::stack(&parts, dim + 1)
        .unwrap()
        .reshape(dims)
        .unwrap();
    x.narrow(dim, 0, len).unwrap()
}

/// W^T y by zero insertion and one stride-1 `conv2d` with the flipped,
/// channel-transposed kernel.
fn by_zero_insertion(conv: &Conv2d, y: &Tensor, hw: [usize; 2]) -> Tensor {
    let (k, s, p, g) = (conv.kernel_size(), conv.stride, conv.padding, conv.groups);
    // Length of the stride-1 convolution's output, onto which y scatters.
    let full = |len: usize| len + 2 * p - k + 1;
    let y = if s == 1 {
        y.clone()
    } else {
        dilate(&dilate(y, 2, s, full(hw[0])), 3, s, full(hw[1]))
    };
    let rev: Vec<u32> = (0..k as u32).rev().collect();
    let rev = Tensor::from_vec(rev, k, y.device()).unwrap();
    let w = conv
        .weight
        .index_select(&rev, 2)
        .unwrap()
        .index_select(&rev, 3)
        .unwrap();
    let (c_out, c_in_g, _, _) = w.dims4().unwrap();
    let w = w
        .reshape((g, c_out / g, c_in_g, k, k))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((g * c_in_g, c_out / g, k, k))
        .unwrap();
    y.conv2d(&w, k - 1 - p, 1, 1, g).unwrap()
}

/// W^T y by candle's reverse mode through `linear_part` at x = 0.
fn by_reverse_mode(conv: &Conv2d, y: &Tensor, hw: [usize; 2]) -> Tensor {
    let b = y.dims()[0];
    let c_in = conv.weight.dims()[1] * conv.groups;
    let x = Var::zeros((b, c_in, hw[0], hw[1]), y.dtype(), y.device()).unwrap();
    let out = conv.linear_part(x.as_tensor()).unwrap();
    let grads = (out * y).unwrap().sum_all().unwrap().backward().unwrap();
    grads.get(x.as_tensor()).unwrap().clone()
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let scale = b.abs().unwrap().max_all().unwrap();
    let f = |t: Tensor| t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
    f(diff) / f(scale)
}

/// All four agree to rounding in float64, on odd, even, non-square and
/// 1 x 1 inputs, with groups, for every kernel and stride the networks use.
#[test]
fn conv_adjoint_agrees_with_conv_transpose2d_zero_insertion_and_reverse_mode() {
    let mut rng = Rng(21);
    for (c_in, c_out, k, s, g) in [
        (4, 6, 3, 1, 1),
        (4, 6, 3, 2, 1),
        (4, 8, 1, 2, 1),
        (8, 8, 3, 2, 4),
        (3, 4, 7, 2, 1),
    ] {
        let conv = conv(&mut rng, c_in, c_out, k, s, g);
        for hw in [[7, 7], [5, 5], [6, 6], [7, 6], [1, 1], [9, 4]] {
            let (oh, ow) = (conv.out_len(hw[0]), conv.out_len(hw[1]));
            let y = rng.tensor(&[2, c_out, oh, ow], 1.0);
            let ours = conv.linear_adjoint(&y, hw).unwrap();
            let mut others = vec![
                ("conv_transpose2d", by_conv_transpose2d(&conv, &y, hw)),
                ("zero insertion", by_zero_insertion(&conv, &y, hw)),
            ];
            // candle's conv2d backward takes the output padding from H alone
            // and fails ("shape mismatch in add") when W needs another one.
            if hw[0] % s == hw[1] % s {
                others.push(("reverse mode", by_reverse_mode(&conv, &y, hw)));
            }
            for (name, other) in others {
                let err = max_rel(&ours, &other);
                assert!(err <= 1e-13, "k{k} s{s} g{g} {hw:?} vs {name}: {err}");
            }
        }
    }
}

/// Median and minimum wall time in milliseconds of each of `fs`, called in
/// turn `runs` times after one warm-up round (in turn, so that load from
/// other processes shifts all of them alike).
fn time_ms(runs: usize, fs: &mut [&mut dyn FnMut() -> Tensor]) -> Vec<(f64, f64)> {
    let mut times = vec![Vec::new(); fs.len()];
    for round in 0..=runs {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let start = Instant::now();
            let x = f();
            // candle is eager: the result is complete when the call returns.
            drop(x);
            if round > 0 {
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            (t[t.len() / 2], t[0])
        })
        .collect()
}

#[test]
#[ignore = "timing, run with --ignored --nocapture"]
fn conv_adjoint_timings() {
    let mut rng = Rng(1);
    println!(
        "threads: {} (rayon), float32, batch 1, ms per call: median (min) of 7",
        rayon::current_num_threads()
    );
    println!("case | forward W t | linear_adjoint | conv_transpose2d | zero insertion + conv2d | reverse mode");
    for (name, c_in, c_out, k, s, g, h) in [
        ("64->64 3x3 s1 56x56", 64, 64, 3, 1, 1, 56),
        ("128->256 1x1 s2 28->14", 128, 256, 1, 2, 1, 28),
        ("64->64 3x3 s2 56->28", 64, 64, 3, 2, 1, 56),
        ("256->256 3x3 s1 14x14", 256, 256, 3, 1, 1, 14),
        ("512->512 3x3 s1 7x7", 512, 512, 3, 1, 1, 7),
        ("256->1024 1x1 s1 14x14", 256, 1024, 1, 1, 1, 14),
        ("128->128 3x3 s2 g32 56->28", 128, 128, 3, 2, 32, 56),
    ] {
        let conv = conv(&mut rng, c_in, c_out, k, s, g)
            .to_dtype(DType::F32)
            .unwrap();
        let hw = [h, h];
        let o = conv.out_len(h);
        let y = rng
            .tensor(&[1, c_out, o, o], 1.0)
            .to_dtype(DType::F32)
            .unwrap();
        let x = Tensor::zeros((1, c_in, h, h), DType::F32, &Device::Cpu).unwrap();
        let ours = conv.linear_adjoint(&y, hw).unwrap();
        let check = |t: Tensor| {
            let err = max_rel(&t, &ours);
            assert!(err <= 1e-5, "{name}: {err}");
        };
        check(by_conv_transpose2d(&conv, &y, hw));
        check(by_zero_insertion(&conv, &y, hw));
        check(by_reverse_mode(&conv, &y, hw));
        let times = time_ms(
            7,
            &mut [
                &mut || conv.linear_part(&x).unwrap(),
                &mut || conv.linear_adjoint(&y, hw).unwrap(),
                &mut || by_conv_transpose2d(&conv, &y, hw),
                &mut || by_zero_insertion(&conv, &y, hw),
                &mut || by_reverse_mode(&conv, &y, hw),
            ],
        );
        let cells: Vec<String> = times
            .iter()
            .map(|(median, min)| format!("{median:.2} ({min:.2})"))
            .collect();
        println!("{name} | {}", cells.join(" | "));
    }
}

/// Whole blocks at ImageNet sizes: J^T q against J p (float32, batch 1).
#[test]
#[ignore = "timing, run with --ignored --nocapture"]
fn block_vjp_timings() {
    let mut rng = Rng(2);
    println!("block | n | jvp | vjp (ms, median (min) of 7)");
    for (name, block, shape) in [
        (
            "BasicBlock 64 56x56",
            random::basic(&mut rng, 64, 64, 1, Shortcut::Identity, Masks::Random),
            [64, 56, 56],
        ),
        (
            "Bottleneck 256 (width 64) 56x56",
            random::bottleneck(&mut rng, 256, 64, 1, Shortcut::Identity, Masks::Random),
            [256, 56, 56],
        ),
        (
            "BasicBlock 64->128 /2 projection 56x56",
            {
                let proj = random::projection(&mut rng, 128, 64, 2);
                random::basic(&mut rng, 64, 128, 2, proj, Masks::Random)
            },
            [64, 56, 56],
        ),
    ] {
        let block = block.to_dtype(DType::F32).unwrap();
        let x = rng
            .tensor(&[1, shape[0], shape[1], shape[2]], 1.0)
            .to_dtype(DType::F32)
            .unwrap();
        let trace = block.trace(&x).unwrap();
        let out = block.out_shape(shape);
        let q = rng
            .tensor(&[1, out[0], out[1], out[2]], 1.0)
            .to_dtype(DType::F32)
            .unwrap();
        let kind = JacobianKind::Block;
        let times = time_ms(
            7,
            &mut [&mut || block.jvp(&trace, kind, &x).unwrap(), &mut || {
                block.vjp(&trace, kind, &q, shape).unwrap()
            }],
        );
        let n: usize = shape.iter().product();
        println!(
            "{name} | {n} | {:.1} ({:.1}) | {:.1} ({:.1})",
            times[0].0, times[0].1, times[1].0, times[1].1
        );
    }
}
