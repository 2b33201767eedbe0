//! Tests of the trainer (`resnet_stiffness::train`) on tiny CIFAR ResNets
//! (`resnet8`) with small synthetic or Fashion-MNIST data, plus the
//! `#[ignore]`d jobs that build the default model and the test-set sample in
//! `assets/`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use resnet_stiffness::model::{self, ArchSpec};
use resnet_stiffness::train::{
    self, checkpoint, ops, Augment, Batch, Network, Schedule, Sgd, TrainConfig,
};
use stiffness_checkpoint::safetensors::SaveDType;

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// A fresh empty folder under the target dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "resnet-stiffness-train-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Deterministic pseudo-random numbers in [0, 1).
fn uniform(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn write_idx(dir: &Path, prefix: &str, images: &[u8], side: usize, labels: &[u8]) {
    let n = labels.len() as u32;
    let mut img = vec![0, 0, 8, 3];
    for d in [n, side as u32, side as u32] {
        img.extend_from_slice(&d.to_be_bytes());
    }
    img.extend_from_slice(images);
    let mut lab = vec![0, 0, 8, 1];
    lab.extend_from_slice(&n.to_be_bytes());
    lab.extend_from_slice(labels);
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab).unwrap();
}

/// Linearly separable synthetic data: class k (of 4) lights up quadrant k, plus noise.
fn synthetic(dir: &Path, side: usize, n_train: usize, n_test: usize) {
    for (prefix, n, seed) in [("train", n_train, 1), ("t10k", n_test, 2)] {
        let noise = uniform(seed, n * side * side);
        let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
        let mut images = Vec::with_capacity(n * side * side);
        for (i, &l) in labels.iter().enumerate() {
            for y in 0..side {
                for x in 0..side {
                    let quadrant = 2 * usize::from(y >= side / 2) + usize::from(x >= side / 2);
                    let base = if quadrant == usize::from(l) {
                        150.0
                    } else {
                        30.0
                    };
                    images.push((base + 100.0 * noise[(i * side + y) * side + x]) as u8);
                }
            }
        }
        write_idx(dir, prefix, &images, side, &labels);
    }
}

fn tiny_net(seed: u64) -> Network {
    Network::init(ArchSpec::preset("resnet8", 1, 10).unwrap(), seed).unwrap()
}

fn tiny_batch(n: usize, side: usize) -> Batch {
    Batch {
        images: uniform(11, n * side * side),
        labels: (0..n as u32).map(|i| (i * 3) % 10).collect(),
    }
}

fn loss_of(net: &Network, batch: &Batch, shape: [usize; 3]) -> (Tensor, f64) {
    let (x, y) = train::batch_tensors(batch, shape).unwrap();
    let (logits, _) = net.forward_train(&x).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
    let value = f64::from(loss.to_scalar::<f32>().unwrap());
    (loss, value)
}

fn values(var: &Tensor) -> Vec<f32> {
    var.flatten_all().unwrap().to_vec1().unwrap()
}

fn set_value(var: &Var, i: usize, v: f32) {
    let mut w = values(var);
    w[i] = v;
    var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap())
        .unwrap();
}

