//! The "paper-compatible" slice spectrum (METHOD.md section 6).
//!
//! `torch.linalg.eig` applied to the unflattened Jacobian J8 of shape
//! (C_o, H_o, W_o, C_i, H_i, W_i) treats the last two axes as the matrix: it
//! returns the eigenvalues of the H_i x W_i slices J8[co, ho, wo, ci, :, :]
//! (rows = input h, columns = input w), C_o H_o W_o C_i H_i values in all.
//! These are NOT eigenvalues of the block's Jacobian; they are computed only
//! to reproduce published numbers. In the row-major n_out x n_in Jacobian J
//! every slice is a contiguous run of H_i W_i entries, so J is simply the
//! sequence of its slices.

use crate::dense::EigenSolver;
use crate::{Error, Result};
use faer::{Mat, Par};
use num_complex::Complex64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stiffness_fsutil::nonfinite;

/// Summary of all slice eigenvalues (streamed, never stored).
/// `frac_re_negative` = `n_re_negative` / `count`, strict Re < 0 (no
/// tolerance, as in the reference); `n_re_exact_zero` counts Re == 0.0
/// exactly. Exact zeros count as +0.0 in `max_re` and `min_re`. Real-valued
/// fields are NaN when `count` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PaperCompatSummary {
    pub count: usize,
    #[serde(with = "nonfinite")]
    pub max_re: f64,
    #[serde(with = "nonfinite")]
    pub min_re: f64,
    #[serde(with = "nonfinite")]
    pub max_re_over_min_re: f64,
    #[serde(with = "nonfinite")]
    pub frac_re_negative: f64,
    pub n_re_negative: usize,
    pub n_re_exact_zero: usize,
}

/// Summary of the eigenvalues of every H_i x W_i slice of the row-major
/// Jacobian `j` (n_out x n_in, n_out = C_o H_o W_o, n_in = C_i H_i W_i) with
/// `out_shape` = (C_o, H_o, W_o) and `in_shape` = (C_i, H_i, W_i).
///
/// Each slice goes through the same isolation + dense solve as
/// [`crate::eigenvalues`], so zero and triangular slices give exact zeros
/// and exact diagonal values as LAPACK `geev` does; slice cores of at most
/// 16 rows go through the allocation-free small solver. An eigenvalue that
/// is zero in exact arithmetic but not isolated (a structurally singular
/// core) comes out as rounding noise or as 0.0, so its sign, and with it
/// `n_re_negative`, is decided by rounding, as in LAPACK; no two solvers
/// agree on such values bit for bit (on 4.2 million random conv-like 4 x 4
/// slices this one differs from numpy's LAPACK by 52 negatives, faer's
/// general solver by 8). Slices are solved in parallel on the rayon pool
/// (one single-threaded solve per slice).
///
/// Errors: [`Error::Shape`] if H_i != W_i or `j.len() != n_out * n_in`;
/// [`Error::NonFinite`]; [`Error::EigenNoConvergence`].
pub fn paper_compatible<T>(
    j: &[T],
    out_shape: [usize; 3],
    in_shape: [usize; 3],
) -> Result<PaperCompatSummary>
where
    T: Copy + Into<f64> + Sync,
{
    let [_, h, w] = in_shape;
    if h != w {
        return Err(Error::Shape(format!(
            "paper-compatible slices need H_in == W_in, got {h} x {w}"
        )));
    }
    let (n_out, n_in) = (
        out_shape.iter().product::<usize>(),
        in_shape.iter().product::<usize>(),
    );
    if j.len() != n_out * n_in {
        return Err(Error::Shape(format!(
            "Jacobian has {} entries, expected {n_out} x {n_in}",
            j.len()
        )));
    }
    if n_out * n_in == 0 {
        return Ok(Tally::default().summary());
    }
    let tally = j
        .par_chunks(h * h)
        .with_min_len(64)
        .try_fold(
            || {
                (
                    EigenSolver::new(Par::Seq),
                    Mat::<f64>::zeros(h, h),
                    Vec::with_capacity(h),
                    Tally::default(),
                )
            },
            |(mut solver, mut a, mut values, mut tally), slice| {
                for (k, &x) in slice.iter().enumerate() {
                    a[(k / h, k % h)] = x.into();
                }
                values.clear();
                solver.solve(a.as_ref(), &mut values)?;
                values.iter().for_each(|z| tally.add(*z));
                Ok::<_, Error>((solver, a, values, tally))
            },
        )
        .map(|state| state.map(|(_, _, _, tally)| tally))
        .try_reduce(Tally::default, |a, b| Ok(a.merge(b)))?;
    Ok(tally.summary())
}

