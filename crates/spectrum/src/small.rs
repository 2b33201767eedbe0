//! Eigenvalues of small dense real matrices without allocation: Householder
//! reduction to upper Hessenberg form, then the Francis double-shift QR
//! iteration of EISPACK `hqr` (Wilkinson & Reinsch, Handbook for Automatic
//! Computation II, contribution II/14), eigenvalues only.
//!
//! faer's general solver pays a fixed cost per call (workspace allocation,
//! blocked kernels) that dominates below ~16 x 16; the paper-compatible
//! spectrum solves millions of 2 x 2 to 8 x 8 slices. Both steps here are
//! backward stable (orthogonal similarity transforms), like faer's.
//!
//! Cost: (10/3) n^3 flops for the reduction and about 10 n^2 per QR sweep,
//! a few sweeps per eigenvalue.

use num_complex::Complex64;

/// The largest size solved here; larger cores go to faer.
pub(crate) const MAX_SMALL: usize = 16;

/// QR sweeps allowed per eigenvalue (or pair) before giving up, as in
/// EISPACK; exceptional shifts are taken after 10 and 20.
const MAX_SWEEPS: usize = 30;

/// Appends the n eigenvalues of the row-major n x n matrix `a` (destroyed)
/// to `out`. Returns `false`, with `out` unchanged, when the QR iteration
/// does not converge or overflows; the caller then uses a general solver.
/// Requires n <= [`MAX_SMALL`] and finite entries.
pub(crate) fn eigenvalues(a: &mut [f64], n: usize, out: &mut Vec<Complex64>) -> bool {
    debug_assert!(n <= MAX_SMALL && a.len() == n * n);
    eigenvalues_within(a, n, MAX_SWEEPS, out)
}

/// [`eigenvalues`] with at most `max_sweeps` QR sweeps per eigenvalue.
fn eigenvalues_within(
    a: &mut [f64],
    n: usize,
    max_sweeps: usize,
    out: &mut Vec<Complex64>,
) -> bool {
    hessenberg(a, n);
    let mut wr = [0.0; MAX_SMALL];
    let mut wi = [0.0; MAX_SMALL];
    let finite = |v: &[f64]| v[..n].iter().all(|x| x.is_finite());
    // Overflow (entries beyond ~1e150 squared) also goes to the general solver.
    if !hqr(a, n, max_sweeps, &mut wr, &mut wi) || !finite(&wr) || !finite(&wi) {
        return false;
    }
    out.extend((0..n).map(|i| Complex64::new(wr[i], wi[i])));
    true
}

/// A <- Q^T A Q upper Hessenberg (entries below the subdiagonal set to 0),
/// by n - 2 Householder reflections P = I - tau v v^T with v_0 = 1.
fn hessenberg(a: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    let mut v = [0.0; MAX_SMALL];
    for k in 0..n.saturating_sub(2) {
        // Reflect x = A[k+1.., k] onto beta e_1.
        let x0 = a[at(k + 1, k)];
        let tail: f64 = (k + 2..n).map(|i| a[at(i, k)] * a[at(i, k)]).sum();
        if tail == 0.0 {
            continue; // already zero below the subdiagonal: P = I
        }
        let norm = (x0 * x0 + tail).sqrt();
        let beta = if x0 >= 0.0 { -norm } else { norm };
        let tau = (beta - x0) / beta;
        let scale = 1.0 / (x0 - beta);
        v[k + 1] = 1.0;
        for i in k + 2..n {
            v[i] = a[at(i, k)] * scale;
        }
        // Left: rows k+1.. of columns k.. ; column k becomes beta e_1.
        a[at(k + 1, k)] = beta;
        for i in k + 2..n {
            a[at(i, k)] = 0.0;
        }
        for j in k + 1..n {
            let s: f64 = (k + 1..n).map(|i| v[i] * a[at(i, j)]).sum::<f64>() * tau;
            for i in k + 1..n {
                a[at(i, j)] -= s * v[i];
            }
        }
        // Right: columns k+1.. of every row.
        for i in 0..n {
            let row = &mut a[at(i, 0)..at(i, 0) + n];
            let s: f64 = (k + 1..n).map(|j| row[j] * v[j]).sum::<f64>() * tau;
            for j in k + 1..n {
                row[j] -= s * v[j];
            }
        }
    }
}

