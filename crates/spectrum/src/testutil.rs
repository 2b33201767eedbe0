//! Test helpers: a tiny deterministic PRNG and random matrices.

use faer::Mat;
use num_complex::Complex64;

/// splitmix64 with Box-Muller normals.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Uniform index in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize
    }
}

pub fn c(re: f64, im: f64) -> Complex64 {
    Complex64::new(re, im)
}

pub fn random_matrix(rng: &mut Rng, rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |_, _| rng.normal())
}

/// Random matrix where each entry is nonzero with probability `density`.
pub fn random_sparse(rng: &mut Rng, rows: usize, cols: usize, density: f64) -> Mat<f64> {
    Mat::from_fn(rows, cols, |_, _| {
        if rng.uniform() < density {
            rng.normal()
        } else {
            0.0
        }
    })
}

/// Eigenvalues by faer alone (no isolation), the reference.
pub fn plain_faer_eigenvalues(a: &Mat<f64>) -> Vec<Complex64> {
    a.eigenvalues().expect("faer eigenvalues")
}

/// Largest modulus, at least 1.
pub fn scale(values: &[Complex64]) -> f64 {
    values.iter().map(|z| z.norm()).fold(1.0, f64::max)
}
