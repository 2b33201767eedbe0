//! The permutation step of LAPACK `dgebal` (job 'P'): isolation of
//! eigenvalues that the sparsity pattern alone determines.
//!
//! If, within the active index set S, row i of A has no nonzero
//! off-diagonal entry, then ordering S with i last makes A[S, S] block upper
//! triangular with a trailing 1 x 1 block (a_ii), so
//! eig(A[S, S]) = {a_ii} U eig(A[S \ i, S \ i]). The same holds for a column
//! with no nonzero off-diagonal entry (ordered first: block lower
//! triangular). Repeating this yields eig(A) = {a_ii : i isolated} U
//! eig(A[core, core]), where the isolated values are exact (no rounding).
//!
//! Order of the search, as in LAPACK: rows until none is left, then columns
//! until none is left. LAPACK does not go back to rows afterwards, and need
//! not: a column is removed only when its off-diagonal entries in the active
//! rows are zero, so its removal changes no row's count (and vice versa for
//! the row phase and columns). The result is therefore the largest
//! isolatable set, independent of the search order, and it is the set
//! `geev` isolates. Each phase is O(n^2) through per-line counters of
//! nonzero off-diagonal entries within the active set.

use faer::MatRef;

/// Reusable buffers for [`Isolation::run`].
#[derive(Debug, Default)]
pub(crate) struct Isolation {
    /// Isolated indices, in the order they were found.
    pub isolated: Vec<usize>,
    /// Remaining active indices (ascending): the core to solve densely.
    pub core: Vec<usize>,
    active: Vec<bool>,
    count: Vec<usize>,
    queue: Vec<usize>,
}

impl Isolation {
    /// Splits the indices of the square matrix `a` into isolated ones and the
    /// core; see the module documentation.
    pub fn run(&mut self, a: MatRef<'_, f64>) {
        let n = a.nrows();
        self.isolated.clear();
        self.active.clear();
        self.active.resize(n, true);
        self.peel(a);
        self.peel(a.transpose());
        self.core.clear();
        self.core.extend((0..n).filter(|&i| self.active[i]));
    }

    /// Removes, to a fixpoint, every active row of `e` whose off-diagonal
    /// entries in the active columns are all exactly zero. Called with the
    /// transpose, it does the same for columns.
    fn peel(&mut self, e: MatRef<'_, f64>) {
        let n = e.nrows();
        let active = &mut self.active;
        self.count.clear();
        self.count.extend((0..n).map(|i| {
            if !active[i] {
                return usize::MAX;
            }
            (0..n)
                .filter(|&j| j != i && active[j] && e[(i, j)] != 0.0)
                .count()
        }));
        self.queue.clear();
        self.queue.extend((0..n).filter(|&i| self.count[i] == 0));
        while let Some(i) = self.queue.pop() {
            active[i] = false;
            self.isolated.push(i);
            for k in 0..n {
                if active[k] && e[(k, i)] != 0.0 {
                    self.count[k] -= 1;
                    if self.count[k] == 0 {
                        self.queue.push(k);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    fn run(a: &Mat<f64>) -> (Vec<usize>, Vec<usize>) {
        let mut iso = Isolation::default();
        iso.run(a.as_ref());
        let mut isolated = iso.isolated.clone();
        isolated.sort_unstable();
        (isolated, iso.core.clone())
    }

    #[test]
    fn zero_matrix_is_fully_isolated() {
        let (isolated, core) = run(&Mat::zeros(4, 4));
        assert_eq!(isolated, vec![0, 1, 2, 3]);
        assert!(core.is_empty());
    }

    #[test]
    fn dense_matrix_has_no_isolation() {
        let a = Mat::from_fn(3, 3, |i, j| (1 + i + 2 * j) as f64);
        let (isolated, core) = run(&a);
        assert!(isolated.is_empty());
        assert_eq!(core, vec![0, 1, 2]);
    }

    #[test]
    fn upper_triangular_is_fully_isolated() {
        let a = Mat::from_fn(5, 5, |i, j| if j >= i { 1.0 + j as f64 } else { 0.0 });
        let (isolated, core) = run(&a);
        assert_eq!(isolated.len(), 5);
        assert!(core.is_empty());
    }

    #[test]
    fn zero_row_and_zero_column() {
        // Row 0 zero off the diagonal, column 3 zero off the diagonal, dense
        // coupling between 1 and 2.
        let a = Mat::from_fn(4, 4, |i, j| match (i, j) {
            (0, _) if j != 0 => 0.0,
            (_, 3) if i != 3 => 0.0,
            _ => 1.0,
        });
        let (isolated, core) = run(&a);
        assert_eq!(isolated, vec![0, 3]);
        assert_eq!(core, vec![1, 2]);
    }

    #[test]
    fn chains_peel_recursively() {
        // Row phase: row 1 is zero off the diagonal; then row 0 (coupled only
        // to 1) and then row 2 (coupled only to 0) follow.
        let a = Mat::from_fn(3, 3, |i, j| match (i, j) {
            (0, 1) | (2, 0) => 1.0,
            (i, j) if i == j => 2.0,
            _ => 0.0,
        });
        let (isolated, core) = run(&a);
        assert_eq!(isolated, vec![0, 1, 2]);
        assert!(core.is_empty());
        // Column phase: column 2 is zero off the diagonal, then column 1
        // (coupled only to row 2); rows 0 and 3 stay coupled to each other,
        // and no row is ever zero off the diagonal.
        let b = Mat::from_fn(4, 4, |i, j| match (i, j) {
            (0, 3) | (3, 0) | (2, 1) | (1, 0) => 1.0,
            (i, j) if i == j => 2.0,
            _ => 0.0,
        });
        let (isolated, core) = run(&b);
        assert_eq!(isolated, vec![1, 2]);
        assert_eq!(core, vec![0, 3]);
    }
}
