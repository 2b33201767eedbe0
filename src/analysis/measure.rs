//! All metrics of one block at one sample, for every requested Jacobian kind
//! and spectrum variant (METHOD.md sections 4 and 6).
//!
//! - Square blocks, exact variant: the reduced exact spectrum
//!   ([`crate::analysis::reduce::exact_spectrum`]) and its eigen-metrics; Söderlind's
//!   (mu_max + mu_min)/2 of (J + J^T)/2 by Lanczos on the reduction's factors
//!   ([`FactoredJacobian`]) or, for the active-rows form, on the assembled
//!   Jacobian (dense fallback when Lanczos does not converge); the relative step.
//! - Non-square blocks: sigma_max by Lanczos on J^T J, sigma_min = 0 exactly
//!   when rank J <= (active outputs, or active units of the narrowest inner
//!   layer) < min(n_out, n_in), else from a dense SVD.
//! - Paper-compatible variant: the H_in x W_in slice spectrum of the
//!   unflattened Jacobian.
//! - [`Method::Krylov`]: the matrix-free extremes of [`matrix_free`] instead.

use std::time::Instant;

use num_complex::Complex64;
use stiffness_records::{Method, Record, SpectrumVariant};
use stiffness_spectrum::{
    paper_compatible, sigma_max_lanczos, sym_part_extremes_dense, sym_part_extremes_lanczos,
    symmetric_extremes_lanczos, LanczosOptions, Par, SingularSummary, Spectrum,
};

use crate::analysis::factored::FactoredJacobian;
use crate::analysis::jacobian::{mostly_dense, FootprintJacobian};
use crate::analysis::linearize::Linearization;
use crate::analysis::matrix_free;
use crate::analysis::metrics::{soderlind, EigenMetrics};
use crate::analysis::reduce::{exact_spectrum, gemv};
use crate::error::{Error, Result};
use crate::model::JacobianKind;

/// Largest n_out * n_in for which a dense SVD is attempted for sigma_min.
const DENSE_SVD_LIMIT: u64 = 4096 * 4096;

/// Whether a `rows` x `cols` Jacobian is small enough for a dense SVD (the
/// dense path's sigma_min when the rank bound does not prove it 0).
pub(crate) fn dense_svd_fits(rows: u64, cols: u64) -> bool {
    rows.saturating_mul(cols) <= DENSE_SVD_LIMIT
}

/// Largest n for which a dense symmetric eigen-solve backs up Lanczos.
pub(crate) const DENSE_SYMMETRIC_LIMIT: usize = 4096;

/// Lanczos for extreme eigenvalues: the Ritz residual bounds the eigenvalue
/// error, so 1e-8 relative is far below the float32 accuracy (~1e-7) of J.
fn lanczos_options(max_iter: usize) -> LanczosOptions {
    LanczosOptions {
        tol: 1e-8,
        max_iter,
        ..LanczosOptions::default()
    }
}

/// What one measurement found: a record with its metric fields filled in
/// (n .. sigma_ratio, seconds, failure; sample and model identity are the
/// job's to add), and the full spectrum when one was computed (for
/// `--save-eigenvalues`).
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    pub metrics: Record,
    pub eigenvalues: Option<Vec<Complex64>>,
}

impl Measurement {
    /// A record of `lin` with no metrics, only the reason.
    pub fn failed(lin: &Linearization<'_>, reason: String) -> Self {
        Self::of(Record {
            failure: Some(reason),
            ..base(lin)
        })
    }

    fn of(metrics: Record) -> Self {
        Self {
            metrics,
            eigenvalues: None,
        }
    }
}

/// Measure one (block, kind, variant) by `method` (the exact variant; the
/// paper-compatible one is always dense). A non-finite Jacobian (an
/// overflow in a JVP) gives a [`Measurement::failed`] with the reason,
/// never metrics. The dense eigen-solve of the exact variant, and the
/// matrix-free solver's vector products, use `solver` threads.
pub fn measure(
    lin: &Linearization<'_>,
    kind: JacobianKind,
    variant: SpectrumVariant,
    solver: Par,
    method: Method,
) -> Result<Measurement> {
    let start = Instant::now();
    let measured = match (variant, method) {
        (SpectrumVariant::PaperCompat, _) => paper(lin, kind).map(Measurement::of),
        (SpectrumVariant::Exact, Method::Dense) if lin.is_square() => eigen(lin, kind, solver),
        (SpectrumVariant::Exact, Method::Dense) => singular(lin, kind).map(Measurement::of),
        (SpectrumVariant::Exact, Method::Krylov) if lin.is_square() => {
            matrix_free::eigen(lin, kind, solver, base(lin)).map(Measurement::of)
        }
        (SpectrumVariant::Exact, Method::Krylov) => {
            matrix_free::singular(lin, kind, rank_bound(lin, kind)?, solver, base(lin))
                .map(Measurement::of)
        }
    };
    let mut m = match measured {
        Err(Error::NonFinite(reason)) => Measurement::failed(lin, reason),
        other => other?,
    };
    m.metrics.seconds = start.elapsed().as_secs_f64();
    Ok(m)
}

