//! Dense products of the reduction's factors that skip the blocks a
//! convolution window makes zero.
//!
//! Group the rows, the inner index and the columns of a product A B by
//! spatial position (every channel of one (h, w) is one group). A factor of
//! a chain of 3x3 convolutions has a nonzero block (p, q) only where the
//! positions p and q lie within its window, so
//!
//!   A B = sum over inner groups q of A\[R(q), q\] B\[q, C(q)\],
//!
//! with R(q) the row groups and C(q) the column groups whose blocks with q
//! hold a nonzero entry, costs sum_q 2 |R(q)| |q| |C(q)| flops instead of
//! 2 r k c: about 6x fewer on 4x4 maps (a 3x3 window reaches 6.25 of the 16
//! positions on average), nothing saved on 2x2 maps (every window covers
//! the map). Which blocks are nonzero is read from the values, so the
//! product equals the dense one for any matrices (to the rounding of a
//! different summation order; a skipped block contributes exact zeros).
//! Where the blocks would need more than half the dense flops
//! (`MIN_SAVING`) the plain GEMM runs.
//!
//! Memory beside the result: one block product at a time, at most the
//! result's size, made before the copies of the result that
//! `analysis::memory` counts (the footprint Jacobian; the eigen-solver's
//! working copies) exist, and the gathered blocks, (rows + columns) times
//! the units of one inner position (about 8 MB on the Tiny-ImageNet layer3.1
//! shapes).

use faer::{Accum, Mat, MatRef, Par};

/// Use the blocked product only when it needs at most this share of the
/// dense product's flops (gathering and scattering the blocks costs a few
/// passes over the output).
const MIN_SAVING: f64 = 0.5;

/// The group (spatial position) of every flat (C, H, W) index of a space
/// of shape `shape`, restricted to the indices `members` when given.
pub fn positions(shape: [usize; 3], members: Option<&[usize]>) -> Vec<usize> {
    let plane = shape[1] * shape[2];
    match members {
        Some(idx) => idx.iter().map(|&i| i % plane).collect(),
        None => (0..shape.iter().product::<usize>())
            .map(|i| i % plane)
            .collect(),
    }
}

/// a b, where `rows[i]`, `inner[k]` and `cols[j]` are the groups of a's
/// row i, of a's column (b's row) k and of b's column j. Sub-products run
/// on `par` threads.
pub fn product(
    a: MatRef<'_, f64>,
    b: MatRef<'_, f64>,
    [rows, inner, cols]: [&[usize]; 3],
    par: Par,
) -> Mat<f64> {
    debug_assert_eq!(
        (a.nrows(), a.ncols(), b.ncols()),
        (rows.len(), inner.len(), cols.len())
    );
    let row_groups = Members::of(rows);
    let inner_groups = Members::of(inner);
    let col_groups = Members::of(cols);
    let a_blocks = Blocks::of(
        a,
        [rows, inner],
        [row_groups.count(), inner_groups.count()],
        false,
    );
    // b's pattern transposed: (column group, inner group).
    let b_blocks = Blocks::of(
        b,
        [inner, cols],
        [inner_groups.count(), col_groups.count()],
        true,
    );
    let plan: Vec<(Vec<usize>, &[usize], Vec<usize>)> = (0..inner_groups.count())
        .map(|q| {
            let reached = |blocks: &Blocks, groups: &Members| -> Vec<usize> {
                (0..groups.count())
                    .filter(|&g| blocks.get(g, q))
                    .flat_map(|g| groups.group(g).iter().copied())
                    .collect()
            };
            (
                reached(&a_blocks, &row_groups),
                inner_groups.group(q),
                reached(&b_blocks, &col_groups),
            )
        })
        .filter(|(r, k, c)| !(r.is_empty() || k.is_empty() || c.is_empty()))
        .collect();
    let flops: f64 = plan
        .iter()
        .map(|(r, k, c)| r.len() as f64 * k.len() as f64 * c.len() as f64)
        .sum();
    let dense = a.nrows() as f64 * a.ncols() as f64 * b.ncols() as f64;
    if flops > MIN_SAVING * dense {
        return gemm(a, b, par);
    }
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    for (r, k, c) in &plan {
        let a_sub = Mat::<f64>::from_fn(r.len(), k.len(), |i, l| a[(r[i], k[l])]);
        let b_sub = Mat::<f64>::from_fn(k.len(), c.len(), |l, j| b[(k[l], c[j])]);
        let t = gemm(a_sub.as_ref(), b_sub.as_ref(), par);
        for (j, &col) in c.iter().enumerate() {
            let dst = out.col_as_slice_mut(col);
            for (&row, &x) in r.iter().zip(t.col_as_slice(j)) {
                dst[row] += x;
            }
        }
    }
    out
}

/// The dense product a b on `par` threads.
pub fn gemm(a: MatRef<'_, f64>, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    faer::linalg::matmul::matmul(out.as_mut(), Accum::Replace, a, b, 1.0, par);
    out
}

/// The indices of every group, in increasing order.
struct Members {
    start: Vec<usize>,
    index: Vec<usize>,
}

impl Members {
    fn of(groups: &[usize]) -> Self {
        let count = groups.iter().max().map_or(0, |g| g + 1);
        let mut start = vec![0; count + 1];
        for &g in groups {
            start[g + 1] += 1;
        }
        for g in 0..count {
            start[g + 1] += start[g];
        }
        let mut next = start.clone();
        let mut index = vec![0; groups.len()];
        for (i, &g) in groups.iter().enumerate() {
            index[next[g]] = i;
            next[g] += 1;
        }
        Self { start, index }
    }

