//! The eigenvalue multiset of an n x n matrix.

use crate::{eigenvalues, Result};
use faer::{MatRef, Par};
use num_complex::Complex64;

/// Eigenvalues of an n x n matrix with multiplicity: `solved` from a dense
/// solve (one entry per eigenvalue) plus `exact`, values known exactly from
/// structure with their multiplicities (e.g. `(0, n - a)` from zero rows,
/// `(1, a - m)` from the low-rank identity-shortcut reduction).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spectrum {
    /// Eigenvalues from a dense solve, one entry each.
    pub solved: Vec<Complex64>,
    /// Structurally exact eigenvalues, `(value, multiplicity)`.
    pub exact: Vec<(Complex64, usize)>,
}

impl Spectrum {
    /// Assembles a spectrum from its two parts.
    pub fn new(solved: Vec<Complex64>, exact: Vec<(Complex64, usize)>) -> Self {
        Self { solved, exact }
    }

    /// All eigenvalues of the square matrix `a` by [`eigenvalues`]
    /// (single-threaded; exact zeros from zero rows/columns come out exactly).
    pub fn dense(a: MatRef<'_, f64>) -> Result<Self> {
        Ok(Self::new(eigenvalues(a, Par::Seq)?, Vec::new()))
    }

    /// The multiset {shift + mu : mu in eig(a)} U exact, the dense solve
    /// with parallelism `par`; e.g.
    /// eig(I_a + U V) = 1 + eig(V U) U {1} x (a - m) with `a = V U` (m x m),
    /// `shift = 1`, `exact = [(1, a - m)]`.
    pub fn shifted(
        a: MatRef<'_, f64>,
        shift: f64,
        exact: Vec<(Complex64, usize)>,
        par: Par,
    ) -> Result<Self> {
        let solved = eigenvalues(a, par)?;
        let solved = solved.into_iter().map(|z| z + shift).collect();
        Ok(Self::new(solved, exact))
    }

    /// Number of eigenvalues with multiplicity (the matrix size n).
    pub fn n(&self) -> usize {
        self.solved.len() + self.exact.iter().map(|&(_, k)| k).sum::<usize>()
    }

    /// Number of eigenvalues that came from the dense solve.
    pub fn solved_size(&self) -> usize {
        self.solved.len()
    }

    /// All eigenvalues with multiplicity: the solved ones, then the exact
    /// ones repeated.
    pub fn iter(&self) -> impl Iterator<Item = Complex64> + '_ {
        let exact = self
            .exact
            .iter()
            .flat_map(|&(z, k)| std::iter::repeat_n(z, k));
        self.solved.iter().copied().chain(exact)
    }

    /// Number of eigenvalues exactly equal to 0 (structural zeros plus solved
    /// values that are exactly 0.0, e.g. isolated zero rows).
    pub fn n_exact_zero(&self) -> usize {
        self.iter()
            .filter(|z| *z == Complex64::new(0.0, 0.0))
            .count()
    }
}

