//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use stiffness_checkpoint::npy::read_npy;

/// The shared data folder with the golden outputs (see [`stiffness_testdata::shared`]).
pub fn shared() -> Option<PathBuf> {
    stiffness_testdata::shared("golden")
}

/// A .npy file as a tensor of `dtype` (f32/f64 files).
pub fn npy_tensor(path: &std::path::Path, dtype: DType) -> Tensor {
    let arr = read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shape = arr.shape.clone();
    let values = arr.data.into_f64().expect("real array");
    Tensor::from_vec(values, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// A tensor's values, flattened, in f64.
pub fn flat64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// max|a - b| / max|b|.
pub fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (flat64(a), flat64(b));
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    diff / scale
}

/// Run the command-line tool with `args`.
pub fn tool<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resnet-stiffness"))
        .args(args)
        .output()
        .expect("run resnet-stiffness")
}

/// A fresh, empty folder `name` under the test target's temporary folder.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

use resnet_stiffness::model::random::{
    basic, bottleneck, grouped_bottleneck, preact, projection, Masks, Rng,
};
use resnet_stiffness::model::{ResidualBlock, Shortcut};

/// A random input of `shape` (batch of one).
pub fn input(rng: &mut Rng, shape: [usize; 3]) -> Tensor {
    rng.tensor(&[1, shape[0], shape[1], shape[2]], 1.0)
}

/// (block, input shape) for every block family.
pub fn blocks(rng: &mut Rng, masks: Masks) -> Vec<(ResidualBlock, [usize; 3])> {
    let proj_basic = projection(rng, 3, 2, 2);
    let proj_bottleneck = projection(rng, 8, 4, 2);
    let proj_grouped = projection(rng, 16, 4, 2);
    vec![
        (basic(rng, 3, 3, 1, Shortcut::Identity, masks), [3, 6, 6]),
        (
            basic(rng, 2, 4, 2, Shortcut::OptionA { pad: 1 }, masks),
            [2, 6, 6],
        ),
        (basic(rng, 2, 3, 2, proj_basic, masks), [2, 7, 7]),
        (
            bottleneck(rng, 8, 2, 1, Shortcut::Identity, masks),
            [8, 4, 4],
        ),
        (bottleneck(rng, 4, 2, 2, proj_bottleneck, masks), [4, 5, 5]),
        (
            grouped_bottleneck(rng, 16, 4, 2, 1, Shortcut::Identity, masks),
            [16, 3, 3],
        ),
        (
            grouped_bottleneck(rng, 4, 4, 2, 2, proj_grouped, masks),
            [4, 5, 5],
        ),
        (preact(rng, 4, 4, 1, false, masks), [4, 5, 5]),
        (preact(rng, 2, 4, 2, true, masks), [2, 6, 6]),
        (preact(rng, 2, 4, 1, true, masks), [2, 5, 5]),
    ]
}
