//! Matrix-free metrics of a block at one sample (METHOD.md section 8): no
//! n x n matrix, no footprint Jacobian, only JVPs and VJPs of the
//! linearised block on single vectors, memory O(n k) for k Krylov vectors.
//!
//! - Eigen-extremes by Krylov-Schur ([`stiffness_spectrum::krylov_schur`])
//!   on the *reduced* operator of the exact reduction ([`Form`]): V U (or
//!   V D_out U) through the narrowest active layer, or J_B restricted to the
//!   active outputs; the eigenvalues the structure gives (0, 1) join the
//!   Ritz values exactly. From them max_re, min_re, the stiffness index,
//!   the spectral radius and, for J_F, max |1 + lambda|.
//! - Söderlind's number: Krylov-Schur on (J + J^T)/2 (one JVP and one VJP
//!   per application; symmetric, so Lanczos in effect).
//! - Non-square blocks: sigma_max from the largest eigenvalue of J^T J.
//!
//! Every value carries its evidence (true Ritz residual, applications,
//! restarts, convergence). Metrics that need the whole spectrum (neg_share,
//! n_zero, the Euler share) or an interior eigenvalue (the classical
//! stiffness ratio's smallest |Re|) are null, with the reason in
//! `not_computed`; a value whose Ritz pair did not converge is null too.

use std::cell::RefCell;

use candle_core::{DType, Device, Tensor};
use stiffness_records::{Method, Record};
use stiffness_spectrum::{krylov_schur, KrylovOptions, KrylovReport, Par, RitzEstimate, Target};

use crate::analysis::linearize::{active, Linearization};
use crate::analysis::metrics::soderlind;
use crate::analysis::reduce::Form;
use crate::error::{Error, Result};
use crate::model::JacobianKind;

/// Krylov basis size of the first cycles. Classical Gram-Schmidt against the
/// basis is memory-bound at n = 10^5-10^6 and costs about as much as a JVP
/// at 48 vectors, so most records are cheapest with a short basis.
pub const KRYLOV_DIM: usize = 48;

/// The basis size after `GROW_AFTER` restarts without convergence, and
/// the memory bound: (KRYLOV_MAX_DIM + 1) n f64 per run. A clustered
/// extreme that needs hundreds of restarts at 48 needs a few at 96
/// (BENCHMARKS.md, ImageNet scale).
pub const KRYLOV_MAX_DIM: usize = 96;

/// Restarts of the short basis before it grows.
const GROW_AFTER: usize = 16;

/// Restart cap of one run (at most about KRYLOV_MAX_DIM / 2 applications each).
const MAX_RESTARTS: usize = 400;

/// The true relative Ritz residual a reported extreme must reach. A float32
/// JVP rounds each of its sums of C k^2 products (up to 4,608 terms): the
/// true residual of a converged pair then sits at 2e-7 to 2e-6 of the
/// spectral radius on ResNet18/50 blocks, so 1e-5 accepts those and nothing
/// far from convergence (the iteration itself runs on to a tenth of this,
/// [`stiffness_spectrum::krylov_schur`]); float64 operators (tests) to 1e-10.
pub fn krylov_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-10,
        _ => 1e-5,
    }
}

fn options(lin: &Linearization<'_>, par: Par) -> KrylovOptions {
    KrylovOptions {
        tol: krylov_tolerance(lin.block.branch.dtype()),
        dim: KRYLOV_DIM,
        max_dim: KRYLOV_MAX_DIM,
        grow_after: GROW_AFTER,
        max_restarts: MAX_RESTARTS,
        par,
        ..KrylovOptions::default()
    }
}

/// What the matrix-free solver leaves null, always.
const WHOLE_SPECTRUM: &str = "neg_share, n_zero, stiffness_ratio, euler_unstable_share: \
     need the whole spectrum (or the eigenvalue with negative real part nearest zero), \
     which the matrix-free solver does not compute";

/// y = A x as a function on f64 vectors (through tensors of the block's dtype).
type Apply<'a> = Box<dyn Fn(&[f64]) -> Result<Vec<f64>> + 'a>;

/// A linear map on R^dim.
struct Operator<'a> {
    dim: usize,
    apply: Apply<'a>,
}

impl Operator<'_> {
    /// Krylov-Schur on this operator; an error inside an application (or a
    /// non-finite value) stops the run and is returned.
    fn krylov(&self, targets: &[Target], opts: &KrylovOptions) -> Result<KrylovReport> {
        let failure = RefCell::new(None);
        let mut op = |x: &[f64], y: &mut [f64]| match (self.apply)(x) {
            Ok(v) => y.copy_from_slice(&v),
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                y.fill(f64::NAN);
            }
        };
        let report = krylov_schur(self.dim, &mut op, targets, opts);
        if let Some(e) = failure.into_inner() {
            return Err(e);
        }
        report.map_err(|e| match e {
            stiffness_spectrum::Error::NonFinite => {
                Error::NonFinite("a matrix-free JVP or VJP gave a non-finite value".into())
            }
            other => other.into(),
        })
    }
}

