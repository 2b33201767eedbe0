//! Exact spectra and metrics of real blocks against the PyTorch reference
//! (shared/golden/*/metrics.json and eigvals files): ResNet20 layer2.2 and
//! layer3.2 (post-activation, option-A network), and layer4.1 of the
//! pytorch-cifar ResNet18 and PreActResNet18 (no output ReLU, two inner
//! ReLUs: the reductions of METHOD.md section 5 through the narrowest one).
//!
//! Tolerances: our Jacobian is assembled from float32 JVPs, the reference is
//! float64, so real-valued metrics agree to 1e-6 relative (the acceptance
//! criterion) and counts exactly; masks come from a float64 forward pass and
//! agree exactly.

mod common;

use std::path::Path;

use candle_core::DType;
use common::{npy_tensor, shared};
use resnet_stiffness::analysis::linearize::Linearization;
use resnet_stiffness::analysis::metrics::EigenMetrics;
use resnet_stiffness::analysis::reduce::exact_spectrum;
use resnet_stiffness::model::{self, JacobianKind};
use serde_json::Value;
use stiffness_checkpoint::npy::read_npy;
use stiffness_spectrum::{paper_compatible, Par};

fn close(ours: f64, want: f64, what: &str) {
    let rel = (ours - want).abs() / want.abs().max(1e-300);
    assert!(
        rel <= 1e-6,
        "{what}: ours {ours}, reference {want}, rel {rel:e}"
    );
}

fn sorted_real_parts(path: &Path) -> Vec<f64> {
    let values = read_npy(path).unwrap().data.into_c128().unwrap();
    let mut re: Vec<f64> = values.iter().map(|z| z[0]).collect();
    re.sort_by(f64::total_cmp);
    re
}

/// The golden folder, ResNet20 in float32 and float64, and metrics.json.
fn resnet20(shared: &Path) -> (std::path::PathBuf, model::ResNet, model::ResNet, Value) {
    let path = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    golden(&shared.join("golden/resnet20"), &path)
}

/// A golden folder, its model in float32 and float64, and metrics.json.
fn golden(dir: &Path, model: &Path) -> (std::path::PathBuf, model::ResNet, model::ResNet, Value) {
    let net32 = model::load(model, None, DType::F32).unwrap().model;
    let net64 = model::load(model, None, DType::F64).unwrap().model;
    let metrics =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    (dir.to_path_buf(), net32, net64, metrics)
}

#[test]
fn resnet20_block_spectra_match_pytorch() {
    let Some(shared) = shared() else { return };
    let (dir, net32, net64, metrics) = resnet20(&shared);
    for name in ["layer3.2", "layer2.2"] {
        check_block_spectra(&dir, &net32, &net64, &metrics, name);
    }
}

/// The two square blocks of the new families small enough for PyTorch's
/// dense solve: pytorch-cifar ResNet18 layer4.1 (post-activation) and
/// PreActResNet18 layer4.1 (B = x + F(x): eig(J_B) = 1 + eig(J_F)).
#[test]
fn cifar_resnet18_and_preact_block_spectra_match_pytorch() {
    let Some(shared) = shared() else { return };
    for folder in ["cifar_resnet18", "cifar_preact_resnet18"] {
        let dir = shared.join("golden").join(folder);
        let (dir, net32, net64, metrics) = golden(&dir, &dir.join("weights.safetensors"));
        check_block_spectra(&dir, &net32, &net64, &metrics, "layer4.1");
    }
}