/// The sizes of `lin`'s Jacobian, every metric unset.
fn base(lin: &Linearization<'_>) -> Record {
    Record {
        n: lin.n(),
        n_out: lin.out_shape.iter().product(),
        ..Record::default()
    }
}

fn eigen(lin: &Linearization<'_>, kind: JacobianKind, solver: Par) -> Result<Measurement> {
    let (spectrum, reduction) = exact_spectrum(lin, kind, solver)?;
    let e = EigenMetrics::from_spectrum(&spectrum, kind);
    let sym = soderlind_extremes(lin, kind)?;
    let metrics = Record {
        n_active: Some(reduction.n_active),
        solved_size: Some(reduction.solved_size),
        max_re: Some(e.max_re),
        min_re: Some(e.min_re),
        stiffness_index: Some(e.stiffness_index),
        stiffness_ratio: Some(e.stiffness_ratio),
        neg_share: Some(e.neg_share),
        n_zero: Some(e.n_zero),
        spectral_radius: Some(e.spectral_radius),
        soderlind: sym.map(|(lo, hi)| soderlind(lo, hi)),
        euler_unstable_share: e.euler_unstable_share,
        euler_amplification: e.euler_amplification,
        relative_step: Some(lin.relative_step()?),
        ..base(lin)
    };
    Ok(Measurement {
        metrics,
        eigenvalues: Some(all_values(&spectrum)),
    })
}

/// (mu_min, mu_max) of (J + J^T)/2: by Lanczos on the factors of the
/// reduction when it has them (no n x n matrix is formed), else, or when
/// that does not converge, from the assembled Jacobian
/// ([`symmetric_extremes`]).
fn soderlind_extremes(lin: &Linearization<'_>, kind: JacobianKind) -> Result<Option<(f64, f64)>> {
    if let Some(j) = FactoredJacobian::of(lin, kind)? {
        let mut op = |x: &[f64], y: &mut [f64]| j.symmetric_part_apply(x, y);
        if let Ok(e) = symmetric_extremes_lanczos(lin.n(), &mut op, &lanczos_options(400)) {
            return Ok(Some((e.mu_min, e.mu_max)));
        }
    }
    symmetric_extremes(&*lin.jacobian(kind)?)
}

/// (mu_min, mu_max) of (J + J^T)/2 by Lanczos; if it does not converge, by a
/// dense solve (n <= 4096) or a longer Lanczos run; `None` (reported as not
/// computed, never as a number) if that fails too.
fn symmetric_extremes(jac: &FootprintJacobian) -> Result<Option<(f64, f64)>> {
    let n = jac.n_cols();
    let op = Products::new(jac, n <= DENSE_SYMMETRIC_LIMIT);
    let matvec = |x: &[f64], y: &mut [f64]| op.matvec(x, y);
    let rmatvec = |y: &[f64], x: &mut [f64]| op.rmatvec(y, x);
    let ext = match sym_part_extremes_lanczos(n, &matvec, &rmatvec, &lanczos_options(400)) {
        Ok(ext) => Some(ext),
        Err(_) if n <= DENSE_SYMMETRIC_LIMIT => Some(op.with_dense(sym_part_extremes_dense)?),
        Err(_) => sym_part_extremes_lanczos(n, &matvec, &rmatvec, &lanczos_options(2000)).ok(),
    };
    Ok(ext.map(|e| (e.mu_min, e.mu_max)))
}

/// The products J x and J^T y of an assembled Jacobian for Lanczos. Where
/// its footprints cover most of the matrix (small maps: 2x2, 1x1) and a
/// dense copy is allowed, through that copy: a vectorised GEMV reading the
/// matrix once per product instead of the footprint loops (a Tiny-ImageNet
/// layer4.0 sigma_max record: 4.1 -> 2.6 s).
struct Products<'a> {
    jac: &'a FootprintJacobian,
    dense: Option<faer::Mat<f64>>,
}

impl<'a> Products<'a> {
    fn new(jac: &'a FootprintJacobian, dense_allowed: bool) -> Self {
        let dense = (dense_allowed && mostly_dense(jac.stored(), jac.n_rows(), jac.n_cols()))
            .then(|| whole(jac));
        Self { jac, dense }
    }