/// x as a (1, C, H, W) tensor of `dtype`.
fn tensor(x: &[f64], shape: [usize; 3], dtype: DType) -> Result<Tensor> {
    Ok(Tensor::from_slice(x, (1, shape[0], shape[1], shape[2]), &Device::Cpu)?.to_dtype(dtype)?)
}

fn values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// `x` (indexed by `at`) scattered into a zero vector of length `len`.
fn scatter(x: &[f64], at: &[usize], len: usize) -> Vec<f64> {
    let mut full = vec![0.0; len];
    at.iter().zip(x).for_each(|(&i, &v)| full[i] = v);
    full
}

fn gather(full: &[f64], at: &[usize]) -> Vec<f64> {
    at.iter().map(|&i| full[i]).collect()
}

/// The reduced operator of `form`: V U, V D_out U (on the m active units of
/// the cut layer) or J_B[A, A] (on the active outputs).
fn reduced_operator<'a>(lin: &'a Linearization<'a>, form: &Form) -> Result<Operator<'a>> {
    let dtype = lin.block.branch.dtype();
    Ok(match form {
        Form::ActiveRows { active } => {
            let active = active.clone();
            Operator {
                dim: active.len(),
                apply: Box::new(move |x| {
                    let t = tensor(&scatter(x, &active, lin.n()), lin.in_shape, dtype)?;
                    let y = values(&lin.block.jvp(&lin.trace, JacobianKind::Block, &t)?)?;
                    Ok(gather(&y, &active))
                }),
            }
        }
        Form::Branch { cut, .. } | Form::Shifted { cut, .. } => {
            let branch = &lin.block.branch;
            let at = branch.relu_positions()[*cut];
            let end = branch.layers.len();
            let inner = branch.shape_after(lin.in_shape, at);
            let units = active(&lin.trace64.branch.masks[*cut])?;
            let mask = match form {
                Form::Shifted { .. } => Some(lin.trace.out_mask.clone()),
                _ => None,
            };
            let inner_len: usize = inner.iter().product();
            Operator {
                dim: units.len(),
                apply: Box::new(move |x| {
                    let z = tensor(&scatter(x, &units, inner_len), inner, dtype)?;
                    let mut u = branch.jvp_range(&lin.trace.branch, at + 1..end, &z)?;
                    if let Some(d) = &mask {
                        u = u.broadcast_mul(d)?;
                    }
                    let v = values(&branch.jvp_range(&lin.trace.branch, 0..at + 1, &u)?)?;
                    Ok(gather(&v, &units))
                }),
            }
        }
    })
}

/// An operator on the block's input space, `map` applied to x as a tensor.
fn on_input_space<'a>(
    lin: &'a Linearization<'a>,
    map: impl Fn(&Tensor) -> Result<Tensor> + 'a,
) -> Operator<'a> {
    let dtype = lin.block.branch.dtype();
    Operator {
        dim: lin.n(),
        apply: Box::new(move |x| values(&map(&tensor(x, lin.in_shape, dtype)?)?)),
    }
}

/// (J + J^T)/2 (square blocks): one JVP and one VJP per application.
fn symmetric_part<'a>(lin: &'a Linearization<'a>, kind: JacobianKind) -> Operator<'a> {
    on_input_space(lin, move |t| {
        let jx = lin.block.jvp(&lin.trace, kind, t)?;
        let jtx = lin.block.vjp(&lin.trace, kind, t, lin.in_shape)?;
        Ok(((jx + jtx)? * 0.5)?)
    })
}

/// J^T J: a JVP, then a VJP.
fn normal_operator<'a>(lin: &'a Linearization<'a>, kind: JacobianKind) -> Operator<'a> {
    on_input_space(lin, move |t| {
        let jx = lin.block.jvp(&lin.trace, kind, t)?;
        lin.block.vjp(&lin.trace, kind, &jx, lin.in_shape)
    })
}

/// One metric's value and the residual behind it; `None` when its Ritz pair
/// did not converge.
#[derive(Debug, Clone, Copy)]
struct Extreme {
    value: Option<f64>,
    residual: f64,
}