/// EISPACK `hqr` on the row-major upper Hessenberg `a`: eigenvalues into
/// (`wr`, `wi`), complex pairs with the positive imaginary part second.
/// `false` if some eigenvalue needs more than `max_sweeps` sweeps.
fn hqr(a: &mut [f64], n: usize, max_sweeps: usize, wr: &mut [f64], wi: &mut [f64]) -> bool {
    let at = |i: usize, j: usize| i * n + j;
    let anorm: f64 = (0..n)
        .flat_map(|i| (i.saturating_sub(1)..n).map(move |j| (i, j)))
        .map(|(i, j)| a[at(i, j)].abs())
        .sum();
    let mut t = 0.0; // accumulated exceptional shifts
    let mut nn = n as isize - 1;
    while nn >= 0 {
        let e = nn as usize;
        let mut sweeps = 0;
        loop {
            // Look for a negligible subdiagonal entry a[l][l-1].
            let mut l = e;
            while l >= 1 {
                let mut s = a[at(l - 1, l - 1)].abs() + a[at(l, l)].abs();
                if s == 0.0 {
                    s = anorm;
                }
                if a[at(l, l - 1)].abs() + s == s {
                    a[at(l, l - 1)] = 0.0;
                    break;
                }
                l -= 1;
            }
            let mut x = a[at(e, e)];
            if l == e {
                // One root found.
                wr[e] = x + t;
                wi[e] = 0.0;
                nn -= 1;
                break;
            }
            let mut y = a[at(e - 1, e - 1)];
            let mut w = a[at(e, e - 1)] * a[at(e - 1, e)];
            if l == e - 1 {
                // Two roots found: the trailing 2 x 2 block.
                let p = 0.5 * (y - x);
                let q = p * p + w;
                let z = q.abs().sqrt();
                x += t;
                if q >= 0.0 {
                    let z = p + z.copysign(p);
                    wr[e - 1] = x + z;
                    wr[e] = if z != 0.0 { x - w / z } else { x + z };
                    wi[e - 1] = 0.0;
                    wi[e] = 0.0;
                } else {
                    wr[e - 1] = x + p;
                    wr[e] = x + p;
                    wi[e - 1] = -z;
                    wi[e] = z;
                }
                nn -= 2;
                break;
            }
            if sweeps == max_sweeps {
                return false;
            }
            if sweeps == 10 || sweeps == 20 {
                // Exceptional shift.
                t += x;
                for i in 0..=e {
                    a[at(i, i)] -= x;
                }
                let s = a[at(e, e - 1)].abs() + a[at(e - 1, e - 2)].abs();
                x = 0.75 * s;
                y = x;
                w = -0.4375 * s * s;
            }
            sweeps += 1;
            double_shift_sweep(a, n, l, e, x, y, w);
        }
    }
    true
}

