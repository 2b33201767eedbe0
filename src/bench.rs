//! Benchmarks behind `resnet-stiffness bench`: Jacobian assembly, the reduced
//! exact eigen-solve and the unreduced dense eigen-solve on synthetic blocks of
//! growing size, and evaluation throughput. Wall-clock seconds, single sample,
//! one thread per solve (faer `Par::Seq`), as the analysis job runs them.

use std::time::Instant;

use candle_core::{DType, Tensor};

use crate::analysis::linearize::Linearization;
use crate::analysis::reduce::{dense_spectrum, exact_spectrum};
use crate::error::Result;
use crate::model::random::{self, Masks, Rng};
use crate::model::{ArchSpec, JacobianKind, ResNet, ResidualBlock, Shortcut};

/// One timed block.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BlockTiming {
    pub block: String,
    pub kind: JacobianKind,
    pub shape: [usize; 3],
    pub n: usize,
    pub n_active: usize,
    pub solved_size: usize,
    pub assembly_s: f64,
    pub reduced_s: f64,
    /// The unreduced dense solve, when n <= the dense limit.
    pub dense_s: Option<f64>,
}

/// The synthetic blocks: BasicBlocks and Bottlenecks with n from 512 to 16384
/// (BasicBlock C x H x H with C, H in {8, 16, 32}; Bottleneck 4w x H x H).
pub fn cases(max_n: usize) -> Vec<(ResidualBlock, [usize; 3])> {
    let mut rng = Rng(2024);
    let mut out = Vec::new();
    for (c, hw) in [(8, 8), (16, 8), (8, 16), (16, 16), (32, 16), (16, 32)] {
        out.push((
            random::basic(&mut rng, c, c, 1, Shortcut::Identity, Masks::Random),
            [c, hw, hw],
        ));
    }
    for (w, hw) in [(8, 4), (16, 4), (32, 4), (16, 8), (32, 8), (64, 4), (64, 8)] {
        out.push((
            random::bottleneck(&mut rng, 4 * w, w, 1, Shortcut::Identity, Masks::Random),
            [4 * w, hw, hw],
        ));
    }
    out.retain(|(_, s)| s.iter().product::<usize>() <= max_n);
    out
}

/// Time assembly and solves for every case and kind.
pub fn blocks(
    max_n: usize,
    max_dense: usize,
    report: &mut dyn FnMut(&BlockTiming),
) -> Result<Vec<BlockTiming>> {
    let mut rng = Rng(7);
    let mut out = Vec::new();
    for (block, shape) in cases(max_n) {
        let block32 = block.to_dtype(DType::F32)?;
        let x = rng
            .tensor(&[1, shape[0], shape[1], shape[2]], 1.0)
            .to_dtype(DType::F32)?;
        for kind in JacobianKind::ALL {
            let t = timing([&block32, &block], &x, kind, shape, max_dense)?;
            report(&t);
            out.push(t);
        }
    }
    Ok(out)
}

/// Times of one block ([f32 block, f64 block]) at `x`: the full
/// assembly, the reduced exact spectrum from scratch (its own assembly
/// included: a fresh linearisation shares nothing), and the dense solve of
/// the full matrix.
fn timing(
    [block, block64]: [&ResidualBlock; 2],
    x: &Tensor,
    kind: JacobianKind,
    shape: [usize; 3],
    max_dense: usize,
) -> Result<BlockTiming> {
    let lin = Linearization::new(block, block64, x)?;
    let n = lin.n();
    let start = Instant::now();
    lin.jacobian(kind)?;
    let assembly_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let fresh = Linearization::new(block, block64, x)?;
    let (_, reduction) = exact_spectrum(&fresh, kind, stiffness_spectrum::Par::Seq)?;
    let reduced_s = start.elapsed().as_secs_f64();
    let dense_s = if n <= max_dense {
        let start = Instant::now();
        dense_spectrum(&lin, kind)?;
        Some(start.elapsed().as_secs_f64())
    } else {
        None
    };
    let bottleneck = lin.block.branch.relu_positions().len() == 2;
    Ok(BlockTiming {
        block: if bottleneck { "bottleneck" } else { "basic" }.into(),
        kind,
        shape,
        n,
        n_active: reduction.n_active,
        solved_size: reduction.solved_size,
        assembly_s,
        reduced_s,
        dense_s,
    })
}

/// Images per second of `arch` (random weights) on random 3 x size x size inputs, batch 128.
pub fn eval_throughput(arch: &str, size: usize, batches: usize) -> Result<f64> {
    let spec = ArchSpec::preset(arch, 3, 10)?;
    let weights = random::weights(&spec, 1);
    let net = ResNet::from_weights(&weights, None, arch, DType::F32)?;
    let mut rng = Rng(3);
    let x = rng
        .tensor(&[128, 3, size, size], 1.0)
        .to_dtype(DType::F32)?;
    net.forward(&x)?; // warm-up
    let start = Instant::now();
    for _ in 0..batches {
        let _: Tensor = net.forward(&x)?;
    }
    Ok((128 * batches) as f64 / start.elapsed().as_secs_f64())
}

/// Training images per second of `arch` (seeded initialisation, 10 classes)
/// on random 3 x size x size batches of 128 with random labels: `steps` SGD
/// steps (forward, backward, update) after one warm-up step, on the
/// trainer's worker pool.
pub fn train_throughput(arch: &str, size: usize, steps: usize) -> Result<f64> {
    use crate::train::{self, Batch, Network, Sgd};
    let spec = ArchSpec::preset(arch, 3, 10)?;
    let mut net = Network::init(spec, 0)?;
    let mut opt = Sgd::new(train::MOMENTUM, true, 5e-4);
    let mut rng = Rng(5);
    let batch = Batch {
        images: (0..128 * 3 * size * size)
            .map(|_| rng.uniform() as f32)
            .collect(),
        labels: (0..128).map(|_| rng.below(10) as u32).collect(),
    };
    let shape = [3, size, size];
    train::worker_pool(None)?.install(|| {
        train::train_step(&mut net, &mut opt, &batch, shape, 0.01)?;
        let start = Instant::now();
        for _ in 0..steps {
            train::train_step(&mut net, &mut opt, &batch, shape, 0.01)?;
        }
        Ok((128 * steps) as f64 / start.elapsed().as_secs_f64())
    })
}