/// One extreme of J by `score` (of (Re, Im); larger is better): the better
/// of the Ritz value `estimate` shifted by `shift` and the eigenvalues
/// `exact` that structure gives (residual 0); null, with a note naming
/// `name`, when the Ritz pair did not converge (a structural value cannot
/// stand in then: the unconverged part of the spectrum might beat it).
fn extreme(
    estimate: Option<&RitzEstimate>,
    shift: f64,
    exact: &[f64],
    name: &str,
    score: &dyn Fn(f64, f64) -> f64,
    evidence: &mut Evidence,
) -> Extreme {
    let structural = exact
        .iter()
        .map(|&v| score(v, 0.0))
        .fold(f64::NEG_INFINITY, f64::max);
    let exact_value = Extreme {
        value: Some(structural),
        residual: 0.0,
    };
    let Some(e) = estimate else {
        return exact_value;
    };
    if !e.converged {
        return evidence.take(name, e, |v| v);
    }
    let ritz = score(shift + e.value.re, e.value.im);
    if structural >= ritz {
        exact_value
    } else {
        Extreme {
            value: Some(ritz),
            residual: e.residual,
        }
    }
}

/// Collects the evidence of the Krylov runs of one record.
#[derive(Default)]
struct Evidence {
    applications: usize,
    restarts: usize,
    dim: usize,
    converged: bool,
    notes: Vec<String>,
    tol: f64,
}

impl Evidence {
    fn new(tol: f64) -> Self {
        Self {
            converged: true,
            tol,
            ..Self::default()
        }
    }

    fn add(&mut self, report: &KrylovReport) {
        self.applications += report.applications;
        self.restarts += report.restarts;
        self.dim = self.dim.max(report.dim);
        self.converged &= report.converged();
    }

    /// `estimate` as a metric: its value through `f` if it converged, else
    /// null with a note naming `metric`.
    fn take(&mut self, metric: &str, estimate: &RitzEstimate, f: impl Fn(f64) -> f64) -> Extreme {
        if !estimate.converged {
            self.notes.push(format!(
                "{metric}: Krylov-Schur did not converge (relative residual {:.1e} > {:.0e})",
                estimate.residual, self.tol
            ));
        }
        Extreme {
            value: estimate.converged.then(|| f(estimate.value.re)),
            residual: estimate.residual,
        }
    }

    /// Write the evidence into `record` (of a square block when `square`).
    fn fill(self, record: &mut Record, square: bool) {
        record.method = Method::Krylov;
        record.applications = Some(self.applications);
        record.restarts = Some(self.restarts);
        record.krylov_dim = Some(self.dim);
        record.krylov_tol = Some(self.tol);
        record.converged = Some(self.converged);
        let mut notes = self.notes;
        if square {
            notes.push(WHOLE_SPECTRUM.into());
        }
        record.not_computed = (!notes.is_empty()).then(|| notes.join("; "));
    }
}

/// The metrics of a square block's `kind` Jacobian, matrix-free. `record`
/// carries the sizes already; the metrics and evidence are filled in.
pub fn eigen(
    lin: &Linearization<'_>,
    kind: JacobianKind,
    par: Par,
    mut record: Record,
) -> Result<Record> {
    let opts = options(lin, par);
    let mut evidence = Evidence::new(opts.tol);
    let n = lin.n();
    let form = Form::of(lin, kind)?;
    let shift = form.shift();
    let exact: Vec<f64> = form.exact(n).iter().map(|(z, _)| z.re).collect();
    // Targets in terms of theta, the small problem's eigenvalues (lambda = shift + theta).
    let mut targets = vec![
        Target::MaxRe,
        Target::MinRe,
        Target::MaxShiftedModulus(shift),
    ];
    if kind == JacobianKind::Residual {
        targets.push(Target::MaxShiftedModulus(1.0 + shift));
    }
    let op = reduced_operator(lin, &form)?;
    let report = (op.dim > 0)
        .then(|| op.krylov(&targets, &opts))
        .transpose()?;
    if let Some(r) = &report {
        evidence.add(r);
    }
    let mut metric = |i: usize, name: &str, score: &dyn Fn(f64, f64) -> f64| {
        let estimate = report.as_ref().map(|r| &r.estimates[i]);
        extreme(estimate, shift, &exact, name, score, &mut evidence)
    };
    let max_re = metric(0, "max_re", &|re, _| re);
    let min_re = metric(1, "min_re", &|re, _| -re);
    let radius = metric(2, "spectral_radius", &|re, im| re.hypot(im));
    let euler = (kind == JacobianKind::Residual)
        .then(|| metric(3, "euler_amplification", &|re, im| (1.0 + re).hypot(im)));
    // +0.0: an exact zero counts as +0 (METHOD.md section 4).
    let min_re_value = min_re.value.map(|v| -v + 0.0);
    let max_re_value = max_re.value.map(|v| v + 0.0);
    record.n_active = Some(form.n_active());
    record.max_re = max_re_value;
    record.min_re = min_re_value;
    record.stiffness_index = max_re_value.zip(min_re_value).map(|(a, b)| a / b);
    record.spectral_radius = radius.value;
    record.max_re_residual = Some(max_re.residual);
    record.min_re_residual = Some(min_re.residual);
    record.spectral_radius_residual = Some(radius.residual);
    if let Some(e) = euler {
        record.euler_amplification = e.value;
        record.euler_residual = Some(e.residual);
    }
    // Söderlind's number from (J + J^T)/2.
    let sym = symmetric_part(lin, kind).krylov(&[Target::MaxRe, Target::MinRe], &opts)?;
    evidence.add(&sym);
    let hi = evidence.take("soderlind (mu_max)", &sym.estimates[0], |v| v);
    let lo = evidence.take("soderlind (mu_min)", &sym.estimates[1], |v| v);
    record.soderlind = hi.value.zip(lo.value).map(|(hi, lo)| soderlind(lo, hi));
    record.soderlind_residual = Some(hi.residual.max(lo.residual));
    record.relative_step = Some(lin.relative_step()?);
    evidence.fill(&mut record, true);
    Ok(record)
}