/// One Francis double-shift QR sweep on the active block l..=e of `a`, with
/// the shifts given by the trailing 2 x 2 block (x = a_ee, y = a_{e-1,e-1},
/// w = a_{e,e-1} a_{e-1,e}); it starts at the lowest row m >= l where two
/// consecutive small subdiagonal entries allow it.
fn double_shift_sweep(a: &mut [f64], n: usize, l: usize, e: usize, x: f64, y: f64, w: f64) {
    let at = |i: usize, j: usize| i * n + j;
    // Form the shift's first column and look for the starting row m.
    let (mut p, mut q, mut r);
    let mut m = e - 2;
    loop {
        let z = a[at(m, m)];
        let rr = x - z;
        let ss = y - z;
        p = (rr * ss - w) / a[at(m + 1, m)] + a[at(m, m + 1)];
        q = a[at(m + 1, m + 1)] - z - rr - ss;
        r = a[at(m + 2, m + 1)];
        let s = p.abs() + q.abs() + r.abs();
        p /= s;
        q /= s;
        r /= s;
        if m == l {
            break;
        }
        let u = a[at(m, m - 1)].abs() * (q.abs() + r.abs());
        let v = p.abs() * (a[at(m - 1, m - 1)].abs() + z.abs() + a[at(m + 1, m + 1)].abs());
        if u + v == v {
            break;
        }
        m -= 1;
    }
    for i in m + 2..=e {
        a[at(i, i - 2)] = 0.0;
        if i != m + 2 {
            a[at(i, i - 3)] = 0.0;
        }
    }
    // Chase the bulge from row m to the bottom of the block.
    for k in m..e {
        let mut scale = 1.0;
        if k != m {
            p = a[at(k, k - 1)];
            q = a[at(k + 1, k - 1)];
            r = if k != e - 1 { a[at(k + 2, k - 1)] } else { 0.0 };
            scale = p.abs() + q.abs() + r.abs();
            if scale != 0.0 {
                p /= scale;
                q /= scale;
                r /= scale;
            }
        }
        let s = (p * p + q * q + r * r).sqrt().copysign(p);
        if s == 0.0 {
            continue;
        }
        if k == m {
            if l != m {
                a[at(k, k - 1)] = -a[at(k, k - 1)];
            }
        } else {
            a[at(k, k - 1)] = -s * scale;
        }
        p += s;
        let (xk, yk, zk) = (p / s, q / s, r / s);
        q /= p;
        r /= p;
        let three = k != e - 1;
        // Row modification (columns k..n: the whole rows of the iterate
        // are not needed for eigenvalues, only the active block's).
        for j in k..=e {
            let mut pp = a[at(k, j)] + q * a[at(k + 1, j)];
            if three {
                pp += r * a[at(k + 2, j)];
                a[at(k + 2, j)] -= pp * zk;
            }
            a[at(k + 1, j)] -= pp * yk;
            a[at(k, j)] -= pp * xk;
        }
        // Column modification.
        for i in l..=e.min(k + 3) {
            let mut pp = xk * a[at(i, k)] + yk * a[at(i, k + 1)];
            if three {
                pp += zk * a[at(i, k + 2)];
                a[at(i, k + 2)] -= pp * r;
            }
            a[at(i, k + 1)] -= pp * q;
            a[at(i, k)] -= pp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multiset_distance;
    use crate::testutil::{plain_faer_eigenvalues, random_matrix, scale, Rng};
    use faer::Mat;

    fn ours(a: &Mat<f64>) -> Vec<Complex64> {
        let n = a.nrows();
        let mut buf: Vec<f64> = (0..n * n).map(|k| a[(k / n, k % n)]).collect();
        let mut out = Vec::new();
        assert!(eigenvalues(&mut buf, n, &mut out), "no convergence");
        out
    }

    fn agree(a: &Mat<f64>, what: &str) {
        let reference = plain_faer_eigenvalues(a);
        let got = ours(a);
        let d = multiset_distance(&got, &reference);
        assert!(
            d <= 1e-12 * scale(&reference),
            "{what} n = {}: distance {d:.2e}",
            a.nrows()
        );
    }

    #[test]
    fn matches_faer_on_random_matrices_of_every_small_size() {
        let mut rng = Rng::new(11);
        for n in 0..=MAX_SMALL {
            for trial in 0..50 {
                let mut a = random_matrix(&mut rng, n, n);
                if trial % 5 == 1 {
                    a *= faer::Scale(1e-7); // small Jacobian entries
                }
                if trial % 5 == 2 {
                    // Symmetric: real spectrum, exercises the real pairs.
                    a = Mat::from_fn(n, n, |i, j| a[(i, j)] + a[(j, i)]);
                }
                agree(&a, "random");
            }
        }
    }

    #[test]
    fn matches_faer_on_structured_matrices() {
        let mut rng = Rng::new(12);
        for n in 1..=MAX_SMALL {
            // Already Hessenberg, with a zero subdiagonal entry (splits).
            let h = Mat::from_fn(n, n, |i, j| {
                if i > j + 1 || (i == n / 2 + 1 && j == n / 2) {
                    0.0
                } else {
                    rng.normal()
                }
            });
            agree(&h, "hessenberg");
            // Rotation blocks: purely imaginary pairs.
            let rot = Mat::from_fn(n, n, |i, j| match (i / 2 == j / 2, i % 2, j % 2) {
                (true, 0, 1) if i + 1 < n => 1.0 + (i as f64),
                (true, 1, 0) => -1.0 - (j as f64),
                _ => 0.0,
            });
            agree(&rot, "rotations");
            // A conv-like slice: a band of nonzeros.
            let band = Mat::from_fn(n, n, |i, j| {
                if i.abs_diff(j) <= 1 {
                    rng.normal()
                } else {
                    0.0
                }
            });
            agree(&band, "band");
        }
        // Without sweeps only already-deflated matrices succeed, and a
        // failure leaves `out` as it was.
        let mut a: Vec<f64> = (0..9)
            .map(|k| [1.0, 2.0, 0.5][k % 3] * (k as f64 - 3.7))
            .collect();
        let mut out = vec![Complex64::new(7.0, 0.0)];
        assert!(!eigenvalues_within(&mut a, 3, 0, &mut out));
        assert_eq!(out, vec![Complex64::new(7.0, 0.0)]);
        let mut diag = vec![2.0, 0.0, 0.0, 5.0];
        assert!(eigenvalues_within(&mut diag, 2, 0, &mut out));
        assert_eq!(out.len(), 3);
        // Entries whose squares overflow: no non-finite value comes out.
        let mut huge: Vec<f64> = (0..9).map(|k| 1e300 * (k as f64 - 3.7)).collect();
        let before = out.len();
        if eigenvalues(&mut huge, 3, &mut out) {
            assert!(out[before..]
                .iter()
                .all(|z| z.re.is_finite() && z.im.is_finite()));
        }
        // Exact known spectra.
        let e = ours(&Mat::from_fn(2, 2, |i, j| [[0.0, 1.0], [-4.0, 0.0]][i][j]));
        assert_eq!(e, vec![Complex64::new(0.0, -2.0), Complex64::new(0.0, 2.0)]);
        let e = ours(&Mat::from_fn(2, 2, |i, j| [[3.0, 1.0], [0.0, -2.0]][i][j]));
        assert!(
            multiset_distance(&e, &[Complex64::new(3.0, 0.0), Complex64::new(-2.0, 0.0)]) < 1e-15
        );
    }
}