/// Distance between two eigenvalue multisets: the largest |a_i - b_pi(i)|
/// over a one-to-one matching pi built greedily (elements of `a` in
/// (re, im) order, each matched to the nearest unmatched element of `b`).
/// +inf when the lengths differ, 0 for two empty sets.
///
/// Guarantees: the result is the bottleneck cost of a valid matching, hence
/// an upper bound on the optimal bottleneck distance (so `d <= eps` proves
/// every value of `a` lies within eps of a distinct value of `b` and vice
/// versa); it is 0 if and only if the multisets are equal; and if both sets
/// lie within delta of a common multiset of centres whose distinct points
/// are more than 4 delta apart, the result is at most 2 delta. O(n log n)
/// for well-spread values, O(n^2) worst case.
pub fn multiset_distance(a: &[Complex64], b: &[Complex64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let by_re_im = |x: &Complex64, y: &Complex64| x.re.total_cmp(&y.re).then(x.im.total_cmp(&y.im));
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(by_re_im);
    b.sort_by(by_re_im);
    let mut used = vec![false; b.len()];
    let mut worst: f64 = 0.0;
    for z in &a {
        let (j, d) = nearest_unused(&b, &used, *z);
        used[j] = true;
        worst = worst.max(d);
    }
    worst
}

/// Index and distance of the unused element of `b` (sorted by real part)
/// nearest to `z`: scan outwards from z.re until the real-part gap alone
/// exceeds the best distance found.
fn nearest_unused(b: &[Complex64], used: &[bool], z: Complex64) -> (usize, f64) {
    let start = b.partition_point(|w| w.re < z.re);
    let mut best = (usize::MAX, f64::INFINITY);
    scan(b, used, z, start..b.len(), &mut best);
    scan(b, used, z, (0..start).rev(), &mut best);
    best
}

/// One direction of [`nearest_unused`]'s scan.
fn scan(
    b: &[Complex64],
    used: &[bool],
    z: Complex64,
    indices: impl Iterator<Item = usize>,
    best: &mut (usize, f64),
) {
    for j in indices {
        if (b[j].re - z.re).abs() > best.1 {
            break;
        }
        let d = (b[j] - z).norm();
        if !used[j] && (d < best.1 || best.0 == usize::MAX) {
            *best = (j, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{c, random_matrix, Rng};
    use faer::Mat;

    #[test]
    fn multiset_distance_basics() {
        let a = [c(1.0, 0.0), c(0.0, 1.0), c(0.0, -1.0), c(1.0, 0.0)];
        let b = [c(0.0, -1.0), c(1.0, 0.0), c(1.0, 0.0), c(0.0, 1.0)];
        assert_eq!(multiset_distance(&a, &b), 0.0);
        assert_eq!(multiset_distance(&a, &b[..3]), f64::INFINITY);
        assert_eq!(multiset_distance(&[], &[]), 0.0);
        let b2 = [c(0.0, -1.0), c(1.0, 1e-3), c(1.0, 0.0), c(0.0, 1.0)];
        assert!((multiset_distance(&a, &b2) - 1e-3).abs() < 1e-15);
        // Multiplicity matters: {1, 1, 2} vs {1, 2, 2}.
        let d = multiset_distance(
            &[c(1.0, 0.0), c(1.0, 0.0), c(2.0, 0.0)],
            &[c(1.0, 0.0), c(2.0, 0.0), c(2.0, 0.0)],
        );
        assert_eq!(d, 1.0);
    }

    #[test]
    fn multiset_distance_is_symmetric_on_perturbed_sets() {
        let mut rng = Rng::new(7);
        let a: Vec<_> = (0..200).map(|_| c(rng.normal(), rng.normal())).collect();
        let b: Vec<_> = a
            .iter()
            .rev()
            .map(|z| z + c(1e-9 * rng.normal(), 1e-9 * rng.normal()))
            .collect();
        assert!(multiset_distance(&a, &b) < 1e-8);
        assert!(multiset_distance(&b, &a) < 1e-8);
    }

    #[test]
    fn spectrum_counts_and_iteration() {
        let s = Spectrum::new(
            vec![c(0.0, 0.0), c(-0.0, 0.0), c(2.0, 1.0)],
            vec![(c(0.0, 0.0), 3), (c(1.0, 0.0), 2)],
        );
        assert_eq!(s.n(), 8);
        assert_eq!(s.solved_size(), 3);
        assert_eq!(s.n_exact_zero(), 5);
        assert_eq!(s.iter().count(), 8);
        assert_eq!(s.iter().filter(|z| z.re == 1.0).count(), 2);
    }

    #[test]
    fn shifted_spectrum_is_identity_plus_low_rank() {
        // eig(I_n + U V) = 1 + eig(V U) U {1} x (n - m).
        let mut rng = Rng::new(11);
        let (n, m) = (30, 7);
        let u = random_matrix(&mut rng, n, m);
        let v = random_matrix(&mut rng, m, n);
        let full = Mat::<f64>::identity(n, n) + &u * &v;
        let vu = &v * &u;
        let dense = Spectrum::dense(full.as_ref()).unwrap();
        let low =
            Spectrum::shifted(vu.as_ref(), 1.0, vec![(c(1.0, 0.0), n - m)], Par::Seq).unwrap();
        assert_eq!(low.n(), n);
        assert_eq!(low.solved_size(), m);
        let rho = dense.iter().map(|z| z.norm()).fold(1.0, f64::max);
        let d = multiset_distance(
            &dense.iter().collect::<Vec<_>>(),
            &low.iter().collect::<Vec<_>>(),
        );
        assert!(d <= 1e-10 * rho, "distance {d}");
    }
}