/// Block `name`'s exact spectra of both kinds against `metrics.json` and
/// the stored eigenvalues: real-valued metrics to 1e-6 relative, toleranced
/// counts exactly, exact zeros where the structure says, sorted real parts
/// to 1e-5.
fn check_block_spectra(
    dir: &Path,
    net32: &model::ResNet,
    net64: &model::ResNet,
    metrics: &Value,
    name: &str,
) {
    let i = net32.blocks.iter().position(|b| b.name == name).unwrap();
    let x = npy_tensor(&dir.join(format!("blocks/{name}.in.npy")), DType::F32);
    let lin = Linearization::new(&net32.blocks[i], &net64.blocks[i], &x).unwrap();
    let inactive: Vec<u64> = metrics["blocks"][name]["branch_F"]["n_inner_relu_inactive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    for (kind, key, file) in [
        (JacobianKind::Block, "whole", "eigvals.npy"),
        (JacobianKind::Residual, "branch_F", "F.eigvals.npy"),
    ] {
        let want = &metrics["blocks"][name][key];
        let (spectrum, info) = exact_spectrum(&lin, kind, Par::rayon(0)).unwrap();
        let m = EigenMetrics::from_spectrum(&spectrum, kind);
        let what = format!("{} {name} {kind:?}", dir.display());
        assert_eq!(m.n, want["n"].as_u64().unwrap() as usize, "{what} n");
        close(
            m.max_re,
            want["max_re"].as_f64().unwrap(),
            &format!("{what} max_re"),
        );
        close(
            m.min_re,
            want["min_re"].as_f64().unwrap(),
            &format!("{what} min_re"),
        );
        close(
            m.spectral_radius,
            want["spectral_radius"].as_f64().unwrap(),
            &format!("{what} rho"),
        );
        let n = m.n as f64;
        assert_eq!(
            (m.neg_share * n).round() as u64,
            want["n_re_negative_tol1e-6"].as_u64().unwrap(),
            "{what} neg"
        );
        // The narrowest inner ReLU layer: m active units, rank J_F <= m.
        let narrowest = m.n as u64 - inactive.iter().copied().max().unwrap();
        match kind {
            JacobianKind::Block => {
                let zero_rows = want["n_zero_rows"].as_u64().unwrap();
                let si = &want["stiffness_index_signed"];
                match si.as_str() {
                    // max_re > 0 = min_re: +inf in IEEE arithmetic, as ours.
                    Some("inf") => assert_eq!(m.stiffness_index, f64::INFINITY, "{what} SI"),
                    _ => close(
                        m.stiffness_index,
                        si.as_f64().unwrap(),
                        &format!("{what} SI"),
                    ),
                }
                assert_eq!(m.n_zero as u64, zero_rows, "{what} n_zero");
                assert_eq!(info.n_active as u64, m.n as u64 - zero_rows);
                assert!(
                    info.solved_size as u64 <= (m.n as u64 - zero_rows).min(narrowest),
                    "{what}: solved {} of {}",
                    info.solved_size,
                    info.n
                );
            }
            JacobianKind::Residual => {
                let share = m.euler_unstable_share.unwrap();
                assert_eq!(
                    (share * n).round() as u64,
                    want["n_outside_euler_disk_tol1e-6"].as_u64().unwrap(),
                    "{what} euler"
                );
                // Every unit the narrowest layer switches off is an exact
                // zero, as many as the reference's numerically-zero cluster.
                assert_eq!(m.n_zero as u64, n as u64 - narrowest, "{what} n_zero");
                assert_eq!(
                    m.n_zero as u64,
                    want["n_abs_below_1e-6"].as_u64().unwrap(),
                    "{what}: exact zeros = the reference's |lambda| < 1e-6"
                );
                assert_eq!(info.solved_size as u64, narrowest, "{what} solved");
            }
        }
        assert!(info.solved_size < info.n, "{what}: no reduction");
        let ours: Vec<f64> = {
            let mut re: Vec<f64> = spectrum.iter().map(|z| z.re).collect();
            re.sort_by(f64::total_cmp);
            re
        };
        let reference = sorted_real_parts(&dir.join(format!("blocks/{name}.{file}")));
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-5,
            "{what}: sorted real parts differ by {worst:e}"
        );
    }
}

#[test]
fn resnet20_paper_compatible_spectrum_matches_pytorch() {
    let Some(shared) = shared() else { return };
    let (dir, net32, net64, metrics) = resnet20(&shared);
    let want = &metrics["blocks"]["layer3.2"]["paper_compatible"];
    let i = net32
        .blocks
        .iter()
        .position(|b| b.name == "layer3.2")
        .unwrap();
    let x = npy_tensor(&dir.join("blocks/layer3.2.in.npy"), DType::F32);
    let lin = Linearization::new(&net32.blocks[i], &net64.blocks[i], &x).unwrap();
    let j = lin
        .jacobian(JacobianKind::Block)
        .unwrap()
        .to_dense_row_major();
    let s = paper_compatible(&j, lin.out_shape, lin.in_shape).unwrap();
    assert_eq!(s.count as u64, want["count"].as_u64().unwrap());
    close(s.max_re, want["max_re"].as_f64().unwrap(), "paper max_re");
    close(s.min_re, want["min_re"].as_f64().unwrap(), "paper min_re");
    close(
        s.max_re_over_min_re,
        want["max_re_over_min_re"].as_f64().unwrap(),
        "paper ratio",
    );
    assert_eq!(
        s.n_re_negative as u64,
        want["n_re_negative"].as_u64().unwrap(),
        "paper negatives"
    );
    assert_eq!(
        s.n_re_exact_zero as u64,
        want["n_re_exact_zero"].as_u64().unwrap(),
        "paper exact zeros"
    );
    close(
        s.frac_re_negative,
        want["frac_re_negative"].as_f64().unwrap(),
        "paper frac",
    );
}