    /// y = J x.
    fn matvec(&self, x: &[f64], y: &mut [f64]) {
        match &self.dense {
            Some(m) => gemv(m.as_ref(), x, y),
            None => self.jac.matvec(x, y),
        }
    }

    /// x = J^T y.
    fn rmatvec(&self, y: &[f64], x: &mut [f64]) {
        match &self.dense {
            Some(m) => gemv(m.as_ref().transpose(), y, x),
            None => self.jac.rmatvec(y, x),
        }
    }

    /// `f` of J as a dense matrix (the copy when there is one).
    fn with_dense<R>(&self, f: impl FnOnce(faer::MatRef<'_, f64>) -> R) -> R {
        match &self.dense {
            Some(m) => f(m.as_ref()),
            None => f(whole(self.jac).as_ref()),
        }
    }
}

/// Every entry of `jac` as a dense matrix.
fn whole(jac: &FootprintJacobian) -> faer::Mat<f64> {
    let rows: Vec<usize> = (0..jac.n_rows()).collect();
    let cols: Vec<usize> = (0..jac.n_cols()).collect();
    jac.dense_submatrix(&rows, &cols)
}

/// A bound on rank J: the active outputs (block kind) or the active units
/// of the narrowest inner layer (residual kind).
fn rank_bound(lin: &Linearization<'_>, kind: JacobianKind) -> Result<usize> {
    Ok(match kind {
        JacobianKind::Block => lin.active_outputs()?.len(),
        JacobianKind::Residual => lin.active_inner()?.iter().map(Vec::len).min().unwrap_or(0),
    })
}

/// sigma_max by Lanczos on J^T J (a dense SVD when Lanczos fails on a small
/// block); sigma_min = 0 when the rank bound proves it, from a dense SVD
/// when the block is small enough for one, else not computed (null, with
/// the reason).
fn singular(lin: &Linearization<'_>, kind: JacobianKind) -> Result<Record> {
    let jac = lin.jacobian(kind)?;
    let (rows, cols) = (jac.n_rows(), jac.n_cols());
    let rank_bound = rank_bound(lin, kind)?;
    let small = dense_svd_fits(rows as u64, cols as u64);
    let rank_deficient = rank_bound < rows.min(cols);
    let record = |sigma_max: Option<f64>, sigma_min: Option<f64>, note: Option<&str>| Record {
        n_active: Some(rank_bound),
        sigma_max,
        sigma_min,
        sigma_ratio: sigma_max.zip(sigma_min).map(|(a, b)| a / b),
        not_computed: note.map(str::to_string),
        ..base(lin)
    };
    if small && !rank_deficient {
        let s = SingularSummary::dense(whole(&jac).as_ref(), Some(rank_bound))?;
        return Ok(record(Some(s.sigma_max), Some(s.sigma_min), None));
    }
    let op = Products::new(&jac, small);
    let matvec = |x: &[f64], y: &mut [f64]| op.matvec(x, y);
    let rmatvec = |y: &[f64], x: &mut [f64]| op.rmatvec(y, x);
    let sigma_max = match sigma_max_lanczos(rows, cols, &matvec, &rmatvec, &lanczos_options(400)) {
        Ok(s) => Some(s),
        Err(_) if small => Some(
            op.with_dense(|j| SingularSummary::dense(j, Some(rank_bound)))?
                .sigma_max,
        ),
        Err(_) => sigma_max_lanczos(rows, cols, &matvec, &rmatvec, &lanczos_options(2000)).ok(),
    };
    let max_note = sigma_max
        .is_none()
        .then_some("sigma_max: Lanczos did not converge in 2000 iterations");
    Ok(match rank_deficient {
        true => record(sigma_max, Some(0.0), max_note),
        false => record(
            sigma_max,
            None,
            Some(max_note.unwrap_or(
                "sigma_min, sigma_ratio: the rank bound does not prove sigma_min = 0 and the \
                 block is too large for a dense SVD",
            )),
        ),
    })
}

fn paper(lin: &Linearization<'_>, kind: JacobianKind) -> Result<Record> {
    let dense = lin.jacobian(kind)?.to_dense_row_major();
    let s = paper_compatible(&dense, lin.out_shape, lin.in_shape)?;
    Ok(Record {
        n: s.count,
        max_re: Some(s.max_re),
        min_re: Some(s.min_re),
        stiffness_index: Some(s.max_re_over_min_re),
        neg_share: Some(s.frac_re_negative),
        n_zero: Some(s.n_re_exact_zero),
        ..base(lin)
    })
}

/// Every eigenvalue with multiplicity, solved ones first.
fn all_values(spectrum: &Spectrum) -> Vec<Complex64> {
    spectrum.iter().collect()
}
