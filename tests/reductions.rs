//! Jacobian assembly and structural reductions on random blocks (float64
//! throughout, so that identities hold to rounding):
//! - the coloured Jacobian equals one JVP per column and central finite differences;
//! - the reduced exact spectrum equals the dense spectrum of the full matrix
//!   (multiset distance <= 1e-8 * max(1, rho)), for BasicBlocks, Bottlenecks,
//!   grouped (ResNeXt) Bottlenecks and pre-activation blocks (no output ReLU,
//!   two inner ReLUs, a projection reading relu(bn1(x))), with random masks
//!   and with all units off and all on.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{blocks, input};
use resnet_stiffness::analysis::linearize::Linearization;
use resnet_stiffness::analysis::reduce::{dense_spectrum, exact_spectrum};
use resnet_stiffness::model::random::{Masks, Rng};
use resnet_stiffness::model::{JacobianKind, ResidualBlock};
use stiffness_spectrum::{multiset_distance, Par};

fn column_by_jvp(
    block: &ResidualBlock,
    lin: &Linearization<'_>,
    kind: JacobianKind,
    col: usize,
) -> Vec<f64> {
    let n = lin.n();
    let mut e = vec![0.0; n];
    e[col] = 1.0;
    let [c, h, w] = lin.in_shape;
    let t = Tensor::from_vec(e, (1, c, h, w), &Device::Cpu).unwrap();
    block
        .jvp(&lin.trace, kind, &t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn forward_flat(block: &ResidualBlock, kind: JacobianKind, x: &Tensor) -> Vec<f64> {
    let y = match kind {
        JacobianKind::Block => block.forward(x).unwrap(),
        JacobianKind::Residual => block.branch.forward(x).unwrap(),
    };
    y.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

#[test]
fn coloured_jacobian_equals_unit_jvps_and_finite_differences() {
    let mut rng = Rng(7);
    for (block, shape) in blocks(&mut rng, Masks::Random) {
        let x = input(&mut rng, shape);
        let lin = Linearization::new(&block, &block, &x).unwrap();
        for kind in JacobianKind::ALL {
            let jac = lin.jacobian(kind).unwrap();
            let rows: Vec<usize> = (0..jac.n_rows()).collect();
            let all_cols: Vec<usize> = (0..lin.n()).collect();
            let dense = jac.dense_submatrix(&rows, &all_cols);
            let xs = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for col in 0..lin.n() {
                let want = column_by_jvp(&block, &lin, kind, col);
                let h = 1e-6;
                let mut plus = xs.clone();
                plus[col] += h;
                let mut minus = xs.clone();
                minus[col] -= h;
                let to_t = |v: Vec<f64>| Tensor::from_vec(v, x.shape(), &Device::Cpu).unwrap();
                let fp = forward_flat(&block, kind, &to_t(plus));
                let fm = forward_flat(&block, kind, &to_t(minus));
                for row in 0..jac.n_rows() {
                    let got = dense[(row, col)];
                    assert!(
                        (got - want[row]).abs() <= 1e-12,
                        "{} {kind:?} J[{row},{col}]",
                        block.name
                    );
                    let fd = (fp[row] - fm[row]) / (2.0 * h);
                    assert!(
                        (got - fd).abs() <= 1e-6 * (1.0 + got.abs()),
                        "{} {kind:?} FD J[{row},{col}]: {got} vs {fd}",
                        block.name
                    );
                }
            }
        }
    }
}

/// Calls `f` with every square random block of [`blocks`] and its
/// linearisation at a random input.
fn for_each_square_block(
    rng: &mut Rng,
    masks: Masks,
    mut f: impl FnMut(&mut Rng, &ResidualBlock, &Linearization<'_>),
) {
    for (block, shape) in blocks(rng, masks) {
        if !block.is_square(shape) {
            continue;
        }
        let x = input(rng, shape);
        let lin = Linearization::new(&block, &block, &x).unwrap();
        f(rng, &block, &lin);
    }
}

#[test]
fn reduced_spectrum_equals_dense_spectrum() {
    let mut rng = Rng(11);
    // (block kind solved through the active outputs, block kind solved through the low-rank cut)
    let mut paths = (0, 0);
    for masks in [Masks::Random, Masks::AllOn, Masks::AllOff] {
        for seed in 0..3 {
            for_each_square_block(&mut rng, masks, |_, block, lin| {
                for kind in JacobianKind::ALL {
                    let (reduced, info) = exact_spectrum(lin, kind, Par::Seq).unwrap();
                    let dense = dense_spectrum(lin, kind).unwrap();
                    let a: Vec<_> = reduced.iter().collect();
                    let b: Vec<_> = dense.iter().collect();
                    let rho = b.iter().map(|z| z.norm()).fold(0.0, f64::max);
                    let d = multiset_distance(&a, &b);
                    assert!(
                        d <= 1e-8 * rho.max(1.0),
                        "{} {kind:?} {masks:?} seed {seed}: distance {d}, rho {rho}, {info:?}",
                        block.name
                    );
                    assert_eq!(info.n, lin.n());
                    assert!(info.solved_size <= info.n);
                    if kind == JacobianKind::Block && info.n_active > 0 {
                        if info.solved_size == info.n_active {
                            paths.0 += 1;
                        } else {
                            paths.1 += 1;
                        }
                    }
                }
            });
        }
    }
    assert!(
        paths.0 > 0 && paths.1 > 0,
        "both reduction paths exercised: {paths:?}"
    );
}

/// Söderlind's number and the singular-value summary of the analysis job
/// against dense references on the full assembled Jacobian.
#[test]
fn soderlind_and_singular_values_match_dense_references() {
    use resnet_stiffness::analysis::measure::measure;
    use stiffness_records::{Method, SpectrumVariant};
    use stiffness_spectrum::{singular_values, sym_part_extremes_dense};
    let mut rng = Rng(5);
    for (block, shape) in blocks(&mut rng, Masks::Random) {
        let x = input(&mut rng, shape);
        let lin = Linearization::new(&block, &block, &x).unwrap();
        for kind in JacobianKind::ALL {
            let m = measure(&lin, kind, SpectrumVariant::Exact, Par::Seq, Method::Dense)
                .unwrap()
                .metrics;
            let jac = lin.jacobian(kind).unwrap();
            let rows: Vec<usize> = (0..jac.n_rows()).collect();
            let cols: Vec<usize> = (0..jac.n_cols()).collect();
            let dense = jac.dense_submatrix(&rows, &cols);
            if lin.is_square() {
                let ext = sym_part_extremes_dense(dense.as_ref()).unwrap();
                let want = 0.5 * (ext.mu_min + ext.mu_max);
                let got = m.soderlind.expect("soderlind");
                let scale = ext.mu_max.abs().max(ext.mu_min.abs());
                assert!(
                    (got - want).abs() <= 1e-7 * scale,
                    "{} {kind:?}: {got} vs {want}",
                    block.name
                );
            } else {
                let sigma = singular_values(dense.as_ref()).unwrap();
                let want_max = sigma[0];
                let got_max = m.sigma_max.unwrap();
                assert!(
                    (got_max - want_max).abs() <= 1e-7 * want_max,
                    "{} {kind:?}: {got_max} vs {want_max}",
                    block.name
                );
                let smallest = *sigma.last().unwrap();
                let got_min = m.sigma_min.unwrap();
                // Exact zero when rank is provably deficient; else the dense value.
                assert!(
                    got_min == 0.0 && smallest <= 1e-9 * want_max
                        || (got_min - smallest).abs() <= 1e-9 * want_max,
                    "{} {kind:?}: sigma_min {got_min} vs dense {smallest}",
                    block.name
                );
            }
        }
    }
}

/// The factored Jacobian (J_F = U V, J_B = D_out (I + U V)) that Söderlind's
/// number runs on applies the symmetric part of the assembled Jacobian:
/// (J + J^T) x / 2 on random vectors to 1e-12 relative, for every random
/// square block and kind whose reduction factors it (both forms met), with
/// the factors in float64 (a float64 block). The same block in float32,
/// whose JVPs make every factor entry a float32 value, holds its factors in
/// float32: there the product equals the float64 factors' (faer GEMVs) to
/// 1e-12, and the assembled float32 Jacobian to its rounding (1e-6). Some
/// blocks' factors are stored as sparse runs (maps larger than the windows).
#[test]
fn factored_jacobian_applies_the_assembled_symmetric_part() {
    use resnet_stiffness::analysis::factored::FactoredJacobian;
    use resnet_stiffness::analysis::reduce::Form;
    let mut rng = Rng(23);
    let (mut branch, mut shifted, mut single, mut sparse) = (0, 0, 0, 0);
    for masks in [Masks::Random, Masks::AllOn] {
        for (block64, shape) in blocks(&mut rng, masks) {
            if !block64.is_square(shape) {
                continue;
            }
            let x = input(&mut rng, shape);
            let block32 = block64.to_dtype(DType::F32).unwrap();
            for (block, dtype) in [(&block64, DType::F64), (&block32, DType::F32)] {
                let lin = Linearization::new(block, &block64, &x.to_dtype(dtype).unwrap()).unwrap();
                for kind in JacobianKind::ALL {
                    let Some(j) = FactoredJacobian::of(&lin, kind).unwrap() else {
                        continue;
                    };
                    assert_eq!(
                        j.is_single(),
                        dtype == DType::F32,
                        "{} {kind:?}",
                        block.name
                    );
                    single += usize::from(j.is_single());
                    sparse += usize::from(j.stored_share() < 0.9);
                    match Form::of(&lin, kind).unwrap() {
                        Form::Branch { .. } => branch += 1,
                        Form::Shifted { .. } => shifted += 1,
                        Form::ActiveRows { .. } => unreachable!(),
                    }
                    let n = lin.n();
                    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
                    let mut got = vec![0.0; n];
                    j.symmetric_part_apply(&v, &mut got);
                    let assembled = symmetric_part(&lin.jacobian(kind).unwrap(), &v);
                    let close = |want: &[f64], tol: f64, what: &str| {
                        let scale = want.iter().fold(1e-300f64, |m, w| m.max(w.abs()));
                        let err = got
                            .iter()
                            .zip(want)
                            .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
                        assert!(
                            err <= tol * scale,
                            "{} {kind:?} {dtype:?} against {what}: {err} vs scale {scale}",
                            block.name
                        );
                    };
                    match dtype {
                        DType::F64 => close(&assembled, 1e-12, "the assembled Jacobian"),
                        _ => {
                            close(
                                &factored_symmetric_part(&lin, kind, &v),
                                1e-12,
                                "the factors",
                            );
                            close(&assembled, 1e-6, "the assembled Jacobian");
                        }
                    }
                }
            }
        }
    }
    assert!(
        branch > 0 && shifted > 0 && single > 0 && sparse > 0,
        "forms met: {branch} branch, {shifted} shifted, {single} in float32, {sparse} stored \
         sparse"
    );
}

/// (J + J^T) v / 2 of an assembled Jacobian.
fn symmetric_part(
    jac: &resnet_stiffness::analysis::jacobian::FootprintJacobian,
    v: &[f64],
) -> Vec<f64> {
    let (mut jv, mut jtv) = (vec![0.0; v.len()], vec![0.0; v.len()]);
    jac.matvec(v, &mut jv);
    jac.rmatvec(v, &mut jtv);
    jv.iter().zip(&jtv).map(|(a, b)| 0.5 * (a + b)).collect()
}

/// (J + J^T) v / 2 from the float64 factors by faer products:
/// J = U V (residual) or D_out (I + U V) (block).
fn factored_symmetric_part(lin: &Linearization<'_>, kind: JacobianKind, v: &[f64]) -> Vec<f64> {
    use faer::{Mat, MatRef};
    use resnet_stiffness::analysis::reduce::factors;
    // The cut of the reductions: the first inner ReLU with the fewest active units.
    let inner = lin.active_inner().unwrap();
    let cut = (0..inner.len()).min_by_key(|&i| inner[i].len()).unwrap();
    let f = factors(lin, cut).unwrap();
    let d: Vec<f64> = match kind {
        JacobianKind::Block => lin.output_mask().unwrap(),
        JacobianKind::Residual => vec![1.0; v.len()],
    };
    let col = |x: &[f64]| MatRef::from_column_major_slice(x, x.len(), 1).to_owned();
    let dv: Vec<f64> = v.iter().zip(&d).map(|(v, d)| v * d).collect();
    let uvx: Mat<f64> = &f.u * (&f.v * col(v));
    let vtutdx: Mat<f64> = f.v.transpose() * (f.u.transpose() * col(&dv));
    (0..v.len())
        .map(|i| match kind {
            JacobianKind::Block => 0.5 * (d[i] * (v[i] + uvx[(i, 0)]) + dv[i] + vtutdx[(i, 0)]),
            JacobianKind::Residual => 0.5 * (uvx[(i, 0)] + vtutdx[(i, 0)]),
        })
        .collect()
}