/// Running counts and extremes of the slice eigenvalues.
#[derive(Debug, Clone, Copy)]
struct Tally {
    count: usize,
    max_re: f64,
    min_re: f64,
    n_negative: usize,
    n_zero: usize,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            count: 0,
            max_re: f64::NEG_INFINITY,
            min_re: f64::INFINITY,
            n_negative: 0,
            n_zero: 0,
        }
    }
}

impl Tally {
    fn add(&mut self, z: Complex64) {
        self.count += 1;
        self.max_re = self.max_re.max(z.re);
        self.min_re = self.min_re.min(z.re);
        self.n_negative += usize::from(z.re < 0.0);
        self.n_zero += usize::from(z.re == 0.0);
    }

    fn merge(self, other: Self) -> Self {
        Self {
            count: self.count + other.count,
            max_re: self.max_re.max(other.max_re),
            min_re: self.min_re.min(other.min_re),
            n_negative: self.n_negative + other.n_negative,
            n_zero: self.n_zero + other.n_zero,
        }
    }

    fn summary(self) -> PaperCompatSummary {
        let (max_re, min_re) = if self.count == 0 {
            (f64::NAN, f64::NAN)
        } else {
            // x + 0.0 turns -0.0 into +0.0.
            (self.max_re + 0.0, self.min_re + 0.0)
        };
        PaperCompatSummary {
            count: self.count,
            max_re,
            min_re,
            max_re_over_min_re: max_re / min_re,
            frac_re_negative: self.n_negative as f64 / self.count as f64,
            n_re_negative: self.n_negative,
            n_re_exact_zero: self.n_zero,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{plain_faer_eigenvalues, Rng};

    /// Brute force: every slice through `solve`, all values kept.
    fn brute_force(
        j: &[f64],
        h: usize,
        solve: impl Fn(&Mat<f64>) -> Vec<Complex64>,
    ) -> Vec<Complex64> {
        j.chunks(h * h)
            .flat_map(|s| solve(&Mat::from_fn(h, h, |r, c| s[r * h + c])))
            .collect()
    }

    /// Random J with conv-like structure: zero output rows, slices with a
    /// banded window of nonzeros (zero rows/columns outside it).
    fn random_conv_like(rng: &mut Rng, c: usize, h: usize) -> Vec<f64> {
        let n = c * h * h;
        let mut j = vec![0.0; n * n];
        for row in 0..n {
            if rng.uniform() < 0.3 {
                continue; // inactive output: zero row
            }
            let (ho, wo) = ((row / h) % h, row % h);
            for col in 0..n {
                let (hi, wi) = ((col / h) % h, col % h);
                if hi.abs_diff(ho) <= 1 && wi.abs_diff(wo) <= 1 && rng.uniform() < 0.8 {
                    j[row * n + col] = rng.normal();
                }
            }
        }
        j
    }

    #[test]
    fn matches_brute_force_on_conv_like_and_dense_jacobians() {
        let mut rng = Rng::new(41);
        let (c, h) = (3, 4);
        let n = c * h * h;
        let dense: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        for j in [random_conv_like(&mut rng, c, h), dense] {
            let s = paper_compatible(&j, [c, h, h], [c, h, h]).unwrap();
            let all = brute_force(&j, h, |a| crate::eigenvalues(a.as_ref(), Par::Seq).unwrap());
            let plain = brute_force(&j, h, plain_faer_eigenvalues);
            assert_eq!(s.count, n * c * h);
            assert_eq!(s.count, all.len());
            let max_re = plain.iter().map(|z| z.re).fold(f64::NEG_INFINITY, f64::max);
            let min_re = plain.iter().map(|z| z.re).fold(f64::INFINITY, f64::min);
            assert!((s.max_re - max_re).abs() <= 1e-12 * max_re.abs().max(1.0));
            assert!((s.min_re - min_re).abs() <= 1e-12 * min_re.abs().max(1.0));
            assert_eq!(s.max_re_over_min_re, s.max_re / s.min_re);
            assert_eq!(s.n_re_negative, all.iter().filter(|z| z.re < 0.0).count());
            assert_eq!(
                s.n_re_exact_zero,
                all.iter().filter(|z| z.re == 0.0).count()
            );
            // Faer alone agrees up to the zero cluster, which it resolves
            // only to eps^(1/k) on defective (nilpotent) slices.
            let noisy = plain.iter().filter(|z| z.re.abs() < 1e-3).count();
            let neg = plain.iter().filter(|z| z.re <= -1e-3).count();
            assert!(s.n_re_negative >= neg && s.n_re_negative <= neg + noisy);
            assert_eq!(s.frac_re_negative, s.n_re_negative as f64 / s.count as f64);
        }
    }

    #[test]
    fn exact_zeros_are_counted_like_lapack() {
        // C = 1, H = W = 2, out (1, 1, 2): two 2x2 slices.
        // Slice 0 = [[0, 0], [0, 0]] -> 0, 0; slice 1 = [[2, 5], [0, -3]]
        // (triangular) -> 2, -3 exactly.
        let j: [f32; 8] = [0.0, 0.0, 0.0, 0.0, 2.0, 5.0, 0.0, -3.0];
        let s = paper_compatible(&j, [1, 1, 2], [1, 2, 2]).unwrap();
        assert_eq!((s.count, s.n_re_exact_zero, s.n_re_negative), (4, 2, 1));
        assert_eq!(
            (s.max_re, s.min_re, s.max_re_over_min_re),
            (2.0, -3.0, -2.0 / 3.0)
        );
        assert_eq!(s.frac_re_negative, 0.25);
        // 1x1 spatial size: the values are the Jacobian's entries.
        let entries = [1.5_f64, -0.0, 0.0, -2.0, 4.0, 0.25];
        let s = paper_compatible(&entries, [2, 1, 1], [3, 1, 1]).unwrap();
        assert_eq!((s.count, s.n_re_exact_zero, s.n_re_negative), (6, 2, 1));
        assert_eq!((s.max_re, s.min_re), (4.0, -2.0));
    }

    #[test]
    fn all_zero_jacobian_gives_plus_zero_and_nan_ratio() {
        let s = paper_compatible(&[-0.0_f64; 2 * 8], [2, 1, 1], [2, 2, 2]).unwrap();
        assert_eq!((s.count, s.n_re_exact_zero, s.n_re_negative), (8, 8, 0));
        assert_eq!(s.min_re.to_bits(), 0.0_f64.to_bits());
        assert!(s.max_re_over_min_re.is_nan());
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(
            paper_compatible(&[0.0_f64; 6], [1, 1, 1], [1, 2, 3]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            paper_compatible(&[0.0_f64; 5], [1, 1, 1], [1, 2, 2]),
            Err(Error::Shape(_))
        ));
        let empty = paper_compatible::<f64>(&[], [0, 1, 1], [1, 2, 2]).unwrap();
        assert_eq!(empty.count, 0);
        assert!(empty.max_re.is_nan());
    }

    /// Timing on a layer3.2-sized (64 x 8 x 8) conv-like Jacobian. Run with
    /// `cargo test --release -p stiffness-spectrum -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_paper_compatible() {
        let mut rng = Rng::new(42);
        // The slice shapes of ResNet18's last blocks at 64 x 64 input, and 8 x 8.
        for (c, h) in [(512, 2), (256, 4), (64, 8)] {
            let j = random_conv_like(&mut rng, c, h);
            let t = std::time::Instant::now();
            let s = paper_compatible(&j, [c, h, h], [c, h, h]).unwrap();
            println!(
                "paper_compatible {c}x{h}x{h}: {:.3} s on {} threads, {s:?}",
                t.elapsed().as_secs_f64(),
                rayon::current_num_threads()
            );
        }
    }
}