/// sigma_max of a non-square block's `kind` Jacobian from J^T J, and
/// sigma_min = 0 when the rank bound proves it (`rank_bound` < min(rows,
/// cols)), else null.
pub fn singular(
    lin: &Linearization<'_>,
    kind: JacobianKind,
    rank_bound: usize,
    par: Par,
    mut record: Record,
) -> Result<Record> {
    let opts = options(lin, par);
    let mut evidence = Evidence::new(opts.tol);
    let report = normal_operator(lin, kind).krylov(&[Target::MaxRe], &opts)?;
    evidence.add(&report);
    let top = evidence.take("sigma_max", &report.estimates[0], |v| v.max(0.0).sqrt());
    record.n_active = Some(rank_bound);
    record.sigma_max = top.value;
    record.sigma_max_residual = Some(top.residual);
    let rows: usize = lin.out_shape.iter().product();
    if rank_bound < rows.min(lin.n()) {
        record.sigma_min = Some(0.0);
        record.sigma_ratio = top.value.map(|s| s / 0.0);
    } else {
        evidence.notes.push(
            "sigma_min, sigma_ratio: the smallest singular value is not computed matrix-free"
                .into(),
        );
    }
    evidence.fill(&mut record, false);
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_complex::Complex64;

    fn estimate(re: f64, im: f64, converged: bool) -> RitzEstimate {
        RitzEstimate {
            value: Complex64::new(re, im),
            residual: if converged { 1e-9 } else { 1e-3 },
            converged,
        }
    }

    fn max_re(re: f64, _: f64) -> f64 {
        re
    }

    #[test]
    fn structural_eigenvalues_join_the_ritz_values_exactly() {
        let mut ev = Evidence::new(1e-6);
        // Ritz -0.3 (+ shift 1 = 0.7) against the structural 0 and 1: 1 wins, exactly.
        let e = extreme(
            Some(&estimate(-0.3, 0.0, true)),
            1.0,
            &[0.0, 1.0],
            "max_re",
            &max_re,
            &mut ev,
        );
        assert_eq!((e.value, e.residual), (Some(1.0), 0.0));
        // Ritz 0.4 + 1 beats them: its residual is reported.
        let e = extreme(
            Some(&estimate(0.4, 0.2, true)),
            1.0,
            &[0.0, 1.0],
            "max_re",
            &max_re,
            &mut ev,
        );
        assert_eq!((e.value, e.residual), (Some(1.4), 1e-9));
        // Modulus of a complex pair.
        let radius = |re: f64, im: f64| re.hypot(im);
        let e = extreme(
            Some(&estimate(3.0, 4.0, true)),
            0.0,
            &[0.0],
            "rho",
            &radius,
            &mut ev,
        );
        assert_eq!(e.value, Some(5.0));
        // No reduced problem (no active unit): the structure alone.
        let e = extreme(None, 0.0, &[0.0], "max_re", &max_re, &mut ev);
        assert_eq!((e.value, e.residual), (Some(0.0), 0.0));
        assert!(ev.notes.is_empty());
    }

    #[test]
    fn an_unconverged_extreme_is_null_with_the_reason() {
        let mut ev = Evidence::new(1e-6);
        // Even though the structural value 1 would win against the Ritz value.
        let e = extreme(
            Some(&estimate(-0.5, 0.0, false)),
            1.0,
            &[1.0],
            "max_re",
            &max_re,
            &mut ev,
        );
        assert_eq!(e.value, None);
        assert_eq!(e.residual, 1e-3);
        assert!(ev.notes[0].contains("max_re") && ev.notes[0].contains("did not converge"));
        let mut record = Record::default();
        ev.fill(&mut record, true);
        assert_eq!(record.method, Method::Krylov);
        let note = record.not_computed.unwrap();
        assert!(
            note.contains("max_re") && note.contains("neg_share"),
            "{note}"
        );
    }
}