/// All trainable tensors and their gradients at the current weights.
fn weights_and_grads(net: &Network, batch: &Batch, shape: [usize; 3]) -> Vec<(Vec<f32>, Vec<f32>)> {
    let (loss, _) = loss_of(net, batch, shape);
    let grads = loss.backward().unwrap();
    net.parameters()
        .iter()
        .map(|(_, v)| {
            (
                values(v),
                grads
                    .get(v)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn im2col_convolution_and_pool_match_candle() {
    // Every (kernel, stride, padding) of the ResNets: 3x3/1 and 3x3/2 branch
    // convolutions, 1x1/1 bottleneck, 1x1/2 projection, 7x7/2 stem; on a
    // 7 x 7 map and on the 2 x 2 map of a last stage.
    let cases = [(3, 2, 1), (3, 1, 1), (1, 1, 0), (1, 2, 0), (7, 2, 3)];
    for (hw, (k, stride, pad)) in [7, 2].into_iter().flat_map(|hw| cases.map(|c| (hw, c))) {
        let x = Var::from_vec(uniform(3, 2 * 3 * hw * hw), (2, 3, hw, hw), &Device::Cpu).unwrap();
        let w = Var::from_vec(uniform(4, 5 * 3 * k * k), (5, 3, k, k), &Device::Cpu).unwrap();
        let ours = ops::conv2d(&x, &w, stride, pad).unwrap();
        let reference = x.conv2d(&w, pad, stride, 1, 1).unwrap();
        assert_eq!(ours.dims(), reference.dims());
        assert!(
            max_abs_diff(&ours, &reference) < 1e-5,
            "{hw}: {k}x{k}/{stride}"
        );
        let probe =
            Tensor::from_vec(uniform(5, ours.elem_count()), ours.shape(), &Device::Cpu).unwrap();
        let (g_ours, g_ref) = (probe_grads(&ours, &probe), probe_grads(&reference, &probe));
        for v in [&x, &w] {
            let diff = max_abs_diff(g_ours.get(v).unwrap(), g_ref.get(v).unwrap());
            assert!(
                diff < 1e-4,
                "{hw}: {k}x{k}/{stride}: gradient off by {diff}"
            );
        }
    }
    let x = Var::from_vec(uniform(3, 2 * 3 * 7 * 7), (2, 3, 7, 7), &Device::Cpu).unwrap();
    let pooled = ops::max_pool_3x3_s2(&x).unwrap();
    let padded = x
        .pad_with_same(2, 1, 1)
        .unwrap()
        .pad_with_same(3, 1, 1)
        .unwrap();
    let reference = padded.max_pool2d_with_stride(3, 2).unwrap();
    assert_eq!(pooled.dims(), reference.dims());
    assert_eq!(max_abs_diff(&pooled, &reference), 0.0);
}

/// The fused ReLU and add-ReLU give candle's values and gradients (inputs
/// away from 0, where the two gradient conventions differ), and zero
/// gradient at 0 (PyTorch's rule).
#[test]
fn fused_relu_matches_candle() {
    let centred = |seed| {
        let v: Vec<f32> = uniform(seed, 2 * 3 * 5 * 5)
            .iter()
            .map(|u| u - 0.5)
            .collect();
        Var::from_vec(v, (2, 3, 5, 5), &Device::Cpu).unwrap()
    };
    let (x, r) = (centred(7), centred(8));
    let probe = Tensor::from_vec(uniform(9, 150), (2, 3, 5, 5), &Device::Cpu).unwrap();
    let pairs = [
        (ops::relu(&x).unwrap(), x.relu().unwrap()),
        (
            ops::add_relu(&x, &r).unwrap(),
            (x.as_tensor() + r.as_tensor()).unwrap().relu().unwrap(),
        ),
    ];
    for (ours, reference) in pairs {
        assert_eq!(max_abs_diff(&ours, &reference), 0.0);
        let (g_ours, g_ref) = (probe_grads(&ours, &probe), probe_grads(&reference, &probe));
        assert_eq!(
            max_abs_diff(g_ours.get(&x).unwrap(), g_ref.get(&x).unwrap()),
            0.0
        );
    }
    let g = probe_grads(&ops::add_relu(&x, &r).unwrap(), &probe);
    assert_eq!(max_abs_diff(g.get(&r).unwrap(), g.get(&x).unwrap()), 0.0);
    let zero = Var::from_vec(vec![0f32, 1.0], 2, &Device::Cpu).unwrap();
    let ones = Tensor::ones(2, DType::F32, &Device::Cpu).unwrap();
    let g = probe_grads(&ops::relu(&zero).unwrap(), &ones);
    assert_eq!(g.get(&zero).unwrap().to_vec1::<f32>().unwrap(), [0.0, 1.0]);
}

/// Largest |a - b| over all entries.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Gradients of sum(y * probe) (the probe cast to y's dtype): the
/// vector-Jacobian product with `probe` for every variable behind `y`.
fn probe_grads(y: &Tensor, probe: &Tensor) -> candle_core::backprop::GradStore {
    let p = probe.to_dtype(y.dtype()).unwrap();
    (y * p).unwrap().sum_all().unwrap().backward().unwrap()
}

/// Training-mode batch norm composed of candle ops (mean, centred variance,
/// broadcast affine map; candle differentiates it): output and batch moments.
fn composed_batch_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> (Tensor, Tensor, Tensor) {
    let c = gamma.dims1().unwrap();
    let m = x.mean_keepdim((0, 2, 3)).unwrap();
    let centred = x.broadcast_sub(&m).unwrap();
    let v = centred.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
    let inv_std = (&v + 1e-5).unwrap().sqrt().unwrap().recip().unwrap();
    let scale = inv_std
        .broadcast_mul(&gamma.reshape((1, c, 1, 1)).unwrap())
        .unwrap();
    let y = centred
        .broadcast_mul(&scale)
        .unwrap()
        .broadcast_add(&beta.reshape((1, c, 1, 1)).unwrap())
        .unwrap();
    (y, m, v)
}

/// The fused f32 batch norm against the same formula composed of candle ops
/// in f64, on values with a large common offset (so that centring matters):
/// outputs, batch moments and the gradients for x, gamma and beta agree to
/// 1e-5 relative to the largest entry (f32 rounding).
#[test]
fn fused_batch_norm_matches_composed_f64_reference() {
    let dims = (3, 4, 5, 6);
    let n = 3 * 4 * 5 * 6;
    let values: Vec<f32> = uniform(7, n).iter().map(|v| 3.0 * v + 10.0).collect();
    let inputs = [
        Tensor::from_vec(values, dims, &Device::Cpu).unwrap(),
        Tensor::from_vec(uniform(8, 4), 4, &Device::Cpu).unwrap(),
        Tensor::from_vec(uniform(9, 4), 4, &Device::Cpu).unwrap(),
    ];
    let vars = |dtype: DType| -> Vec<Var> {
        inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap())
            .collect()
    };
    let (ours, exact) = (vars(DType::F32), vars(DType::F64));
    let (y, mean, var) = ops::batch_norm_train(&ours[0], &ours[1], &ours[2], 1e-5).unwrap();
    let (y_ref, m_ref, v_ref) = composed_batch_norm(&exact[0], &exact[1], &exact[2]);
    let agree = |a: &Tensor, b: &Tensor| {
        let b = b.to_dtype(DType::F32).unwrap();
        let size = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = max_abs_diff(a, &b);
        assert!(diff <= 1e-5 * size.max(1.0), "{a} vs {b}: {diff}");
    };
    agree(&y, &y_ref);
    agree(
        &Tensor::new(mean, &Device::Cpu).unwrap(),
        &m_ref.flatten_all().unwrap(),
    );
    agree(
        &Tensor::new(var, &Device::Cpu).unwrap(),
        &v_ref.flatten_all().unwrap(),
    );

    let probe = Tensor::from_vec(uniform(10, n), dims, &Device::Cpu).unwrap();
    let (g, g_ref) = (probe_grads(&y, &probe), probe_grads(&y_ref, &probe));
    for (a, b) in ours.iter().zip(&exact) {
        agree(g.get(a).unwrap(), g_ref.get(b).unwrap());
    }
}

#[test]
fn gradients_match_finite_differences() {
    let net = tiny_net(1);
    let (batch, shape) = (tiny_batch(4, 8), [1, 8, 8]);
    let (loss, _) = loss_of(&net, &batch, shape);
    let grads = loss.backward().unwrap();
    for (name, i) in [
        ("linear.bias", 0),
        ("linear.weight", 3),
        ("conv1.weight", 5),
        ("layer2.0.bn1.weight", 2),
    ] {
        let var = net.parameter(name).unwrap();
        let g = f64::from(values(grads.get(var).unwrap())[i]);
        let w0 = values(var)[i];
        let eps = 1e-3f32;
        set_value(var, i, w0 + eps);
        let up = loss_of(&net, &batch, shape).1;
        set_value(var, i, w0 - eps);
        let down = loss_of(&net, &batch, shape).1;
        set_value(var, i, w0);
        let fd = (up - down) / (2.0 * f64::from(eps));
        assert!(
            (fd - g).abs() < 2e-3 + 0.03 * g.abs(),
            "{name}[{i}]: autodiff {g}, finite difference {fd}"
        );
    }
}

/// Two SGD steps, checked against PyTorch's update written out by hand:
/// g' = g + wd w; v = g' (first step), v = mu v + g' (later);
/// w -= lr (g' + mu v) (Nesterov) or w -= lr v.
#[test]
fn sgd_steps_match_hand_computed_update() {
    for nesterov in [false, true] {
        let net = tiny_net(2);
        let (batch, shape) = (tiny_batch(4, 8), [1, 8, 8]);
        let (lr, mu, wd) = (0.05f64, 0.9f64, 1e-2f64);
        let mut opt = Sgd::new(mu, nesterov, wd);
        let mut expected_v: Vec<Vec<f64>> = Vec::new();
        for step in 0..2 {
            let before = weights_and_grads(&net, &batch, shape);
            let (loss, _) = loss_of(&net, &batch, shape);
            opt.step(net.parameters(), &loss.backward().unwrap(), lr)
                .unwrap();
            for (p, ((w, g), (_, var))) in before.iter().zip(net.parameters()).enumerate() {
                let g2: Vec<f64> = w
                    .iter()
                    .zip(g)
                    .map(|(&w, &g)| f64::from(g) + wd * f64::from(w))
                    .collect();
                let v: Vec<f64> = if step == 0 {
                    g2.clone()
                } else {
                    expected_v[p]
                        .iter()
                        .zip(&g2)
                        .map(|(v, g)| mu * v + g)
                        .collect()
                };
                let after = values(var);
                for k in 0..w.len() {
                    let d = if nesterov { g2[k] + mu * v[k] } else { v[k] };
                    let want = f64::from(w[k]) - lr * d;
                    let got = f64::from(after[k]);
                    assert!(
                        (got - want).abs() < 1e-6 + 1e-5 * want.abs(),
                        "step {step} {p}[{k}]: {got} vs {want}"
                    );
                }
                if step == 0 {
                    expected_v.push(v);
                } else {
                    expected_v[p] = v;
                }
            }
        }
    }
}

#[test]
fn batch_norm_running_statistics_follow_pytorch() {
    let mut net = tiny_net(3);
    let (batch, shape) = (tiny_batch(4, 8), [1, 8, 8]);
    let (x, _) = train::batch_tensors(&batch, shape).unwrap();
    // conv1 output by candle's own convolution, then the statistics by hand in f64.
    let conv = x
        .conv2d(net.parameter("conv1.weight").unwrap(), 1, 1, 1, 1)
        .unwrap();
    let (b, c, h, w) = conv.dims4().unwrap();
    let values = conv
        .permute((1, 0, 2, 3))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let n = b * h * w;
    let mut opt = Sgd::new(0.9, false, 5e-4);
    train::train_step(&mut net, &mut opt, &batch, shape, 0.1).unwrap();
    let state = net.state_dict().unwrap();
    for ch in 0..c {
        let xs: Vec<f64> = values[ch * n..(ch + 1) * n]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let unbiased = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let rm = f64::from(state.get("bn1.running_mean").unwrap().values[ch]);
        let rv = f64::from(state.get("bn1.running_var").unwrap().values[ch]);
        assert!(
            (rm - 0.1 * mean).abs() < 1e-5,
            "channel {ch}: running_mean {rm} vs {}",
            0.1 * mean
        );
        assert!(
            (rv - (0.9 + 0.1 * unbiased)).abs() < 1e-5,
            "channel {ch}: running_var {rv}"
        );
    }
    for (name, t) in state
        .iter()
        .filter(|(n, _)| n.ends_with("num_batches_tracked"))
    {
        assert_eq!(t.values, vec![1.0], "{name}");
        assert!(
            !t.source_dtype.is_float(),
            "{name} must be an integer tensor"
        );
    }
}

fn config(data: &Path, out: &Path) -> TrainConfig {
    TrainConfig {
        arch: "resnet8".into(),
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        epochs: 2,
        batch_size: 16,
        lr: 0.05,
        schedule: Schedule::Cosine,
        weight_decay: 5e-4,
        nesterov: true,
        warmup_epochs: 1,
        augment: Augment::CropFlip,
        seed: 5,
        checkpoint_every: 1,
        threads: Some(2),
        ..TrainConfig::default()
    }
}

#[test]
fn loss_decreases_on_a_small_real_subset() {
    let fashion = Path::new(FASHION)
        .join("train-images-idx3-ubyte.gz")
        .exists();
    let dir = scratch("decrease");
    let data = if fashion {
        eprintln!("loss test: Fashion-MNIST subset (640 training images spread evenly)");
        PathBuf::from(FASHION)
    } else {
        eprintln!("loss test: synthetic separable data (Fashion-MNIST not found at {FASHION})");
        synthetic(&dir, 16, 640, 64);
        dir.clone()
    };
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 32,
        lr: 0.1,
        warmup_epochs: 0,
        augment: Augment::None,
        limit: Some(640),
        checkpoint_every: 3,
        ..config(&data, &dir.join("run"))
    };
    let mut losses = Vec::new();
    let summary = train::train(&cfg, &mut |p| {
        if p.finished.is_none() {
            losses.push(p.batch_loss);
        }
    })
    .unwrap();
    assert_eq!(losses.len(), 60);
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[50..].iter().sum::<f64>() / 10.0;
    eprintln!("mean loss of the first 10 steps {first:.3}, of the last 10 {last:.3}; {summary:?}");
    assert!(
        last < 0.7 * first,
        "loss did not decrease: {first} -> {last}"
    );
    assert!(
        summary.final_test_acc > 0.5,
        "held-out accuracy {}",
        summary.final_test_acc
    );
}

/// `export` writes the run's weights and a record, and scores the file as
/// written: in float32 exactly the run's last held-out accuracy (same
/// weights, same images), in float16 within 5 points on these 24 images.
#[test]
fn export_scores_the_written_file() {
    let dir = scratch("export");
    synthetic(&dir, 16, 72, 24);
    let cfg = config(&dir, &dir.join("run"));
    let summary = train::train(&cfg, &mut |_| {}).unwrap();
    let f32_export =
        train::export::export(&cfg.out, &dir.join("f32"), SaveDType::F32, None).unwrap();
    assert_eq!(f32_export.run_accuracy, summary.final_test_acc);
    assert_eq!(f32_export.file_accuracy, summary.final_test_acc);
    assert_eq!(
        f32_export.file_loss.to_bits(),
        summary.history.last().unwrap().test_loss.to_bits()
    );
    let f16_export =
        train::export::export(&cfg.out, &dir.join("f16"), SaveDType::F16, None).unwrap();
    assert!((f16_export.file_accuracy - summary.final_test_acc).abs() <= 0.05);
    let f16_bytes = std::fs::metadata(&f16_export.model_path).unwrap().len();
    let f32_bytes = std::fs::metadata(&f32_export.model_path).unwrap().len();
    assert!(f16_bytes * 10 < f32_bytes * 6, "{f16_bytes} vs {f32_bytes}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&f16_export.record_path).unwrap()).unwrap();
    assert_eq!(record["command"].as_str().unwrap(), cfg.command_line());
    assert_eq!(record["history"].as_array().unwrap().len(), 2);
    assert_eq!(
        record["final_test_acc_file"].as_f64(),
        Some(f16_export.file_accuracy)
    );
    // Export scores on the held-out split only: it works without the training split.
    for file in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    let again = train::export::export(&cfg.out, &dir.join("again"), SaveDType::F32, None).unwrap();
    assert_eq!(again.file_accuracy, summary.final_test_acc);
    let missing = train::export::export(&dir.join("nothing"), &dir.join("x"), SaveDType::F16, None);
    assert!(missing.unwrap_err().to_string().contains("training state"));
}

#[test]
fn resumed_run_is_bit_identical() {
    let dir = scratch("resume");
    synthetic(&dir, 16, 72, 24);
    let whole = config(&dir, &dir.join("whole"));
    let a = train::train(&whole, &mut |_| {}).unwrap();
    // --resume in a folder without a run starts one.
    let split = TrainConfig {
        resume: true,
        ..config(&dir, &dir.join("split"))
    };
    let first = train::train_until(&split, 1, &mut |_| {}).unwrap();
    assert_eq!((first.epochs, first.steps), (1, 4));
    let b = train::train(&split, &mut |_| {}).unwrap();
    assert_eq!((b.epochs, b.steps), (2, 8));
    for file in [
        "model.safetensors",
        "optimizer-step0000008.safetensors",
        "epoch-001.safetensors",
        "epoch-002.safetensors",
    ] {
        let read = |run: &str| std::fs::read(dir.join(run).join(file)).unwrap();
        assert!(
            read("whole") == read("split"),
            "{file} differs between the runs"
        );
    }
    let test_acc =
        |h: &[train::EpochRecord]| h.iter().map(|r| (r.loss, r.test_acc)).collect::<Vec<_>>();
    assert_eq!(test_acc(&a.history), test_acc(&b.history));
    // A run in a used folder needs --resume; a resume with other options is refused.
    let err = train::train(&whole, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    let changed = TrainConfig {
        resume: true,
        seed: 6,
        ..whole.clone()
    };
    let err = train::train(&changed, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("--seed was 5"), "{err}");
}

#[test]
fn bad_options_are_reported() {
    let dir = scratch("bad");
    synthetic(&dir, 8, 8, 8);
    let cfg = TrainConfig {
        batch_size: 32,
        ..config(&dir, &dir.join("run"))
    };
    let small = TrainConfig {
        batch_size: 4,
        ..config(&dir, &dir.join("run"))
    };
    let err = train::train(&cfg, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("--batch-size 32 is larger than the 8 training images"),
        "{err}"
    );
    for minutes in [-1.0, f64::NAN] {
        let cfg = TrainConfig {
            save_minutes: minutes,
            ..small.clone()
        };
        let err = train::train(&cfg, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("--save-minutes"), "{err}");
    }
    let other = dir.join("other-size");
    std::fs::create_dir_all(&other).unwrap();
    synthetic(&other, 12, 8, 8);
    let cfg = TrainConfig {
        eval_data: Some(other.clone()),
        ..small.clone()
    };
    let err = train::train(&cfg, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("held-out images of shape [1, 12, 12], but the training images"),
        "{err}"
    );
    let cfg = TrainConfig {
        in_channels: Some(3),
        eval_data: Some(other.join("nothing-here")),
        ..small.clone()
    };
    let err = train::train(&cfg, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("nothing-here"), "{err}");
    let cfg = TrainConfig {
        in_channels: Some(3),
        out: dir.join("replicated"),
        ..small.clone()
    };
    let replicated = train::train(&cfg, &mut |_| {}).unwrap();
    assert_eq!(replicated.spec.in_channels, 3, "1-channel data replicated");
    let cfg = TrainConfig {
        arch: "resnet9".into(),
        ..small
    };
    assert!(train::train(&cfg, &mut |_| {})
        .unwrap_err()
        .to_string()
        .contains("unknown architecture"));
}

/// Save `net` as the checkpoint of epoch 1 (two steps) into `dir`.
fn save_epoch_one(dir: &Path, net: &Network, opt: &Sgd) {
    let state = train::TrainState {
        epoch: 1,
        step: 2,
        weights: checkpoint::epoch_file(1),
        optimizer: checkpoint::optimizer_file(2),
        rng: String::new(),
        config: TrainConfig::default(),
        history: Vec::new(),
        partial: None,
    };
    checkpoint::save(dir, net, opt, &state).unwrap();
}

#[test]
fn saved_checkpoint_reloads_with_the_same_logits() {
    let dir = scratch("reload");
    let mut net = tiny_net(4);
    let (batch, shape) = (tiny_batch(6, 8), [1, 8, 8]);
    let mut opt = Sgd::new(0.9, false, 5e-4);
    for _ in 0..2 {
        train::train_step(&mut net, &mut opt, &batch, shape, 0.1).unwrap();
    }
    save_epoch_one(&dir, &net, &opt);
    let loaded = model::load(&dir.join("model.safetensors"), None, DType::F32).unwrap();
    assert_eq!(loaded.model.spec, *net.spec());
    let (x, _) = train::batch_tensors(&batch, shape).unwrap();
    let a = net
        .eval_model()
        .unwrap()
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = loaded
        .model
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
    let names: Vec<String> = stiffness_checkpoint::load_state_dict(&dir.join("model.safetensors"))
        .unwrap()
        .state
        .names()
        .filter(|n| !n.ends_with("num_batches_tracked"))
        .map(String::from)
        .collect();
    let mut expected: Vec<String> = net
        .spec()
        .expected_tensors()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut names = names;
    names.sort();
    expected.sort();
    assert_eq!(names, expected);
}

/// The trainer trains every family the analysis reads, wired the same way:
/// autodiff gradients of the parts only these families have (a grouped
/// convolution, a pre-activation projection reading relu(bn1(x)), a final
/// batch norm) match finite differences, two SGD steps keep the loss finite,
/// and the checkpoint is read back by the analysis as the same architecture
/// with the same logits.
#[test]
fn every_family_trains_and_reloads_as_itself() {
    let resnext_mini = ArchSpec {
        stage_blocks: vec![1, 1, 1, 1],
        groups: 32,
        base_width: 4,
        ..ArchSpec::preset("resnext50_32x4d", 1, 10).unwrap()
    };
    let cases = [
        (
            ArchSpec::preset("cifar-resnet18", 1, 10).unwrap(),
            "layer2.0.shortcut.0.weight",
        ),
        (
            ArchSpec::preset("preact-resnet18", 1, 10).unwrap(),
            "layer2.0.shortcut.0.weight",
        ),
        (ArchSpec::preset("wrn-10-2", 1, 10).unwrap(), "bn1.weight"),
        (resnext_mini, "layer2.0.conv2.weight"),
    ];
    let (batch, shape) = (tiny_batch(4, 16), [1, 16, 16]);
    for (spec, probe) in cases {
        let name = spec.name();
        let mut net = Network::init(spec, 3).unwrap();
        let (loss, _) = loss_of(&net, &batch, shape);
        let grads = loss.backward().unwrap();
        let var = net.parameter(probe).unwrap();
        let g = f64::from(values(grads.get(var).unwrap())[1]);
        let w0 = values(var)[1];
        let eps = 1e-3f32;
        set_value(var, 1, w0 + eps);
        let up = loss_of(&net, &batch, shape).1;
        set_value(var, 1, w0 - eps);
        let down = loss_of(&net, &batch, shape).1;
        set_value(var, 1, w0);
        let fd = (up - down) / (2.0 * f64::from(eps));
        assert!(
            (fd - g).abs() < 2e-3 + 0.05 * g.abs(),
            "{name} {probe}: autodiff {g}, finite difference {fd}"
        );

        let mut opt = Sgd::new(0.9, false, 5e-4);
        for _ in 0..2 {
            let (loss, _) = train::train_step(&mut net, &mut opt, &batch, shape, 0.01).unwrap();
            assert!(loss.is_finite(), "{name}: loss {loss}");
        }
        let dir = scratch(&format!("family-{name}"));
        save_epoch_one(&dir, &net, &opt);
        let loaded = model::load(&dir.join("model.safetensors"), None, DType::F32).unwrap();
        assert_eq!(loaded.model.spec, *net.spec(), "{name}");
        let (x, _) = train::batch_tensors(&batch, shape).unwrap();
        let ours = net.eval_model().unwrap().forward(&x).unwrap();
        let reloaded = loaded.model.forward(&x).unwrap();
        assert_eq!(values(&ours), values(&reloaded), "{name}");
    }
}

/// Where the default model's training run writes its checkpoints.
const DEFAULT_RUN: &str = "/work/train-logs/default-run";

/// The exact configuration of the built-in default model.
fn default_model_config() -> TrainConfig {
    TrainConfig {
        arch: "resnet18".into(),
        data: PathBuf::from(FASHION),
        out: PathBuf::from(DEFAULT_RUN),
        epochs: 2,
        batch_size: 128,
        lr: 0.1,
        schedule: Schedule::Cosine,
        weight_decay: 5e-4,
        nesterov: true,
        warmup_epochs: 0,
        augment: Augment::None,
        seed: 0,
        resume: true,
        checkpoint_every: 1,
        threads: Some(2),
        ..TrainConfig::default()
    }
}

/// Train the built-in default model (resumes an interrupted run), then export it
/// (as `resnet-stiffness export` does):
/// `cargo test --release --test train -- --ignored train_default_model --nocapture`.
#[test]
#[ignore]
fn train_default_model() {
    let cfg = default_model_config();
    let summary = train::train(&cfg, &mut |p| {
        if let Some(r) = &p.finished {
            eprintln!("epoch {}: {r:?}", r.epoch);
        } else if p.batch % 20 == 0 {
            eprintln!(
                "epoch {} batch {}/{} loss {:.4} acc {:.4} lr {:.4} {:.0} img/s eta {:.0}s",
                p.epoch + 1,
                p.batch,
                p.batches,
                p.loss,
                p.accuracy,
                p.lr,
                p.images_per_sec,
                p.eta_secs
            );
        }
    })
    .unwrap();
    eprintln!("{summary:?}");
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist-resnet18");
    let e = train::export::export(Path::new(DEFAULT_RUN), &assets, SaveDType::F16, None).unwrap();
    eprintln!(
        "float16 model: test accuracy {:.4}, loss {:.4}",
        e.file_accuracy, e.file_loss
    );
}

/// Gzip `bytes` into `path` with the system `gzip` (`-9 -n`: reproducible, no name or time).
fn gzip_to(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip must be installed");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    std::fs::write(path, out.stdout).unwrap();
}

/// Write `assets/fashion-mnist-sample/`: the first 100 test images of every
/// class in file order (IDX, gzipped), with the MIT licence of Fashion-MNIST.
#[test]
#[ignore]
fn write_fashion_mnist_sample() {
    let read = |name: &str| {
        let out = std::process::Command::new("gzip")
            .args(["-dc", &format!("{FASHION}/{name}")])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let (images, labels) = (
        read("t10k-images-idx3-ubyte.gz"),
        read("t10k-labels-idx1-ubyte.gz"),
    );
    let (pixels, labels) = (&images[16..], &labels[8..]);
    let mut picked = Vec::new();
    let mut counts = [0usize; 10];
    for (i, &l) in labels.iter().enumerate() {
        if counts[usize::from(l)] < 100 {
            counts[usize::from(l)] += 1;
            picked.push(i);
        }
    }
    assert_eq!(picked.len(), 1000);
    let mut img = vec![0, 0, 8, 3];
    for d in [1000u32, 28, 28] {
        img.extend_from_slice(&d.to_be_bytes());
    }
    let mut lab = vec![0, 0, 8, 1];
    lab.extend_from_slice(&1000u32.to_be_bytes());
    for &i in &picked {
        img.extend_from_slice(&pixels[i * 784..(i + 1) * 784]);
        lab.push(labels[i]);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist-sample");
    std::fs::create_dir_all(&dir).unwrap();
    gzip_to(&dir.join("t10k-images-idx3-ubyte.gz"), &img);
    gzip_to(&dir.join("t10k-labels-idx1-ubyte.gz"), &lab);
    std::fs::write(dir.join("LICENSE"), FASHION_MNIST_LICENSE).unwrap();
    std::fs::write(dir.join("README.md"), SAMPLE_README).unwrap();
    // It reads back as a balanced 10-class data set.
    let data =
        stiffness_data::Dataset::open(&dir, stiffness_data::Format::Auto, Default::default())
            .unwrap();
    assert_eq!(data.len(), 1000);
    let labels = data.labels();
    assert!((0..10).all(|c| labels.iter().filter(|&&l| l == c).count() == 100));
}

const SAMPLE_README: &str = "# Fashion-MNIST test sample\n\n\
A stratified sample of the Fashion-MNIST test set (`t10k-images-idx3-ubyte.gz`, \
`t10k-labels-idx1-ubyte.gz` from https://github.com/zalandoresearch/fashion-mnist): \
the first 100 images of each of the 10 classes, in file order (1,000 images, IDX format, gzipped). \
Written by `cargo test --release --test train -- --ignored write_fashion_mnist_sample`. \
Fashion-MNIST is Copyright (c) 2017 Zalando SE and MIT licensed; see LICENSE.\n";

const FASHION_MNIST_LICENSE: &str = "The MIT License (MIT)

Copyright (c) 2017 Zalando SE

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the \"Software\"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
";