    fn count(&self) -> usize {
        self.start.len() - 1
    }

    fn group(&self, g: usize) -> &[usize] {
        &self.index[self.start[g]..self.start[g + 1]]
    }
}

/// Which blocks of a matrix hold a nonzero entry, indexed (row group,
/// column group), or (column group, row group) when made `transposed`.
struct Blocks {
    cols: usize,
    nonzero: Vec<bool>,
}

impl Blocks {
    /// The blocks of `m`, its rows and columns grouped by `groups`, with
    /// `counts` groups each; read in storage order (column by column).
    fn of(m: MatRef<'_, f64>, groups: [&[usize]; 2], counts: [usize; 2], transposed: bool) -> Self {
        let [rows, cols] = groups;
        let at = |rg: usize, cg: usize| match transposed {
            false => rg * counts[1] + cg,
            true => cg * counts[0] + rg,
        };
        let mut nonzero = vec![false; counts[0] * counts[1]];
        for (j, &cg) in cols.iter().enumerate() {
            for (i, &rg) in rows.iter().enumerate() {
                if m[(i, j)] != 0.0 {
                    nonzero[at(rg, cg)] = true;
                }
            }
        }
        let cols = if transposed { counts[0] } else { counts[1] };
        Self { cols, nonzero }
    }

    fn get(&self, row_group: usize, col_group: usize) -> bool {
        self.nonzero[row_group * self.cols + col_group]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::random::Rng;

    /// A matrix whose (row group, column group) blocks are zero unless the
    /// groups (positions on a line) are within `reach`, as a window makes.
    fn windowed(rng: &mut Rng, rows: &[usize], cols: &[usize], reach: usize) -> Mat<f64> {
        Mat::from_fn(rows.len(), cols.len(), |i, j| {
            match rows[i].abs_diff(cols[j]) <= reach {
                true => rng.normal(),
                false => 0.0,
            }
        })
    }

    #[test]
    fn blocked_product_equals_the_dense_one() {
        let mut rng = Rng(3);
        // 16 positions of 3 channels (rows, cols) and 16 positions with a
        // varying number of active units (inner), one of them with none.
        let rows: Vec<usize> = (0..48).map(|i| i % 16).collect();
        let inner: Vec<usize> = (0..16).flat_map(|p| vec![p; p % 4]).collect();
        for (reach, blocked) in [(1, true), (15, false)] {
            let a = windowed(&mut rng, &rows, &inner, reach);
            let b = windowed(&mut rng, &inner, &rows, reach);
            let got = product(a.as_ref(), b.as_ref(), [&rows, &inner, &rows], Par::Seq);
            let want = gemm(a.as_ref(), b.as_ref(), Par::Seq);
            let scale = want.norm_max();
            assert!((&got - &want).norm_max() <= 1e-13 * scale, "reach {reach}");
            // The plan: a window of 1 on 16 positions skips most blocks.
            let flops: usize = (0..16)
                .map(|q| {
                    let near = (0..16usize).filter(|p| p.abs_diff(q) <= reach).count();
                    (near * 3) * (q % 4) * (near * 3)
                })
                .sum();
            let full = rows.len() * inner.len() * rows.len();
            assert_eq!(
                (flops as f64) <= MIN_SAVING * full as f64,
                blocked,
                "reach {reach}: {flops} of {full}"
            );
        }
    }

    /// Times the blocked and the dense product on the factors' shapes of a
    /// 256-channel 3x3 block on 4x4 maps with 1,952 active units:
    /// `cargo test --release --lib timing_blocked -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_blocked() {
        let mut rng = Rng(1);
        let near =
            |p: usize, q: usize| (p / 4).abs_diff(q / 4) <= 1 && (p % 4).abs_diff(q % 4) <= 1;
        let space = positions([256, 4, 4], None);
        let unit: Vec<usize> = (0..16).flat_map(|p| vec![p; 122]).collect();
        let v = Mat::from_fn(unit.len(), space.len(), |i, j| {
            match near(unit[i], space[j]) {
                true => rng.normal(),
                false => 0.0,
            }
        });
        let u = Mat::from_fn(space.len(), unit.len(), |i, j| {
            match near(space[i], unit[j]) {
                true => rng.normal(),
                false => 0.0,
            }
        });
        for (what, a, b, groups) in [
            ("V U (reduced)", &v, &u, [&unit[..], &space[..], &unit[..]]),
            ("U V (J_F)", &u, &v, [&space[..], &unit[..], &space[..]]),
        ] {
            let t = std::time::Instant::now();
            let got = product(a.as_ref(), b.as_ref(), groups, Par::rayon(0));
            let blocked = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let want = gemm(a.as_ref(), b.as_ref(), Par::rayon(0));
            let full = t.elapsed().as_secs_f64();
            let err = (&got - &want).norm_max() / want.norm_max();
            println!("{what}: blocked {blocked:.3} s, dense {full:.3} s, max rel diff {err:.1e}");
        }
    }

    #[test]
    fn positions_of_a_space_and_of_its_members() {
        assert_eq!(positions([2, 1, 3], None), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(positions([2, 2, 2], Some(&[1, 4, 7])), vec![1, 0, 3]);
    }
}
